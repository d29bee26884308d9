//! The load run's report: a text summary for the terminal, JSON for machines, and a one-page
//! HTML file with three inline SVG plots (latency over time, errors over time, latency
//! distribution) that needs no network to view.
//!
//! Throughput and latency percentiles are those of the successful requests; how long the
//! failures took is reported apart (a refused connection answers in microseconds and would
//! make a dead gateway look fast). A run in which no request succeeded fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Mode, Options, Recorder, Stop};

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// The figures of `h` (microseconds); `None` when it holds nothing.
    fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            p50: to_ms(h.value_at_quantile(0.5)),
            p90: to_ms(h.value_at_quantile(0.9)),
            p99: to_ms(h.value_at_quantile(0.99)),
            p999: to_ms(h.value_at_quantile(0.999)),
            max: to_ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

/// One second of the run: its counts, and the latency of its successful requests (`null` when
/// none succeeded).
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub second: usize,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// A threshold and whether the run stayed within it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub name: String,
    pub limit: f64,
    pub measured: f64,
    pub passed: bool,
}

/// The requests of one route (`AMC/service`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RouteCount {
    pub ok: u64,
    pub errors: u64,
}

/// What `rocgw load` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The rocgw that ran the load: version and git commit.
    pub rocgw_version: String,
    /// When the run began (warm-up included), RFC 3339, UTC.
    pub started_at: String,
    pub target: String,
    pub mode: String,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub connections: usize,
    pub new_connection_per_request: bool,
    pub connections_opened: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Requests per second, failed ones included.
    pub attempted_rps: f64,
    pub warmup_requests: u64,
    pub warmup_ok: u64,
    /// Latency of the successful requests (zeros when none succeeded).
    pub latency_ms: Latency,
    /// How long the failed requests took, apart (`null` without errors).
    pub error_latency_ms: Option<Latency>,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Route (`AMC/service`) → its counts.
    pub by_route: BTreeMap<String, RouteCount>,
    /// Latency percentiles (in %) → milliseconds, of the successful requests.
    pub distribution: Vec<(f64, f64)>,
    pub timeline: Vec<Point>,
    pub thresholds: Vec<Verdict>,
    /// At least one request succeeded and every threshold held (else `rocgw load` exits 1).
    pub passed: bool,
}

/// Microseconds as a short human figure (`812 µs`, `3.21 ms`, `1.20 s`).
pub fn ms(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// When the run began, as wall-clock time.
fn started_at(r: &Recorder) -> String {
    let began = std::time::SystemTime::now() - r.started.elapsed();
    let unix = began
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::clock::fmt_time(i64::try_from(unix).unwrap_or(0))
}

fn thresholds(opts: &Options, requests: u64, error_rate: f64, p99: f64) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(limit) = opts.max_error_rate {
        out.push(Verdict {
            name: "max-error-rate".into(),
            limit,
            measured: error_rate,
            passed: error_rate <= limit && requests > 0,
        });
    }
    if let Some(limit) = opts.max_p99 {
        let limit = limit.as_secs_f64() * 1000.0;
        out.push(Verdict {
            name: "max-p99-ms".into(),
            limit,
            measured: p99,
            passed: p99 <= limit && requests > 0,
        });
    }
    out
}

fn timeline(r: &Recorder) -> Vec<Point> {
    r.seconds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let q = |x: f64| (!s.latency.is_empty()).then(|| to_ms(s.latency.value_at_quantile(x)));
            Point {
                second: i,
                ok: s.ok,
                errors: s.errors,
                p50_ms: q(0.5),
                p99_ms: q(0.99),
                max_ms: q(1.0),
            }
        })
        .collect()
}

impl Report {
    pub fn new(opts: &Options, r: &Recorder, connections_opened: u64) -> Report {
        let errors = r.errors_total();
        let requests = r.ok + errors;
        // The measured span: up to the last second with traffic (a requests-bounded run ends
        // when its last answer came).
        let duration_s = match opts.stop {
            Stop::After(d) => d.as_secs_f64(),
            Stop::Requests(_) => r.measuring_from.elapsed().as_secs_f64().max(1e-3),
        };
        let h = &r.latency;
        let latency_ms = Latency::of(h).unwrap_or_default();
        let distribution = if h.is_empty() {
            Vec::new()
        } else {
            [
                0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0,
            ]
            .iter()
            .map(|p| (*p, to_ms(h.value_at_quantile(p / 100.0))))
            .collect()
        };
        let error_rate = if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        };
        let thresholds = thresholds(opts, requests, error_rate, latency_ms.p99);
        let (mode, concurrency, rate) = match opts.mode {
            Mode::Closed { concurrency } => ("closed-loop", Some(concurrency), None),
            Mode::Open { rate } => ("open-loop", None, Some(rate)),
        };
        Report {
            rocgw_version: crate::version::long().to_string(),
            started_at: started_at(r),
            target: match &opts.transport {
                crate::load::Transport::Tcp => format!("http://{}", opts.target),
                crate::load::Transport::Tls { .. } => format!("https://{}", opts.target),
                crate::load::Transport::Unix(p) => format!("unix:{}", p.display()),
            },
            mode: mode.into(),
            concurrency,
            rate,
            connections: opts.connections,
            new_connection_per_request: opts.new_connection_per_request,
            connections_opened,
            warmup_s: opts.warmup.as_secs_f64(),
            duration_s,
            requests,
            ok: r.ok,
            errors,
            error_rate,
            throughput_rps: r.ok as f64 / duration_s,
            attempted_rps: requests as f64 / duration_s,
            warmup_requests: r.warmup_ok + r.warmup_errors,
            warmup_ok: r.warmup_ok,
            latency_ms,
            error_latency_ms: Latency::of(&r.error_latency),
            errors_by_kind: r.errors.clone(),
            by_route: r
                .by_route
                .iter()
                .map(|(k, (ok, errors))| {
                    (
                        k.clone(),
                        RouteCount {
                            ok: *ok,
                            errors: *errors,
                        },
                    )
                })
                .collect(),
            distribution,
            timeline: timeline(r),
            passed: r.ok > 0 && thresholds.iter().all(|t| t.passed),
            thresholds,
        }
    }

    /// True when at least one request succeeded and every threshold given held.
    pub fn passed(&self) -> bool {
        self.passed
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The terminal summary.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let how = match (self.concurrency, self.rate) {
            (Some(c), _) => format!("closed loop, concurrency {c}"),
            (_, Some(r)) => format!("open loop, {r} req/s"),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "rocgw load — {} — {how}, {} connection(s){} — {:.1} s measured after {:.1} s warm-up",
            self.target,
            self.connections,
            if self.new_connection_per_request {
                " (new one per request)"
            } else {
                ""
            },
            self.duration_s,
            self.warmup_s
        );
        let _ = writeln!(
            t,
            "run         {}, rocgw {}",
            self.started_at, self.rocgw_version
        );
        let _ = writeln!(
            t,
            "requests    {} (ok {}, errors {} = {:.2} %), connections opened {}",
            self.requests,
            self.ok,
            self.errors,
            self.error_rate * 100.0,
            self.connections_opened
        );
        let _ = writeln!(
            t,
            "throughput  {:.1} req/s successful (sent {:.1} req/s)",
            self.throughput_rps, self.attempted_rps
        );
        let l = &self.latency_ms;
        if self.ok == 0 {
            let _ = writeln!(t, "latency     none: no request succeeded");
        } else {
            let _ = writeln!(
                t,
                "latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (mean {:.2} ms)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
        }
        if self.errors_by_kind.is_empty() {
            let _ = writeln!(t, "errors      none");
        } else {
            let list: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(t, "errors      {}", list.join(", "));
        }
        if let Some(e) = &self.error_latency_ms {
            let _ = writeln!(
                t,
                "  failed in p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (not in the latency above)",
                e.p50, e.p99, e.max
            );
        }
        for (route, c) in &self.by_route {
            let _ = writeln!(t, "  {route:<28} ok {:>8}  errors {:>6}", c.ok, c.errors);
        }
        for v in &self.thresholds {
            let _ = writeln!(
                t,
                "threshold   {} {}: measured {} → {}",
                v.name,
                fmt_num(v.limit),
                fmt_num(v.measured),
                if v.passed { "ok" } else { "EXCEEDED" }
            );
        }
        if self.ok == 0 {
            let _ = writeln!(t, "result      FAILED: no request succeeded");
        }
        t
    }

    /// The report's three plots: latency over time, errors over time, the latency
    /// distribution.
    fn charts(&self) -> [String; 3] {
        let last = self.timeline.len().saturating_sub(1).max(1);
        let step = (last / 10).max(1);
        let time_ticks: Vec<(f64, String)> = (0..=last)
            .step_by(step)
            .map(|t| (t as f64, format!("{t}s")))
            .collect();
        // Seconds in which nothing succeeded have no latency: no point, rather than a zero.
        let per_second = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
            self.timeline
                .iter()
                .filter_map(|p| f(p).map(|y| (p.second as f64, y)))
                .collect()
        };
        let axis = "seconds since the end of the warm-up";
        let over_time = line_chart(
            "Latency over time (successful requests, each second of the run)",
            (axis, "latency (ms)"),
            &time_ticks,
            &[
                ("p50", "#1f77b4", per_second(|p| p.p50_ms)),
                ("p99", "#d62728", per_second(|p| p.p99_ms)),
                ("max", "#999999", per_second(|p| p.max_ms)),
            ],
        );
        let errors = line_chart(
            "Errors over time (failed requests in each second of the run)",
            (axis, "errors per second"),
            &time_ticks,
            &[
                ("errors", "#d62728", per_second(|p| Some(p.errors as f64))),
                ("ok", "#2ca02c", per_second(|p| Some(p.ok as f64))),
            ],
        );
        let pct_ticks: Vec<(f64, String)> = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99]
            .iter()
            .map(|p| (nines(*p), format!("p{p}")))
            .collect();
        let dist = line_chart(
            "Latency distribution (successful requests)",
            (
                "percentile (\"nines\" scale: p90, p99, p99.9 evenly spaced)",
                "latency (ms)",
            ),
            &pct_ticks,
            &[(
                "latency",
                "#2ca02c",
                self.distribution
                    .iter()
                    .map(|(p, v)| (nines(*p), *v))
                    .collect(),
            )],
        );
        [over_time, errors, dist]
    }

    /// The one-page HTML report.
    pub fn to_html(&self) -> String {
        let l = &self.latency_ms;
        let rows: String = self
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("<tr><td>{}</td><td>{v}</td></tr>", esc(k)))
            .collect();
        let routes: String = self
            .by_route
            .iter()
            .map(|(k, c)| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(k),
                    c.ok,
                    c.errors
                )
            })
            .collect();
        let verdicts: String = self
            .thresholds
            .iter()
            .map(|v| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                    esc(&v.name),
                    fmt_num(v.limit),
                    fmt_num(v.measured),
                    if v.passed { "ok" } else { "bad" },
                    if v.passed { "ok" } else { "EXCEEDED" }
                )
            })
            .collect();
        let failed = match &self.error_latency_ms {
            Some(e) => format!(
                "<p>Failed requests (not in the table above) took p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.</p>",
                e.p50, e.p99, e.max
            ),
            None => String::new(),
        };
        let verdict = if self.ok == 0 {
            "<p class=\"bad\">FAILED: no request succeeded.</p>"
        } else {
            ""
        };
        let [over_time, errors, dist] = self.charts();
        format!(
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rocgw load report</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.ok{{color:#2a2}}.bad{{color:#c22;font-weight:bold}}svg{{background:#fafafa;border:1px solid #ddd}}</style>
</head><body>
<h1>rocgw load report</h1>
<p>Run of <time datetime="{started}">{started}</time> by rocgw {version}.</p>
<p>Target <code>{target}</code>, {mode}, {conns} connection(s){newconn}, {dur:.1} s measured after {warm:.1} s warm-up; {opened} connection(s) opened.</p>
{verdict}
<table><tr><th>requests</th><th>ok</th><th>errors</th><th>error rate</th><th>throughput (successful)</th><th>sent</th></tr>
<tr><td>{req}</td><td>{ok}</td><td>{err}</td><td>{rate:.2} %</td><td>{tput:.1} req/s</td><td>{sent:.1} req/s</td></tr></table>
<h2>Latency of the successful requests</h2>
<table><tr><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>
<tr><td>{p50:.2} ms</td><td>{p90:.2} ms</td><td>{p99:.2} ms</td><td>{p999:.2} ms</td><td>{max:.2} ms</td><td>{mean:.2} ms</td></tr></table>
{failed}
{over_time}
{errors}
{dist}
<h2>Errors by kind</h2>
<table><tr><th>kind</th><th>count</th></tr>{rows}</table>
<h2>Routes</h2>
<table><tr><th>AMC/service</th><th>ok</th><th>errors</th></tr>{routes}</table>
<h2>Thresholds</h2>
<table><tr><th>threshold</th><th>limit</th><th>measured</th><th>verdict</th></tr>{verdicts}</table>
</body></html>
"#,
            started = esc(&self.started_at),
            version = esc(&self.rocgw_version),
            target = esc(&self.target),
            mode = esc(&self.mode),
            conns = self.connections,
            newconn = if self.new_connection_per_request {
                " (new one per request)"
            } else {
                ""
            },
            dur = self.duration_s,
            warm = self.warmup_s,
            opened = self.connections_opened,
            req = self.requests,
            ok = self.ok,
            err = self.errors,
            rate = self.error_rate * 100.0,
            tput = self.throughput_rps,
            sent = self.attempted_rps,
            p50 = l.p50,
            p90 = l.p90,
            p99 = l.p99,
            p999 = l.p999,
            max = l.max,
            mean = l.mean,
        )
    }
}

/// The x position of a percentile on a "nines" axis: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9.
fn nines(p: f64) -> f64 {
    let rest = (1.0 - p / 100.0).max(1e-5);
    -rest.log10()
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e12 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

fn esc(s: &str) -> String {
    crate::fault::escape(s).into_owned()
}

/// A named, coloured line of (x, y) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// An inline SVG line chart of a few series over a shared x axis; `labels` names the x and y
/// axes (the y axis with its unit).
fn line_chart(
    title: &str,
    labels: (&str, &str),
    x_ticks: &[(f64, String)],
    series: &[Series<'_>],
) -> String {
    // `left` leaves room for the tick values and the y axis's name.
    let (w, h, pad, left) = (900.0, 300.0, 50.0, 72.0);
    let all = series.iter().flat_map(|s| s.2.iter());
    let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
    for (x, y) in all {
        x_max = x_max.max(*x);
        y_max = y_max.max(*y);
    }
    let x_max = if x_max <= 0.0 { 1.0 } else { x_max };
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.1 };
    let px = |x: f64| left + x / x_max * (w - left - pad);
    let py = |y: f64| h - pad - y / y_max * (h - 2.0 * pad);
    let mut svg = format!(
        "<h2>{}</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{pad}\" x2=\"{left}\" y2=\"{b}\" stroke=\"#333\"/>",
        b = h - pad,
        r = w - pad
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{:.1}</text><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/>",
            left - 5.0,
            py(y) + 4.0,
            y,
            py(y),
            w - pad,
            py(y)
        );
    }
    let (x_label, y_label) = labels;
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text><text class=\"y-axis\" transform=\"translate(14 {}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
        (left + w - pad) / 2.0,
        h - 10.0,
        esc(x_label),
        h / 2.0,
        esc(y_label),
    );
    for (x, label) in x_ticks.iter().filter(|(x, _)| *x <= x_max) {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#333\"/><text x=\"{0:.1}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\">{4}</text>",
            px(*x),
            h - pad,
            h - pad + 4.0,
            h - pad + 16.0,
            esc(label)
        );
    }
    for (i, (name, color, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{color}\">{}</text>",
            path.join(" "),
            left + 10.0 + 80.0 * i as f64,
            pad - 10.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}
