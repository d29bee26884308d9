//! `rocgw load`: drives ROC traffic at a gateway (by default the sandbox's) and says how the
//! exchange behaves: a live progress line, then throughput, latency percentiles from an HDR
//! histogram, errors by kind, and optional JSON and HTML reports; non-zero exit when a
//! threshold is exceeded.
//!
//! Two modes: closed loop (`--concurrency` workers, each sends when its answer came back) and
//! open loop (`--rate` requests per second on a fixed schedule; latency is measured from the
//! *intended* send time, so a slow server cannot hide its latency by slowing the sender down —
//! no coordinated omission).

mod report;
mod template;
mod transport;
mod wire;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub use report::Report;
pub use template::{builtin_template, render, Template};
use transport::Pool;
pub use transport::{tls_transport, Transport};

/// One (AMC, service) pair of the traffic mix and its weight. The service [`ANNUAIRE`] is a
/// lookup of the AMC through the gateway's `/annuaire` pass-through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixEntry {
    pub amc: String,
    pub service: String,
    pub weight: u32,
}

/// The mix's name for the annuaire pass-through: `annuaire/AMC` looks the AMC up.
pub const ANNUAIRE: &str = "annuaire";

impl MixEntry {
    /// The gateway path this entry's requests go to.
    pub fn path(&self) -> String {
        if self.service == ANNUAIRE {
            "/annuaire".to_string()
        } else {
            format!("/amc/{}/{}", self.amc, self.service)
        }
    }
}

/// Parses `AMC/service[=weight]` items separated by commas or new lines (`#` starts a comment).
pub fn parse_mix(text: &str) -> Result<Vec<MixEntry>, String> {
    let mut out = Vec::new();
    for item in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (route, weight) = match item.split_once('=') {
            Some((r, w)) => (
                r.trim(),
                w.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{item:?}: the weight must be a whole number"))?,
            ),
            None => (item, 1),
        };
        let Some((amc, service)) = route.split_once('/') else {
            return Err(format!("{item:?}: expected AMC/service[=weight]"));
        };
        if amc.is_empty() || service.is_empty() || service.contains('/') {
            return Err(format!("{item:?}: expected AMC/service[=weight]"));
        }
        // `annuaire/AMC`: a lookup of AMC through the pass-through.
        let (amc, service) = if amc == ANNUAIRE {
            (service, ANNUAIRE)
        } else {
            (amc, service)
        };
        if weight > 0 {
            out.push(MixEntry {
                amc: amc.to_string(),
                service: service.to_ascii_lowercase(),
                weight,
            });
        }
    }
    if out.is_empty() {
        return Err("the mix is empty".into());
    }
    Ok(out)
}

/// The sandbox's traffic: mostly IDB, some calculations and cancellations, two AMCs.
pub const DEFAULT_MIX: &str =
    "99999991/idb=5,99999991/clc=2,99999991/simulation=1,99999991/annulation=1,99999992/idb=1";

/// Parses `250us`, `500ms`, `10s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 500ms, 10s or 2m"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit (us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?}: out of range"))
}

/// When the run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

/// How requests are issued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed { concurrency: usize },
    Open { rate: f64 },
}

/// Everything a run needs (built from the command line).
#[derive(Debug, Clone)]
pub struct Options {
    pub target: SocketAddr,
    /// How connections reach the target.
    pub transport: Transport,
    /// `Authorization` header value (a bearer token), sent with every request.
    pub authorization: Option<http::header::HeaderValue>,
    pub mix: Vec<MixEntry>,
    /// Body templates by service; services without one use the built-in template.
    pub templates: BTreeMap<String, String>,
    pub mode: Mode,
    pub stop: Stop,
    pub warmup: Duration,
    pub connections: usize,
    pub new_connection_per_request: bool,
    pub timeout: Duration,
    pub progress: bool,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub max_error_rate: Option<f64>,
    pub max_p99: Option<Duration>,
}

// ---------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// One second of the measured run.
pub struct Second {
    pub ok: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

/// What the run measured.
pub struct Recorder {
    pub started: Instant,
    pub measuring_from: Instant,
    /// Successful requests only; failed ones in `error_latency`.
    pub latency: Histogram<u64>,
    pub error_latency: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub by_route: BTreeMap<String, (u64, u64)>,
    pub warmup_ok: u64,
    pub warmup_errors: u64,
    pub seconds: Vec<Second>,
}

impl Recorder {
    fn new(warmup: Duration) -> Recorder {
        let now = Instant::now();
        Recorder {
            started: now,
            measuring_from: now + warmup,
            latency: histogram(),
            error_latency: histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            by_route: BTreeMap::new(),
            warmup_ok: 0,
            warmup_errors: 0,
            seconds: Vec::new(),
        }
    }

    fn record(&mut self, sent: Instant, done: Instant, route: &str, error: Option<String>) {
        if sent < self.measuring_from {
            match error {
                None => self.warmup_ok += 1,
                Some(_) => self.warmup_errors += 1,
            }
            return;
        }
        let us = done.saturating_duration_since(sent).as_micros().max(1) as u64;
        let sec = done
            .saturating_duration_since(self.measuring_from)
            .as_secs() as usize;
        while self.seconds.len() <= sec {
            self.seconds.push(Second {
                ok: 0,
                errors: 0,
                latency: Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid bounds"),
            });
        }
        let s = &mut self.seconds[sec];
        let r = match self.by_route.get_mut(route) {
            Some(r) => r,
            None => self.by_route.entry(route.to_string()).or_default(),
        };
        match error {
            None => {
                let _ = self.latency.record(us);
                let _ = s.latency.record(us);
                self.ok += 1;
                s.ok += 1;
                r.0 += 1;
            }
            Some(kind) => {
                let _ = self.error_latency.record(us);
                *self.errors.entry(kind).or_default() += 1;
                s.errors += 1;
                r.1 += 1;
            }
        }
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// A mix entry made ready once: its body template read, its path and route label written.
struct Prepared {
    template: Template,
    /// The request's head, but its Content-Length.
    head: Vec<u8>,
    route: String,
}

struct Shared {
    opts: Options,
    pool: Pool,
    /// Per mix entry, what does not change from one request to the next.
    prepared: Vec<Prepared>,
    weights: Vec<u32>,
    recorder: Mutex<Recorder>,
    seq: AtomicU64,
    stop: AtomicBool,
    deadline: Option<Instant>,
    measuring_from: Instant,
    measured: AtomicU64,
    in_flight: AtomicU64,
}

impl Shared {
    /// Takes the next request number, or `None` once the run is over.
    fn next(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                self.stop.store(true, Ordering::Relaxed);
                return None;
            }
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        if let Stop::Requests(max) = self.opts.stop {
            // Warm-up requests come on top of the measured ones.
            if Instant::now() >= self.measuring_from
                && self.measured.fetch_add(1, Ordering::Relaxed) >= max
            {
                self.stop.store(true, Ordering::Relaxed);
                return None;
            }
        }
        Some(n)
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> usize {
        let total: u32 = self.weights.iter().sum();
        let mut x = rng.u32(0..total);
        for (i, w) in self.weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        0
    }

    /// Sends one request meant to leave at `intended` and records it.
    async fn one(&self, seq: u64, intended: Instant, rng: &mut fastrand::Rng) {
        let i = self.pick(rng);
        let (e, p) = (&self.opts.mix[i], &self.prepared[i]);
        let body = p.template.render(&e.amc, &e.service, seq, rng);
        let route = p.route.as_str();
        let send = self.pool.send(body.as_bytes(), &p.head);
        let result = tokio::time::timeout(self.opts.timeout, send).await;
        let error = match result {
            Err(_) => Some("timeout".to_string()),
            Ok(Err(kind)) => Some(kind.to_string()),
            Ok(Ok((status, _))) if status.is_success() => None,
            Ok(Ok((status, Some(code)))) => Some(format!("{code} (HTTP {})", status.as_u16())),
            // No X-Rocgw-Error: the AMC's own answer (a SOAP fault), passed through.
            Ok(Ok((status, None))) => Some(format!("amc-answer (HTTP {})", status.as_u16())),
        };
        let done = Instant::now();
        self.recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(intended, done, route, error);
    }
}

/// Open loop: requests waiting for an answer beyond this are counted as `client-overload`.
const MAX_IN_FLIGHT: u64 = 20_000;

/// Runs the load and returns its report (also written to `--json`/`--html` when asked).
pub async fn run(opts: Options) -> Result<Report, String> {
    let pool = Pool::new(
        opts.target,
        opts.transport.clone(),
        opts.authorization.as_ref(),
        opts.connections,
        !opts.new_connection_per_request,
    );
    let prepared = opts
        .mix
        .iter()
        .map(|e| {
            let text = (opts.templates.get(&e.service).cloned())
                .unwrap_or_else(|| builtin_template(&e.service));
            // Its placeholders are element text: the envelope's namespace reads as it is.
            let version =
                crate::soap::sniff(text.as_bytes()).unwrap_or(crate::soap::DEFAULT_FAULT_VERSION);
            let action = match e.service.as_str() {
                ANNUAIRE => crate::annuaire::SEARCH_ACTION,
                _ => "\"\"",
            };
            Ok(Prepared {
                template: Template::parse(&text),
                head: pool.head(&e.path(), version, action)?,
                route: format!("{}/{}", e.amc, e.service),
            })
        })
        .collect::<Result<_, String>>()?;
    let recorder = Recorder::new(opts.warmup);
    let measuring_from = recorder.measuring_from;
    let deadline = match opts.stop {
        Stop::After(d) => Some(measuring_from + d),
        Stop::Requests(_) => None,
    };
    let shared = Arc::new(Shared {
        pool,
        weights: opts.mix.iter().map(|e| e.weight).collect(),
        prepared,
        recorder: Mutex::new(recorder),
        seq: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        deadline,
        measuring_from,
        measured: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        opts,
    });
    let progress = tokio::spawn(progress_loop(shared.clone()));
    match shared.opts.mode {
        Mode::Closed { concurrency } => {
            let mut workers = Vec::new();
            for _ in 0..concurrency.max(1) {
                let s = shared.clone();
                workers.push(tokio::spawn(async move {
                    let mut rng = fastrand::Rng::new();
                    while let Some(n) = s.next() {
                        s.one(n, Instant::now(), &mut rng).await;
                    }
                }));
            }
            for w in workers {
                let _ = w.await;
            }
        }
        Mode::Open { rate } => {
            let start = tokio::time::Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let mut i = 0u64;
            while let Some(n) = shared.next() {
                let at = start + Duration::from_secs_f64(i as f64 / rate);
                i += 1;
                tokio::time::sleep_until(at).await;
                let s = shared.clone();
                if s.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    // The target is that far behind: counted, not sent.
                    let now = Instant::now();
                    s.recorder.lock().unwrap_or_else(|e| e.into_inner()).record(
                        at.into_std(),
                        now,
                        "-",
                        Some("client-overload".into()),
                    );
                    continue;
                }
                s.in_flight.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(async move {
                    let mut rng = fastrand::Rng::new();
                    s.one(n, at.into_std(), &mut rng).await;
                    s.in_flight.fetch_sub(1, Ordering::Relaxed);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    let report = {
        let r = shared.recorder.lock().unwrap_or_else(|e| e.into_inner());
        Report::new(&shared.opts, &r, shared.pool.opened.load(Ordering::Relaxed))
    };
    if let Some(p) = &shared.opts.json {
        std::fs::write(p, report.to_json()).map_err(|e| format!("--json {}: {e}", p.display()))?;
    }
    if let Some(p) = &shared.opts.html {
        std::fs::write(p, report.to_html()).map_err(|e| format!("--html {}: {e}", p.display()))?;
    }
    Ok(report)
}

/// The live progress line: indicatif on a terminal, one plain line per second otherwise.
async fn progress_loop(s: Arc<Shared>) {
    if !s.opts.progress {
        return;
    }
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        Some(b)
    } else {
        None
    };
    let period = if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let line = {
            let r = s.recorder.lock().unwrap_or_else(|e| e.into_inner());
            progress_text(&r, Instant::now())
        };
        match &bar {
            Some(b) => b.set_message(line),
            None => eprintln!("progress: {line}"),
        }
        if s.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

fn progress_text(r: &Recorder, now: Instant) -> String {
    if now < r.measuring_from {
        return format!(
            "warm-up {:.0}s left, {} requests",
            (r.measuring_from - now).as_secs_f64(),
            r.warmup_ok + r.warmup_errors
        );
    }
    let elapsed = now.duration_since(r.measuring_from).as_secs_f64().max(1e-3);
    let errors = r.errors_total();
    let total = r.ok + errors;
    // "Current" percentiles: the last complete second, else the one in progress.
    let sec = r
        .seconds
        .len()
        .checked_sub(2)
        .and_then(|i| r.seconds.get(i))
        .or(r.seconds.last());
    let (p50, p99) = sec
        .filter(|s| !s.latency.is_empty())
        .map(|s| {
            (
                s.latency.value_at_quantile(0.5),
                s.latency.value_at_quantile(0.99),
            )
        })
        .unwrap_or((0, 0));
    format!(
        "{elapsed:.0}s | {total} requests | {:.1} req/s | errors {errors} ({:.2}%) | p50 {} | p99 {}",
        total as f64 / elapsed,
        if total == 0 { 0.0 } else { errors as f64 * 100.0 / total as f64 },
        report::ms(p50),
        report::ms(p99),
    )
}

#[cfg(test)]
mod tests {
    use super::template::nir;
    use super::*;

    #[test]
    fn mixes_durations_and_templates_parse_as_documented() {
        let m = parse_mix("99999991/IDB=3, 99999992/clc\n# comment\n1/x=0").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].service.as_str(), m[0].weight), ("idb", 3));
        assert_eq!(m[1].weight, 1);
        let a = parse_mix("annuaire/99999991").unwrap();
        assert_eq!(
            (a[0].amc.as_str(), a[0].path()),
            ("99999991", "/annuaire".to_string())
        );
        assert_eq!(m[0].path(), "/amc/99999991/idb");
        let lookup = render(
            &builtin_template(ANNUAIRE),
            "99999991",
            ANNUAIRE,
            1,
            &mut fastrand::Rng::with_seed(1),
        );
        assert!(
            lookup.contains("<ann:numero_amc>99999991</ann:numero_amc>"),
            "{lookup}"
        );
        assert!(parse_mix("nope").is_err());
        assert!(parse_mix("1/idb=x").is_err());
        assert!(parse_mix("").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("10 parsecs").is_err());

        let mut rng = fastrand::Rng::with_seed(1);
        let body = render(&builtin_template("idb"), "99999991", "idb", 7, &mut rng);
        assert!(!body.contains("{{"), "{body}");
        assert_eq!(
            crate::soap::sniff(body.as_bytes()).unwrap(),
            crate::soap::SoapVersion::V12
        );
        let other = render(&builtin_template("idb"), "99999991", "idb", 8, &mut rng);
        assert_ne!(body, other, "per-request variation");
        let n = nir(&mut rng);
        let (base, key) = n.split_at(13);
        assert_eq!(
            97 - base.parse::<u64>().unwrap() % 97,
            key.parse::<u64>().unwrap()
        );
        assert_eq!(
            render("{{seq}}-{{unknown}}", "a", "b", 5, &mut rng),
            "5-{{unknown}}"
        );
    }

    #[test]
    fn warm_up_is_counted_apart_and_errors_by_kind() {
        let mut r = Recorder::new(Duration::from_secs(1));
        let t0 = r.started;
        r.record(t0, t0 + Duration::from_millis(5), "1/idb", None);
        let later = r.measuring_from + Duration::from_millis(10);
        r.record(later, later + Duration::from_millis(3), "1/idb", None);
        r.record(
            later,
            later + Duration::from_millis(4),
            "1/idb",
            Some("timeout".into()),
        );
        assert_eq!((r.warmup_ok, r.ok, r.errors_total()), (1, 1, 1));
        assert_eq!(r.by_route["1/idb"], (1, 1));
        // Error latencies apart from the successes'.
        assert_eq!((r.latency.len(), r.error_latency.len()), (1, 1));
        assert!(r.latency.max() < 4_000 && r.error_latency.max() >= 4_000);
    }
}
