//! `GET /status`: what is in force — identities, anchors, CRLs, upstream health, annuaire
//! cache — as JSON, or as a small page for a browser. Also what makes `/readyz` fail.

use serde::Serialize;

use crate::clock::fmt_time;
use crate::config::RevocationPolicy;
use crate::runtime::{Runtime, Structure};
use crate::trust::TrustSet;

#[derive(Debug, Clone, Serialize)]
pub struct IdentityStatus {
    pub name: String,
    pub role: String,
    pub subject: String,
    pub serial: String,
    pub structure_id: Option<String>,
    pub not_after: String,
    pub days_left: i64,
    pub expires_in_s: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnchorStatus {
    pub sphere: String,
    pub subject: String,
    pub not_after: String,
    pub days_left: i64,
    pub expires_in_s: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrlStatus {
    pub sphere: String,
    pub issuer: String,
    pub file: String,
    pub this_update: String,
    pub next_update: Option<String>,
    pub next_update_in_s: Option<i64>,
    pub age_s: i64,
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

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: String,
    pub sandbox: bool,
    pub ready: bool,
    /// Why `/readyz` fails, if it does.
    pub problems: Vec<String>,
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
            days_left: a.info.days_left(now),
            expires_in_s: a.info.not_after - now,
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
            next_update: c.next_update.map(fmt_time),
            next_update_in_s: c.next_update.map(|n| n - now),
            age_s: now - c.this_update,
            entries: c.len(),
            stale: c.is_stale(now),
        });
    }
}

/// Upstream requests answered and failed, by upstream, from one gather of the registry.
fn upstream_outcomes() -> std::collections::HashMap<String, (u64, u64)> {
    let mut out = std::collections::HashMap::new();
    for f in crate::metrics::get().registry.gather() {
        if f.name() != "rocgw_upstream_requests_total" {
            continue;
        }
        for m in f.get_metric() {
            let label = |k: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == k)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let e: &mut (u64, u64) = out.entry(label("upstream")).or_default();
            let n = m.get_counter().get_value() as u64;
            if label("outcome") == "ok" {
                e.0 += n;
            } else {
                e.1 += n;
            }
        }
    }
    out
}

impl Status {
    /// Why `/readyz` fails: an expired identity, a CRL past its next update under a `hard`
    /// policy. Cheap: no metrics gathered.
    pub fn problems(rt: &Runtime, now: i64) -> Vec<String> {
        let cfg = rt.config();
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
        let hard = |p: RevocationPolicy| p == RevocationPolicy::Hard;
        let mut stale = |trust: &TrustSet, policy: RevocationPolicy, sphere: &str| {
            for c in trust.crls.crls() {
                if c.is_stale(now) && hard(policy) {
                    problems.push(format!(
                        "CRL {} is past its next update (hard revocation policy{sphere})",
                        c.source.display()
                    ));
                }
            }
        };
        let trust = rt.trust();
        stale(&trust.amc, cfg.amc.revocation, "");
        if let Some(an) = &cfg.annuaire {
            stale(&trust.annuaire, an.revocation, ", annuaire");
        }
        problems
    }

    pub fn snapshot(rt: &Runtime, sandbox: bool, cache: Option<usize>, now: i64) -> Status {
        let cfg = rt.config();
        let problems = Status::problems(rt, now);
        let mut identities = Vec::new();
        for id in rt.structures().flat_map(Structure::identities) {
            identities.push(IdentityStatus {
                name: id.field.clone(),
                role: id.role.as_str().into(),
                subject: id.info.subject.clone(),
                serial: id.info.serial.clone(),
                structure_id: id.info.structure_id.clone(),
                not_after: fmt_time(id.info.not_after),
                days_left: id.days_left(now),
                expires_in_s: id.info.not_after - now,
            });
        }
        let trust = rt.trust();
        let (amc, ann) = (&trust.amc, &trust.annuaire);
        let mut a = Vec::new();
        anchors("amc", amc, now, &mut a);
        anchors("annuaire", ann, now, &mut a);
        let mut c = Vec::new();
        crls("amc", amc, now, &mut c);
        if cfg.annuaire.is_some() {
            crls("annuaire", ann, now, &mut c);
        }
        let mut upstreams = Vec::new();
        let outcomes = upstream_outcomes();
        for name in ["amc", "annuaire"] {
            if name == "annuaire" && cfg.annuaire.is_none() {
                continue;
            }
            let m = crate::metrics::get();
            upstreams.push(UpstreamStatus {
                name: name.into(),
                requests_ok: outcomes.get(name).map_or(0, |o| o.0),
                requests_failed: outcomes.get(name).map_or(0, |o| o.1),
                connections_opened: m.upstream_connections.with_label_values(&[name]).get(),
                connections_open: m.upstream_open.with_label_values(&[name]).get(),
            });
        }
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            sandbox,
            ready: problems.is_empty(),
            problems,
            identities,
            anchors: a,
            crls: c,
            upstreams,
            annuaire_cache_entries: cache,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// A small readable page (no script, no external resource).
    pub fn to_html(&self) -> String {
        let e = |s: &str| crate::fault::escape(s).into_owned();
        let mut h = format!(
            "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>rocgw status</title>\
             <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
             td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}.warn{{color:#b60}}.bad{{color:#c22;font-weight:bold}}</style>\
             </head><body><h1>rocgw {}{}</h1><p class=\"{}\">{}</p>",
            e(&self.version),
            if self.sandbox { " — SANDBOX (TEST CERTIFICATES)" } else { "" },
            if self.ready { "" } else { "bad" },
            if self.ready {
                "ready".to_string()
            } else {
                format!("NOT READY: {}", e(&self.problems.join("; ")))
            }
        );
        let class = |days: i64| {
            if days < 7 {
                "bad"
            } else if days < 30 {
                "warn"
            } else {
                ""
            }
        };
        h.push_str("<h2>Identities</h2><table><tr><th>name</th><th>subject</th><th>serial</th><th>structure</th><th>expires</th><th>days left</th></tr>");
        for i in &self.identities {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                e(&i.name),
                e(&i.subject),
                e(&i.serial),
                e(i.structure_id.as_deref().unwrap_or("-")),
                e(&i.not_after),
                class(i.days_left),
                i.days_left
            ));
        }
        h.push_str("</table><h2>Trust anchors</h2><table><tr><th>for</th><th>subject</th><th>expires</th><th>days left</th></tr>");
        for a in &self.anchors {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                e(&a.sphere),
                e(&a.subject),
                e(&a.not_after),
                class(a.days_left),
                a.days_left
            ));
        }
        h.push_str("</table><h2>CRLs</h2><table><tr><th>for</th><th>issuer</th><th>this update</th><th>next update</th><th>entries</th></tr>");
        for c in &self.crls {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                e(&c.sphere),
                e(&c.issuer),
                e(&c.this_update),
                if c.stale { "bad" } else { "" },
                e(c.next_update.as_deref().unwrap_or("-")),
                c.entries
            ));
        }
        h.push_str("</table><h2>Upstreams</h2><table><tr><th>upstream</th><th>requests ok</th><th>failed</th><th>connections opened</th><th>open</th></tr>");
        for u in &self.upstreams {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&u.name),
                u.requests_ok,
                u.requests_failed,
                u.connections_opened,
                u.connections_open
            ));
        }
        h.push_str("</table>");
        if let Some(n) = self.annuaire_cache_entries {
            h.push_str(&format!("<p>Annuaire cache: {n} entries</p>"));
        }
        h.push_str("</body></html>\n");
        h
    }
}
impl Status {
    /// Sets the certificate and CRL gauges from a status snapshot (on every scrape).
    pub fn set_certificate_gauges(&self) {
        let s = self;
        let m = crate::metrics::get();
        let cn = |dn: &str| dn.rsplit("CN=").next().unwrap_or(dn).to_string();
        m.cert_expiry.reset();
        for i in &s.identities {
            let structure = i.structure_id.as_deref().unwrap_or("-");
            m.cert_expiry
                .with_label_values(&["identity", i.role.as_str(), structure])
                .set(i.expires_in_s);
        }
        for a in &s.anchors {
            m.cert_expiry
                .with_label_values(&[&format!("anchor-{}", a.sphere), &cn(&a.subject), "-"])
                .set(a.expires_in_s);
        }
        m.crl_age.reset();
        m.crl_next_update.reset();
        // An authority may have several CRLs in force (one per scope: its CRL and its ARL):
        // its gauges show the oldest and the nearest next update.
        let mut by_issuer = std::collections::BTreeMap::new();
        for c in &s.crls {
            let (age, next) = by_issuer
                .entry((c.sphere.as_str(), cn(&c.issuer)))
                .or_insert((c.age_s, c.next_update_in_s));
            *age = (*age).max(c.age_s);
            *next = match (*next, c.next_update_in_s) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        for ((sphere, issuer), (age, next)) in by_issuer {
            let labels = [sphere, issuer.as_str()];
            m.crl_age.with_label_values(&labels).set(age);
            if let Some(n) = next {
                m.crl_next_update.with_label_values(&labels).set(n);
            }
        }
    }
}
