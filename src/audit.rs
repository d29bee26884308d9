//! The audit log: one JSON line per AMC call carrying a signed assertion — time, caller (which
//! SIH application asked), assertion ID,
//! whether it was reused, audience, AMC number, service, signing certificate serial, outcome,
//! HTTP status and latency. Never a body, never patient data. Hospitals answer "what did we
//! sign, for whom, when" from it.
//!
//! Written to `[audit] file` (appended, one line per call, created 0640), or, without a file,
//! as `info` events of the `rocgw::audit` tracing target (so a JSON log collector can route
//! them apart).

use std::io::Write as _;
use std::path::Path;
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
    File(Mutex<std::fs::File>),
    Log,
}

impl Audit {
    /// Opens `file` for appending (creating it 0640), or logs through tracing.
    pub fn open(file: Option<&Path>) -> Result<Audit, String> {
        let Some(path) = file else {
            return Ok(Audit::Log);
        };
        use std::os::unix::fs::OpenOptionsExt as _;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
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
                if let Err(e) = f.write_all(&line) {
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
