//! `GET /status`: what is in force — identities, anchors, CRLs, upstream health, annuaire
//! cache — as JSON, or as a page for a browser (`status/page`), with an overall state at the
//! top: `ready`, `degraded` (serving, but something needs a look: open circuits, recent AMC
//! failures, certificates near expiry, stale CRLs under the soft policy, a failed reload) or
//! `not ready` (what makes `/readyz` fail: local conditions only).

mod gauges;
mod page;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::fmt_time;
use crate::config::RevocationPolicy;
use crate::metrics::{self, Counts, RECENT_WINDOW_S};
use crate::runtime::{Runtime, Structure};
use crate::trust::TrustSet;

/// Above this share of AMC failures over the recent window, `/status` says `degraded` (the
/// `RocgwErrorRateHigh` alert fires at the same share over 5 minutes).
pub const DEGRADED_FAILURE_RATE: f64 = 0.05;
/// A certificate that expires within this many days makes `/status` say `degraded` (the
/// procedure's one-month alert, as everywhere else).
pub use crate::identity::EXPIRY_WARNING_DAYS;

#[derive(Debug, Clone, Serialize)]
pub struct IdentityStatus {
    pub name: String,
    pub role: String,
    pub subject: String,
    pub serial: String,
    pub structure_id: Option<String>,
    pub not_after: String,
    pub not_after_unix: i64,
    pub days_left: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnchorStatus {
    pub sphere: String,
    pub subject: String,
    pub not_after: String,
    pub not_after_unix: i64,
    pub days_left: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrlStatus {
    pub sphere: String,
    pub issuer: String,
    pub file: String,
    pub this_update: String,
    pub this_update_unix: i64,
    pub next_update: Option<String>,
    pub next_update_unix: Option<i64>,
    pub entries: usize,
    pub stale: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub connections_opened: u64,
    pub connections_open: i64,
}

/// One AMC (its metric label: the AMC number, or `other`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AmcStatus {
    pub amc: String,
    /// Calls that reached the AMC stage and AMC failures, over the recent window.
    pub recent: Counts,
    /// The same since start, failures by reason.
    pub calls: u64,
    pub failures: BTreeMap<String, u64>,
    /// Gateway requests for this AMC since start, by outcome (`ok`, `amc-error`, fault code).
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    pub at: String,
    pub outcome: &'static str,
}

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `ready`, `degraded` or `not ready`.
    pub state: &'static str,
    /// Why the state is not `ready`: what makes `/readyz` fail first, then what degrades.
    pub reasons: Vec<String>,
    pub version: String,
    pub sandbox: bool,
    /// What `/readyz` says.
    pub ready: bool,
    /// Why `/readyz` fails, if it does.
    pub problems: Vec<String>,
    /// When this page was made, when rocgw started, and the uptime in seconds.
    pub generated_at: String,
    pub started_at: String,
    pub uptime_s: i64,
    /// The last reload of certificates and CRLs since start, if any.
    pub last_reload: Option<ReloadStatus>,
    pub circuits_open: i64,
    /// Length of the recent window of `amcs[].recent` and of the failure rate (seconds).
    pub recent_window_s: i64,
    /// AMC failures / AMC calls over the recent window (`null`: no call).
    pub amc_failure_rate: Option<f64>,
    pub amcs: Vec<AmcStatus>,
    pub identities: Vec<IdentityStatus>,
    pub anchors: Vec<AnchorStatus>,
    pub crls: Vec<CrlStatus>,
    pub upstreams: Vec<UpstreamStatus>,
    pub annuaire_cache_entries: Option<usize>,
}

fn anchors(sphere: &str, t: &TrustSet, now: i64, out: &mut Vec<AnchorStatus>) {
    for a in &t.anchors.anchors {
        out.push(AnchorStatus {
            sphere: sphere.into(),
            subject: a.info.subject.clone(),
            not_after: fmt_time(a.info.not_after),
            not_after_unix: a.info.not_after,
            days_left: a.info.days_left(now),
        });
    }
}

fn crls(sphere: &str, t: &TrustSet, now: i64, out: &mut Vec<CrlStatus>) {
    for c in t.crls.crls() {
        out.push(CrlStatus {
            sphere: sphere.into(),
            issuer: c.issuer.clone(),
            file: c.source.display().to_string(),
            this_update: fmt_time(c.this_update),
            this_update_unix: c.this_update,
            next_update: c.next_update.map(fmt_time),
            next_update_unix: c.next_update,
            entries: c.len(),
            stale: c.is_stale(now),
        });
    }
}

/// The samples of one metric family in a gather: (labels, value).
fn samples<'a>(
    families: &'a [prometheus::proto::MetricFamily],
    name: &'a str,
) -> impl Iterator<Item = (BTreeMap<&'a str, &'a str>, u64)> + 'a {
    families
        .iter()
        .filter(move |f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .map(|m| {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            (labels, m.get_counter().get_value() as u64)
        })
}

/// Upstream requests answered and failed, by upstream, and what each AMC saw.
fn from_counters(now: i64) -> (BTreeMap<String, (u64, u64)>, BTreeMap<String, AmcStatus>) {
    // These four counters only: gathering the registry would also read the process collector's
    // /proc files on every page.
    let m = metrics::get();
    let families: Vec<_> = [
        &m.upstream_requests,
        &m.requests,
        &m.amc_calls,
        &m.amc_failures,
    ]
    .into_iter()
    .flat_map(prometheus::core::Collector::collect)
    .collect();
    let mut upstreams: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (l, n) in samples(&families, "rocgw_upstream_requests_total") {
        let e = upstreams.entry(l["upstream"].to_string()).or_default();
        if l["outcome"] == "ok" {
            e.0 += n;
        } else {
            e.1 += n;
        }
    }
    let mut amcs: BTreeMap<String, AmcStatus> = BTreeMap::new();
    fn amc<'m>(amcs: &'m mut BTreeMap<String, AmcStatus>, label: &str) -> &'m mut AmcStatus {
        amcs.entry(label.to_string()).or_insert_with(|| AmcStatus {
            amc: label.to_string(),
            ..AmcStatus::default()
        })
    }
    for (l, n) in samples(&families, "rocgw_requests_total") {
        if l["route"] == "amc" && l["amc"] != "-" && n > 0 {
            *amc(&mut amcs, l["amc"])
                .outcomes
                .entry(l["outcome"].into())
                .or_default() += n;
        }
    }
    for (l, n) in samples(&families, "rocgw_amc_calls_total") {
        if n > 0 {
            amc(&mut amcs, l["amc"]).calls = n;
        }
    }
    for (l, n) in samples(&families, "rocgw_amc_failures_total") {
        if n > 0 {
            amc(&mut amcs, l["amc"])
                .failures
                .insert(l["reason"].into(), n);
        }
    }
    for (label, c) in metrics::get().recent.counts(now) {
        if c.calls > 0 {
            amc(&mut amcs, &label).recent = c;
        }
    }
    (upstreams, amcs)
}

/// Calls and failures of every AMC over the recent window.
fn recent_total(amcs: &[AmcStatus]) -> Counts {
    amcs.iter().fold(Counts::default(), |t, a| Counts {
        calls: t.calls + a.recent.calls,
        failures: t.failures + a.recent.failures,
    })
}

/// The identities, trust anchors and CRLs in force: what `/status` lists and what the
/// certificate gauges of `/metrics` are set from (no metrics gathered).
pub struct Certificates {
    pub identities: Vec<IdentityStatus>,
    pub anchors: Vec<AnchorStatus>,
    pub crls: Vec<CrlStatus>,
}

impl Certificates {
    pub fn of(rt: &Runtime, now: i64) -> Certificates {
        let identities = rt
            .structures()
            .flat_map(Structure::identities)
            .map(|id| IdentityStatus {
                name: id.field.clone(),
                role: id.role.as_str().into(),
                subject: id.info.subject.clone(),
                serial: id.info.serial.clone(),
                structure_id: id.info.structure_id.clone(),
                not_after: fmt_time(id.info.not_after),
                not_after_unix: id.info.not_after,
                days_left: id.days_left(now),
            })
            .collect();
        let trust = rt.trust();
        let (amc, ann) = (&trust.amc, &trust.annuaire);
        let mut a = Vec::new();
        anchors("amc", amc, now, &mut a);
        anchors("annuaire", ann, now, &mut a);
        let mut c = Vec::new();
        crls("amc", amc, now, &mut c);
        if rt.config().annuaire.is_some() {
            crls("annuaire", ann, now, &mut c);
        }
        Certificates {
            identities,
            anchors: a,
            crls: c,
        }
    }
}

impl Status {
    /// Why `/readyz` fails: an expired identity, a CRL past its next update under a `hard`
    /// policy. Cheap: no metrics gathered.
    pub fn problems(rt: &Runtime, now: i64) -> Vec<String> {
        let mut problems = Vec::new();
        for id in rt.structures().flat_map(Structure::identities) {
            if now >= id.info.not_after {
                problems.push(format!(
                    "{}: certificate expired on {}",
                    id.field,
                    fmt_time(id.info.not_after)
                ));
            }
        }
        stale_crls(rt, now, |c, policy, sphere| {
            if policy == RevocationPolicy::Hard {
                problems.push(format!(
                    "CRL {} is past its next update (hard revocation policy{sphere})",
                    c.source.display()
                ));
            }
        });
        problems
    }

    /// `ready` is what the admin listener says (configuration and credentials loaded).
    pub fn snapshot(rt: &Runtime, ready: bool, cache: Option<usize>, now: i64) -> Status {
        let cfg = rt.config();
        let mut problems = Status::problems(rt, now);
        if !ready {
            problems.insert(0, "configuration and credentials not loaded yet".into());
        }
        let Certificates {
            identities,
            anchors: a,
            crls: c,
        } = Certificates::of(rt, now);
        let (outcomes, amcs) = from_counters(now);
        let m = metrics::get();
        let upstreams = ["amc", "annuaire"]
            .into_iter()
            .filter(|name| *name == "amc" || cfg.annuaire.is_some())
            .map(|name| UpstreamStatus {
                name: name.into(),
                requests_ok: outcomes.get(name).map_or(0, |o| o.0),
                requests_failed: outcomes.get(name).map_or(0, |o| o.1),
                connections_opened: m.upstream_connections.with_label_values(&[name]).get(),
                connections_open: m.upstream_open.with_label_values(&[name]).get(),
            })
            .collect();
        let amcs: Vec<AmcStatus> = amcs.into_values().collect();
        let Counts { calls, failures } = recent_total(&amcs);
        let mut s = Status {
            state: "ready",
            reasons: Vec::new(),
            version: crate::version::VERSION.into(),
            sandbox: false,
            ready: problems.is_empty(),
            problems,
            generated_at: fmt_time(now),
            started_at: fmt_time(m.started as i64),
            uptime_s: now - m.started as i64,
            last_reload: m.last_reload().map(|(at, ok)| ReloadStatus {
                at: fmt_time(at),
                outcome: if ok { "ok" } else { "failed" },
            }),
            circuits_open: m.circuits_open.get(),
            recent_window_s: RECENT_WINDOW_S,
            amc_failure_rate: (calls > 0).then(|| failures as f64 / calls as f64),
            amcs,
            identities,
            anchors: a,
            crls: c,
            upstreams,
            annuaire_cache_entries: cache,
        };
        let degraded = s.degraded(rt, now);
        s.reasons = s.problems.iter().cloned().chain(degraded).collect();
        s.state = match (s.ready, s.reasons.is_empty()) {
            (false, _) => "not ready",
            (true, false) => "degraded",
            (true, true) => "ready",
        };
        s
    }

    /// What needs a look while rocgw still serves.
    fn degraded(&self, rt: &Runtime, now: i64) -> Vec<String> {
        let mut why = Vec::new();
        if self.circuits_open > 0 {
            why.push(format!(
                "{} AMC endpoint circuit(s) open: their calls fail fast (amc-unavailable)",
                self.circuits_open
            ));
        }
        if let Some(rate) = self
            .amc_failure_rate
            .filter(|r| *r >= DEGRADED_FAILURE_RATE)
        {
            let by_amc: Vec<String> = self
                .amcs
                .iter()
                .filter(|a| a.recent.failures > 0)
                .map(|a| format!("{} {}/{}", a.amc, a.recent.failures, a.recent.calls))
                .collect();
            let Counts {
                calls,
                failures: failed,
            } = recent_total(&self.amcs);
            why.push(format!(
                "AMC failure rate {:.1} % over the last {} min ({failed} of {calls} calls; \
                 failing, failed/calls: {})",
                rate * 100.0,
                RECENT_WINDOW_S / 60,
                by_amc.join(", ")
            ));
        }
        let soon = |d: i64| (0..EXPIRY_WARNING_DAYS).contains(&d);
        for i in self.identities.iter().filter(|i| soon(i.days_left)) {
            why.push(format!(
                "certificate {} ({}) expires in {} days, on {}",
                i.name,
                i.structure_id.as_deref().unwrap_or("-"),
                i.days_left,
                i.not_after
            ));
        }
        for a in &self.anchors {
            if a.days_left < EXPIRY_WARNING_DAYS {
                why.push(format!(
                    "trust anchor {} ({}) expires in {} days, on {}",
                    a.subject, a.sphere, a.days_left, a.not_after
                ));
            }
        }
        stale_crls(rt, now, |c, policy, sphere| {
            if policy == RevocationPolicy::Soft {
                why.push(format!(
                    "CRL {} is past its next update (soft revocation policy{sphere}: unknown \
                     statuses are let through)",
                    c.source.display()
                ));
            }
        });
        if let Some(r) = self.last_reload.as_ref().filter(|r| r.outcome != "ok") {
            why.push(format!(
                "the last reload, at {}, failed: each part that failed keeps its previous certificates \
                 or CRLs (the log says which, and why)",
                r.at
            ));
        }
        why
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// Calls `f` on each stale CRL in force, with its sphere's revocation policy.
fn stale_crls(
    rt: &Runtime,
    now: i64,
    mut f: impl FnMut(&crate::trust::Crl, RevocationPolicy, &str),
) {
    let cfg = rt.config();
    let trust = rt.trust();
    let mut each = |t: &TrustSet, policy: RevocationPolicy, sphere: &str| {
        for c in t.crls.crls().filter(|c| c.is_stale(now)) {
            f(c, policy, sphere);
        }
    };
    each(&trust.amc, cfg.amc.revocation, "");
    if let Some(an) = &cfg.annuaire {
        each(&trust.annuaire, an.revocation, ", annuaire");
    }
}
