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
//! after SIGUSR1 or SIGHUP ([`reopen`]). What cannot be written is counted
//! (`rocgw_audit_errors_total`) and logged, at most once a minute.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::metrics;

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

/// Asks every audit file to look at its path now (SIGUSR1 or SIGHUP: `logrotate`'s
/// `postrotate`).
pub fn reopen() {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

/// A failure is logged at once, then at most once a minute while it lasts.
const COMPLAIN_EVERY_S: i64 = 60;

/// The open audit file and what it was opened as.
#[derive(Debug)]
pub struct AuditFile {
    file: std::fs::File,
    path: PathBuf,
    /// Device and inode of `file`: another pair at `path` means the file was rotated.
    id: (u64, u64),
    /// The path is looked at again from this second on (Unix seconds), or once [`REOPEN`]
    /// has moved past `seen`.
    next_look: i64,
    seen: u64,
    /// The path names another file (or none) that could not be opened: records go on to
    /// `file`, no longer at the path.
    astray: bool,
    /// When a failure was last logged, and how many came since.
    complained: Option<i64>,
    unsaid: u64,
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
            next_look: crate::clock::now_unix() + 1,
            seen: REOPEN.load(Ordering::Relaxed),
            astray: false,
            complained: None,
            unsaid: 0,
        })
    }

    /// Follows the path when it names another file than the one open (or none): at most once
    /// a second, or at once after [`reopen`]. When the path cannot be opened, the records go
    /// on to the old file rather than nowhere, and the path is tried again a second later.
    fn follow(&mut self, now: i64) {
        let asked = REOPEN.load(Ordering::Relaxed);
        if now < self.next_look && asked == self.seen {
            return;
        }
        (self.next_look, self.seen) = (now + 1, asked);
        let same = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if same {
            return;
        }
        match AuditFile::open(&self.path) {
            Ok(new) => {
                let failed = self.complained.is_some();
                *self = new;
                tracing::info!(
                    file = %self.path.display(),
                    "audit file reopened: the previous one was moved or removed"
                );
                if failed {
                    tracing::info!(file = %self.path.display(), "audit file written again");
                }
            }
            Err(e) => {
                self.astray = true;
                // Removed, not moved: what goes to it is lost.
                let lost = self.file.metadata().is_ok_and(|m| m.nlink() == 0);
                let to = if lost {
                    "a removed file: lost"
                } else {
                    "the moved file"
                };
                self.complain(
                    now,
                    &format!("cannot open it again ({e}): records go to {to}"),
                );
            }
        }
    }

    /// Logs a failure at once, then at most once a minute with how many came meanwhile.
    fn complain(&mut self, now: i64, what: &str) {
        if self.complained.is_some_and(|t| now < t + COMPLAIN_EVERY_S) {
            self.unsaid += 1;
            return;
        }
        tracing::error!(
            file = %self.path.display(),
            failures_since_last_said = self.unsaid,
            "audit file: {what}"
        );
        (self.complained, self.unsaid) = (Some(now), 0);
    }

    /// Appends one line, following the path first; counts and logs what goes wrong.
    fn append(&mut self, line: &[u8]) {
        let now = crate::clock::now_unix();
        self.follow(now);
        let errors = &metrics::get().audit_errors;
        match self.file.write_all(line) {
            Err(e) => {
                errors.with_label_values(&["write"]).inc();
                self.complain(now, &format!("cannot write a record: {e}"));
            }
            Ok(()) if self.astray => errors.with_label_values(&["reopen"]).inc(),
            Ok(()) if self.complained.take().is_some() => {
                self.unsaid = 0;
                tracing::info!(file = %self.path.display(), "audit file written again");
            }
            Ok(()) => {}
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
                f.lock().unwrap_or_else(|e| e.into_inner()).append(&line);
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

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    fn file_of(audit: &Audit) -> std::sync::MutexGuard<'_, AuditFile> {
        match audit {
            Audit::File(f) => f.lock().unwrap(),
            Audit::Log => unreachable!(),
        }
    }

    /// The audit file, told it looked at its path in a far future second: only [`reopen`]
    /// makes it look again.
    fn audit_at(path: &Path) -> Audit {
        let audit = Audit::open(Some(path)).unwrap();
        file_of(&audit).next_look = i64::MAX;
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
        assert_eq!(mode & 0o007, 0, "nothing for others: {mode:o}");
        // Removed: created again.
        std::fs::remove_file(&path).unwrap();
        reopen();
        audit.record(&record());
        assert_eq!(lines(&path), 1);
    }

    #[test]
    fn the_path_is_looked_at_again_a_second_later_not_before() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let (path, rotated) = (dir.path().join("audit.jsonl"), dir.path().join("old.jsonl"));
        let audit = Audit::open(Some(&path)).unwrap();
        let mut f = file_of(&audit);
        let t = f.next_look;
        f.follow(t);
        let first = f.id.1;
        std::fs::rename(&path, &rotated).unwrap();
        f.follow(t);
        assert_eq!(f.id.1, first, "looked at twice in one second");
        f.follow(t + 1);
        assert_ne!(f.id.1, first);
        assert_eq!(f.id.1, ino(&path));
    }

    #[test]
    fn a_path_that_cannot_be_opened_again_keeps_the_old_file_counted_and_said_once() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let (path, kept) = (sub.join("audit.jsonl"), dir.path().join("kept.jsonl"));
        let audit = audit_at(&path);
        std::fs::rename(&path, &kept).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        let astray = || {
            metrics::get()
                .audit_errors
                .with_label_values(&["reopen"])
                .get()
        };
        let before = astray();
        for _ in 0..3 {
            reopen();
            audit.record(&record());
        }
        assert_eq!(lines(&kept), 3);
        assert!(astray() >= before + 3);
        let f = file_of(&audit);
        assert!(f.astray);
        // The first failure was said; the next two within the minute were counted.
        assert_eq!((f.complained.is_some(), f.unsaid), (true, 2));
    }

    #[test]
    fn a_failure_is_said_at_once_then_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(Some(&dir.path().join("a.jsonl"))).unwrap();
        let mut f = file_of(&audit);
        f.complain(100, "x");
        f.complain(130, "x");
        f.complain(159, "x");
        assert_eq!((f.complained, f.unsaid), (Some(100), 2));
        f.complain(160, "x");
        assert_eq!((f.complained, f.unsaid), (Some(160), 0));
    }
}
