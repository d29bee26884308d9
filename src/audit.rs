//! The audit log: one JSON line per AMC call carrying a signed assertion — time, caller (which
//! SIH application asked), assertion ID,
//! whether it was reused, audience, AMC number, service, signing certificate serial, outcome,
//! HTTP status and latency. Never a body, never patient data. Hospitals answer "what did we
//! sign, for whom, when" from it.
//!
//! Written to `[audit] file` (appended, one line per call, created 0640), or, without a file,
//! as `info` events of the `rocgw::audit` tracing target (so a JSON log collector can route
//! them apart). The file follows its path: once `logrotate` (or anyone) has moved or removed
//! it, the next line goes to a new file at the path, checked at most once a second and at once
//! after SIGHUP ([`reopen`]), so no line goes to a file that is about to be compressed away.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// One audit record (its time is the log line's, or the file line's `time`).
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// Which SIH application asked (`access`): certificate, token name, user id or address.
    pub caller: &'a str,
    /// The hospital structure (EJ or EG) that signed.
    pub structure: &'a str,
    pub assertion_id: &'a str,
    pub reused: bool,
    pub audience: &'a str,
    pub amc: &'a str,
    pub service: &'a str,
    pub signer_serial: &'a str,
    /// `ok`, `amc-error` (the AMC answered an error), or the gateway's fault code.
    pub outcome: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    /// Why the call failed, when rocgw refused the answer (never a body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

/// Where audit records go.
#[derive(Debug)]
pub enum Audit {
    File(Mutex<AuditFile>),
    Log,
}

/// Bumped by [`reopen`]: every audit file looks at its path before its next line.
static REOPEN: AtomicU64 = AtomicU64::new(0);

/// Asks every audit file to look at its path now (SIGHUP: `logrotate`'s `postrotate`).
pub fn reopen() {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

/// The open audit file and what it was opened as.
#[derive(Debug)]
pub struct AuditFile {
    file: std::fs::File,
    path: PathBuf,
    /// Device and inode of `file`: another pair at `path` means the file was rotated.
    id: (u64, u64),
    /// When the path was last looked at (Unix seconds), and the [`REOPEN`] count then.
    looked: (i64, u64),
}

impl AuditFile {
    fn open(path: &Path) -> std::io::Result<AuditFile> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        let m = file.metadata()?;
        Ok(AuditFile {
            file,
            path: path.to_path_buf(),
            id: (m.dev(), m.ino()),
            looked: (crate::clock::now_unix(), REOPEN.load(Ordering::Relaxed)),
        })
    }

    /// Follows the path when it names another file than the one open (or none): at most once
    /// a second, or at once after [`reopen`]. A file that cannot be opened is logged, and the
    /// lines go on to the old one rather than nowhere.
    fn follow(&mut self) {
        let now = (crate::clock::now_unix(), REOPEN.load(Ordering::Relaxed));
        if now == self.looked {
            return;
        }
        self.looked = now;
        let same = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if same {
            return;
        }
        match AuditFile::open(&self.path) {
            Ok(new) => {
                *self = new;
                tracing::info!(file = %self.path.display(), "audit file reopened: the previous one was moved or removed");
            }
            Err(e) => tracing::error!(
                file = %self.path.display(),
                error = %e,
                "cannot reopen the audit file: lines go on to the previous one"
            ),
        }
    }
}

impl Audit {
    /// Opens `file` for appending (creating it 0640), or logs through tracing.
    pub fn open(file: Option<&Path>) -> Result<Audit, String> {
        let Some(path) = file else {
            return Ok(Audit::Log);
        };
        let f = AuditFile::open(path)
            .map_err(|e| format!("audit.file: cannot open {}: {e}", path.display()))?;
        Ok(Audit::File(Mutex::new(f)))
    }

    pub fn record(&self, r: &Record<'_>) {
        match self {
            Audit::File(f) => {
                let line = Line {
                    time: crate::clock::now_rfc3339_millis(),
                    record: r,
                };
                let mut line = serde_json::to_vec(&line).unwrap_or_default();
                line.push(b'\n');
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                f.follow();
                if let Err(e) = f.file.write_all(&line) {
                    tracing::error!(error = %e, "cannot write the audit log");
                }
            }
            Audit::Log => tracing::info!(
                target: "rocgw::audit",
                caller = r.caller,
                structure = r.structure,
                assertion_id = r.assertion_id,
                reused = r.reused,
                audience = r.audience,
                amc = r.amc,
                service = r.service,
                signer_serial = r.signer_serial,
                outcome = r.outcome,
                status = r.status,
                latency_ms = r.latency_ms,
                detail = r.detail,
                "signed AMC call"
            ),
        }
    }
}

/// A line of the audit file: the time (RFC 3339, milliseconds, UTC), then the record.
#[derive(Serialize)]
struct Line<'r, 'a> {
    time: String,
    #[serde(flatten)]
    record: &'r Record<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            caller: "ip:127.0.0.1",
            structure: "1990000012",
            assertion_id: "_a",
            reused: false,
            audience: "https://amc.test/idb",
            amc: "99999991",
            service: "idb",
            signer_serial: "01",
            outcome: "ok",
            status: 200,
            latency_ms: 1.0,
            detail: None,
        }
    }

    /// [`reopen`] is for the whole process: the tests that count on it take turns.
    static TURN: Mutex<()> = Mutex::new(());

    fn lines(p: &Path) -> usize {
        std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
    }

    /// The audit file, told it looked at its path in a far future second: only [`reopen`]
    /// makes it look again.
    fn audit_at(path: &Path) -> Audit {
        let audit = Audit::open(Some(path)).unwrap();
        if let Audit::File(f) = &audit {
            f.lock().unwrap().looked.0 = i64::MAX;
        }
        audit
    }

    #[test]
    fn after_reopen_the_lines_go_to_a_new_file_at_the_path() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let (path, rotated) = (
            dir.path().join("audit.jsonl"),
            dir.path().join("audit.jsonl.1"),
        );
        let audit = audit_at(&path);
        audit.record(&record());
        std::fs::rename(&path, &rotated).unwrap();
        audit.record(&record());
        // Not looked at yet: the line follows the open file, under its new name.
        assert_eq!((lines(&rotated), lines(&path)), (2, 0));
        reopen();
        audit.record(&record());
        assert_eq!((lines(&rotated), lines(&path)), (2, 1));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        // Removed: created again.
        std::fs::remove_file(&path).unwrap();
        reopen();
        audit.record(&record());
        assert_eq!(lines(&path), 1);
    }

    #[test]
    fn the_path_is_looked_at_once_a_second_without_being_asked() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let (path, rotated) = (dir.path().join("audit.jsonl"), dir.path().join("old.jsonl"));
        let audit = Audit::open(Some(&path)).unwrap();
        audit.record(&record());
        std::fs::rename(&path, &rotated).unwrap();
        if let Audit::File(f) = &audit {
            f.lock().unwrap().looked.0 -= 1;
        }
        audit.record(&record());
        assert_eq!((lines(&rotated), lines(&path)), (1, 1));
    }

    #[test]
    fn a_path_that_cannot_be_opened_again_keeps_the_old_file() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let (path, kept) = (sub.join("audit.jsonl"), dir.path().join("kept.jsonl"));
        let audit = audit_at(&path);
        std::fs::rename(&path, &kept).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        reopen();
        audit.record(&record());
        assert_eq!(lines(&kept), 1);
    }
}
