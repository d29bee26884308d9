//! What calls for a reload: SIGHUP at once (which also reopens the audit file), a timed check
//! of the watched files (modification time and size), and the procedure's daily one-month
//! expiry alert. SIGUSR1 only reopens the audit file (`logrotate`'s `postrotate`), as nginx's
//! does its logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::Runtime;
use crate::clock::now_unix;

/// What the timed check compares: each watched file with its modification time and size.
pub(super) type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// SIGHUP and SIGUSR1, listened for from the very start of `serve` (before the configuration
/// and its keys are read): their default action would end the process, and `logrotate` or a
/// reload may send them while the gateway starts.
pub struct Signals {
    hup: std::io::Result<Signal>,
    usr1: std::io::Result<Signal>,
}

impl Signals {
    /// From now on the signals are kept for [`Runtime::spawn_watchers`] (inside the runtime).
    pub fn listen() -> Signals {
        Signals {
            hup: signal(SignalKind::hangup()),
            usr1: signal(SignalKind::user_defined1()),
        }
    }
}

impl Runtime {
    /// Files whose change calls for a reload.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for s in self.structures() {
            files.extend(s.auth_cli.files());
            files.extend(s.sign.files());
        }
        files.extend(self.trust.files().iter().cloned());
        // The IGC-Santé CRLs the structures' certificates are checked against: a new one may
        // revoke a certificate in force, which the reload then reports.
        files.extend(self.cfg.trust.identity_crls.iter().cloned());
        if let Some(t) = &self.local_tls {
            files.extend(t.files());
        }
        files.sort();
        files.dedup();
        files
    }

    pub(super) fn fingerprint_now(&self) -> Fingerprint {
        self.watched()
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (p, m)
            })
            .collect()
    }

    /// Whether a watched file changed since the last look (and remembers what it saw).
    fn files_changed(&self) -> bool {
        let now = self.fingerprint_now();
        let mut last = self.fingerprint.lock().unwrap_or_else(|e| e.into_inner());
        if *last != now {
            *last = now;
            true
        } else {
            false
        }
    }

    /// Starts the reload triggers: SIGHUP (and SIGUSR1, which only reopens the audit file), as
    /// `signals` listened for them from the start, and the timed check of the watched files.
    pub fn spawn_watchers(self: &Arc<Self>, signals: Signals) {
        match signals.hup {
            Ok(mut hup) => {
                let rt = self.clone();
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        crate::audit::reopen();
                        rt.files_changed();
                        rt.reload("SIGHUP").await;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: reload by file check only")
            }
        }
        match signals.usr1 {
            Ok(mut usr1) => {
                tokio::spawn(async move {
                    while usr1.recv().await.is_some() {
                        tracing::info!("SIGUSR1: the audit file is looked at again");
                        crate::audit::reopen();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGUSR1"),
        }
        // The procedure's one-month alert, every day: a warning under 30 days, an error under 7.
        let rt = self.clone();
        every(Duration::from_secs(86_400), move || {
            rt.expiry_alerts(now_unix());
            async {}
        });
        let secs = self.cfg.reload_check_interval_s;
        if secs > 0 {
            let rt = self.clone();
            every(Duration::from_secs(secs), move || {
                let rt = rt.clone();
                async move {
                    if rt.files_changed() {
                        rt.reload("file change").await;
                    }
                }
            });
        }
    }
}

/// Runs `tick` every `period`, the first time one period from now.
fn every<F, Fut>(period: Duration, mut tick: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            tick().await;
        }
    });
}
