//! `/status` as a page for a browser: the overall state and its reasons first, then per-AMC
//! outcomes, certificates, CRLs and upstreams. No script, no external resource; the page
//! reloads itself every [`REFRESH_S`] seconds; dates never wrap.

use std::fmt::Write as _;

use super::Status;

/// The page's auto-refresh period (seconds).
pub const REFRESH_S: u32 = 30;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
    table{border-collapse:collapse;margin-bottom:1.5em}\
    td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
    td.n{text-align:right}.date{white-space:nowrap}td.dn{max-width:24em}\
    td.serial{font-family:monospace;font-size:.85em;max-width:12em;word-break:break-all}\
    .state{display:inline-block;padding:.4em 1em;border-radius:4px;font-size:1.4em;font-weight:bold}\
    .ready{background:#dfd;color:#060}.degraded{background:#fe9;color:#640}\
    .not-ready{background:#fcc;color:#900}.warn{color:#b60}.bad{color:#c22;font-weight:bold}\
    .meta{color:#555}";

fn e(s: &str) -> std::borrow::Cow<'_, str> {
    crate::fault::escape(s)
}

fn date(s: &str) -> String {
    format!("<span class=\"date\">{}</span>", e(s))
}

/// `3 d 4 h`, `2 h 05 min`, `4 min 09 s`.
pub fn duration(s: i64) -> String {
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {sec:02} s")
    }
}

fn days_class(days: i64) -> &'static str {
    if days < 7 {
        "bad"
    } else if days < super::EXPIRY_WARNING_DAYS {
        "warn"
    } else {
        ""
    }
}

impl Status {
    pub fn to_html(&self) -> String {
        let class = self.state.replace(' ', "-");
        let mut h = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
             <title>rocgw: {}</title><style>{STYLE}</style></head><body>\
             <h1>rocgw {}{}</h1><p id=\"state\" class=\"state {class}\">{}</p>",
            e(self.state),
            e(&self.version),
            if self.sandbox {
                " — SANDBOX (TEST CERTIFICATES)"
            } else {
                ""
            },
            e(&self.state.to_uppercase()),
        );
        if !self.reasons.is_empty() {
            h.push_str("<ul id=\"reasons\">");
            for r in &self.reasons {
                let _ = write!(h, "<li>{}</li>", e(r));
            }
            h.push_str("</ul>");
        }
        let reload = match &self.last_reload {
            None => "none since start".to_string(),
            Some(r) if r.outcome == "ok" => format!("ok at {}", date(&r.at)),
            Some(r) => format!("<span class=\"bad\">FAILED</span> at {}", date(&r.at)),
        };
        let _ = write!(
            h,
            "<p class=\"meta\">Page made at {} (refreshed every {REFRESH_S} s). Up {} since {}. \
             Last reload: {reload}. Open circuits: {}.</p>",
            date(&self.generated_at),
            e(&duration(self.uptime_s)),
            date(&self.started_at),
            self.circuits_open
        );
        self.amc_table(&mut h);
        self.certificate_tables(&mut h);
        h.push_str("<h2>Upstreams</h2><table><tr><th>upstream</th><th>requests ok</th><th>failed</th><th>connections opened</th><th>open</th></tr>");
        for u in &self.upstreams {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                e(&u.name),
                u.requests_ok,
                u.requests_failed,
                u.connections_opened,
                u.connections_open
            );
        }
        h.push_str("</table>");
        if let Some(n) = self.annuaire_cache_entries {
            let _ = write!(h, "<p>Annuaire cache: {n} entries</p>");
        }
        h.push_str("</body></html>\n");
        h
    }

    fn amc_table(&self, h: &mut String) {
        let _ = write!(
            h,
            "<h2>AMC calls</h2><table id=\"amcs\"><tr><th>AMC</th><th>calls, last {m} min</th>\
             <th>AMC failures, last {m} min</th><th>calls since start</th>\
             <th>AMC failures since start</th><th>answers since start</th></tr>",
            m = self.recent_window_s / 60
        );
        let joined = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{} {v}", e(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for a in &self.amcs {
            let failing = a.recent.failures > 0;
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td>\
                 <td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                e(&a.amc),
                a.recent.calls,
                if failing { " bad" } else { "" },
                a.recent.failures,
                a.calls,
                joined(&a.failures),
                joined(&a.outcomes)
            );
        }
        if self.amcs.is_empty() {
            h.push_str("<tr><td colspan=\"6\">no AMC call since start</td></tr>");
        }
        h.push_str("</table>");
    }

    fn certificate_tables(&self, h: &mut String) {
        h.push_str("<h2>Identities</h2><table><tr><th>name</th><th>subject</th><th>serial</th><th>structure</th><th>expires</th><th>days left</th></tr>");
        for i in &self.identities {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"dn\">{}</td><td class=\"serial\">{}</td><td>{}</td><td>{}</td><td class=\"n {}\">{}</td></tr>",
                e(&i.name),
                e(&i.subject),
                e(&i.serial),
                e(i.structure_id.as_deref().unwrap_or("-")),
                date(&i.not_after),
                days_class(i.days_left),
                i.days_left
            );
        }
        h.push_str("</table><h2>Trust anchors</h2><table><tr><th>for</th><th>subject</th><th>expires</th><th>days left</th></tr>");
        for a in &self.anchors {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n {}\">{}</td></tr>",
                e(&a.sphere),
                e(&a.subject),
                date(&a.not_after),
                days_class(a.days_left),
                a.days_left
            );
        }
        h.push_str("</table><h2>CRLs</h2><table><tr><th>for</th><th>issuer</th><th>this update</th><th>next update</th><th>entries</th></tr>");
        for c in &self.crls {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}{}</td><td class=\"n\">{}</td></tr>",
                e(&c.sphere),
                e(&c.issuer),
                date(&c.this_update),
                if c.stale { "bad" } else { "" },
                date(c.next_update.as_deref().unwrap_or("-")),
                if c.stale { " (stale)" } else { "" },
                c.entries
            );
        }
        h.push_str("</table>");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(super::duration(9), "0 min 09 s");
        assert_eq!(super::duration(3 * 3600 + 5 * 60), "3 h 05 min");
        assert_eq!(super::duration(2 * 86_400 + 7 * 3600), "2 d 7 h");
    }
}
