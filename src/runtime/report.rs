//! What the runtime says about the credentials in force: the procedure's expiry alerts (a
//! warning under 30 days, an error under 7) and, after each load, what is in force and what
//! looks wrong (readable key files, a CN other than the service name, mismatched structures).

use std::sync::Arc;

use super::{Runtime, Structure};
use crate::clock::{fmt_time, now_unix};
use crate::config::Environment;
use crate::identity::{is_test, Identity, EXPIRY_WARNING_DAYS};

impl Structure {
    /// Both identities in force.
    pub fn identities(&self) -> [Arc<Identity>; 2] {
        [self.auth_cli.current(), self.sign.identity()]
    }
}

impl Runtime {
    /// Every identity and anchor in force, with whether it belongs to a TEST hierarchy.
    fn hierarchies(&self) -> Vec<(String, bool)> {
        let trust = self.trust();
        let mut found: Vec<(String, bool)> = Vec::new();
        for id in self.structures().flat_map(Structure::identities) {
            found.push((
                format!("{} ({})", id.field, id.info.subject),
                is_test(&id.info),
            ));
        }
        for (field, set) in [
            ("trust.amc_anchors", &trust.amc),
            ("trust.annuaire_anchors", &trust.annuaire),
        ] {
            for a in &set.anchors.anchors {
                found.push((format!("{field}: {}", a.info.subject), is_test(&a.info)));
            }
        }
        found
    }

    /// The environment rule: with `environment` set, every identity and anchor must belong to
    /// it (a TEST certificate in production, or the reverse, is a start-up error naming it).
    pub(super) fn check_environment(&self) -> Result<(), String> {
        let Some(env) = self.cfg.environment else {
            return Ok(());
        };
        let want_test = env == Environment::Test;
        match self.hierarchies().into_iter().find(|f| f.1 != want_test) {
            None => Ok(()),
            Some((what, test)) => Err(format!(
                "environment = \"{}\": {what} is a {} certificate",
                env.as_str(),
                if test { "TEST" } else { "production" }
            )),
        }
    }

    /// Logs the environment in force, or the one detected when `environment` is unset.
    fn log_environment(&self) {
        if let Some(env) = self.cfg.environment {
            tracing::info!(environment = env.as_str(), "environment");
            return;
        }
        let found = self.hierarchies();
        let detected = match (found.iter().all(|f| f.1), found.iter().any(|f| f.1)) {
            (true, _) => "test",
            (false, false) => "production",
            (false, true) => "mixed TEST and production",
        };
        tracing::info!(
            environment = detected,
            "environment detected (set `environment` to enforce it)"
        );
    }

    /// Logs the expiry alerts of the procedure: a warning when an identity has fewer than 30
    /// days left, an error under 7 (or once expired).
    pub fn expiry_alerts(&self, now: i64) {
        for id in self.structures().flat_map(Structure::identities) {
            let days = id.days_left(now);
            if days < 7 {
                tracing::error!(
                    identity = id.role.as_str(),
                    days_left = days,
                    not_after = %fmt_time(id.info.not_after),
                    "certificate expires in less than 7 days: install its renewal now"
                );
            } else if days < EXPIRY_WARNING_DAYS {
                tracing::warn!(
                    identity = id.role.as_str(),
                    days_left = days,
                    not_after = %fmt_time(id.info.not_after),
                    "certificate expires in less than {EXPIRY_WARNING_DAYS} days: order its renewal"
                );
            }
        }
    }

    /// Logs what is in force, with the expiry warnings of the procedure (one month).
    pub fn report(&self) {
        let now = now_unix();
        self.log_environment();
        self.expiry_alerts(now);
        let s = &self.cfg.server;
        if s.max_buffered_bytes < s.max_body_bytes + self.cfg.upstream.max_response_bytes {
            tracing::warn!(
                max_buffered_bytes = s.max_buffered_bytes,
                "server.max_buffered_bytes is below max_body_bytes + upstream.max_response_bytes: \
                 a large AMC answer may be refused after the AMC has acted on the call"
            );
        }
        self.warn_readable_secrets();
        for st in self.structures() {
            report_structure(st, now);
        }
        let trust = self.trust();
        tracing::info!(
            amc_anchors = trust.amc.anchors.len(),
            annuaire_anchors = trust.annuaire.anchors.len(),
            crls = trust.amc.crls.len(),
            "trust material loaded"
        );
        for c in trust.amc.crls.crls() {
            if c.is_stale(now) {
                tracing::warn!(issuer = %c.issuer, source = %c.source.display(), "CRL is past its next update");
            }
        }
    }

    /// Keys, P12 files, password and token files are secrets: readable by rocgw only.
    /// Certificates are public: never mentioned.
    fn warn_readable_secrets(&self) {
        let local_key = self.cfg.server.tls.as_ref().map(|t| t.key.clone());
        let identity_files = self.structures().flat_map(|s| {
            s.auth_cli
                .secret_files()
                .into_iter()
                .chain(s.sign.secret_files())
        });
        let named = self.cfg.secret_files.iter().map(|(_, p)| p.clone());
        let files: std::collections::BTreeSet<_> =
            identity_files.chain(local_key).chain(named).collect();
        for f in files {
            if let Some((mode, _)) = crate::config::readable_by_others(&f) {
                tracing::warn!(
                    file = %f.display(),
                    mode = format!("{mode:o}"),
                    "a key, password or token file is readable by its group or by everyone: chmod 600"
                );
            }
        }
    }
}

/// One structure's identities as loaded, and what looks wrong in them.
fn report_structure(st: &Structure, now: i64) {
    let [auth, sign] = st.identities();
    for id in [&auth, &sign] {
        tracing::info!(
            identity = id.role.as_str(),
            subject = %id.info.subject,
            serial = %id.info.serial,
            not_after = %fmt_time(id.info.not_after),
            days_left = id.days_left(now),
            "identity loaded"
        );
        if id.info.common_name.as_deref() != Some(id.role.recommended_cn()) {
            tracing::warn!(
                identity = id.role.as_str(),
                cn = id.info.common_name.as_deref().unwrap_or(""),
                recommended = id.role.recommended_cn(),
                "certificate CN differs from the recommended service name"
            );
        }
    }
    if auth.info.structure_id != sign.info.structure_id {
        tracing::warn!(
            auth_cli = auth.info.structure_id.as_deref().unwrap_or("?"),
            sign = sign.info.structure_id.as_deref().unwrap_or("?"),
            "AUTH_CLI and SIGN certificates name different structures"
        );
    }
}
