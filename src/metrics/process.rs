//! The standard `process_*` metrics, read at each scrape from the process's own `/proc/self`
//! files only: `stat` (CPU time, threads, memory), `auxv` (clock tick and page size), `fd`
//! (open descriptors), `limits` (descriptor limit). Nothing outside `/proc/self` is read, so
//! systemd's `ProcSubset=pid` and `ProtectProc=invisible` leave them all working. The start
//! time is not derived from the boot time in `/proc/stat` (which `ProcSubset=pid` hides): it is
//! the wall-clock time at which the metrics were set up, early in start-up.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge, Opts};

/// The collector, registered once in the process's registry.
#[derive(Debug, Clone)]
pub struct Process {
    cpu: Counter,
    start: Gauge,
    resident: IntGauge,
    virtual_bytes: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    /// One refresh at a time: two scrapes at once would both add the same CPU time.
    refreshing: std::sync::Arc<std::sync::Mutex<()>>,
}

/// What `/proc/self/stat` says, already in base units.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: i64,
    virtual_bytes: i64,
    resident_bytes: i64,
}

const AT_PAGESZ: usize = 6;
const AT_CLKTCK: usize = 17;

/// (clock ticks per second, page size) from the auxiliary vector the kernel gave the process.
fn auxv() -> (f64, i64) {
    static AUX: std::sync::OnceLock<(f64, i64)> = std::sync::OnceLock::new();
    *AUX.get_or_init(|| {
        let bytes = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let word = std::mem::size_of::<usize>();
        let mut tick = 100.0;
        let mut page = 4096;
        for pair in bytes.chunks_exact(2 * word) {
            let read = |b: &[u8]| usize::from_ne_bytes(b.try_into().unwrap_or_default());
            let (key, value) = (read(&pair[..word]), read(&pair[word..]));
            match key {
                AT_CLKTCK if value > 0 => tick = value as f64,
                AT_PAGESZ if value > 0 => page = value as i64,
                _ => {}
            }
        }
        (tick, page)
    })
}

/// Parses `/proc/self/stat`: the fields after the command name (which may hold spaces and
/// parentheses, hence the last `)`).
fn parse_stat(text: &str, tick: f64, page: i64) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime 15, num_threads 20, vsize 23, rss 24.
    let num = |i: usize| f.get(i)?.parse::<i64>().ok();
    Some(Stat {
        cpu_seconds: (num(11)? + num(12)?) as f64 / tick,
        threads: num(17)?,
        virtual_bytes: num(20)?,
        resident_bytes: num(21)? * page,
    })
}

/// The soft limit on open files from `/proc/self/limits` (`None`: unlimited or unreadable).
fn parse_max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Process {
    /// `started` is the process's start, in Unix seconds.
    pub fn new(started: f64) -> Process {
        let g = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("valid metric")
        };
        let start = Gauge::with_opts(Opts::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        ))
        .expect("valid metric");
        start.set(started);
        Process {
            cpu: Counter::with_opts(Opts::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            ))
            .expect("valid metric"),
            start,
            resident: g(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            virtual_bytes: g(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            open_fds: g("process_open_fds", "Number of open file descriptors."),
            max_fds: g(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            threads: g("process_threads", "Number of OS threads in the process."),
            refreshing: std::sync::Arc::default(),
        }
    }

    fn gauges(&self) -> [&IntGauge; 5] {
        [
            &self.resident,
            &self.virtual_bytes,
            &self.open_fds,
            &self.max_fds,
            &self.threads,
        ]
    }

    fn refresh(&self) {
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let (tick, page) = auxv();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        if let Some(s) = parse_stat(&stat, tick, page) {
            let more = s.cpu_seconds - self.cpu.get();
            if more > 0.0 {
                self.cpu.inc_by(more);
            }
            self.threads.set(s.threads);
            self.virtual_bytes.set(s.virtual_bytes);
            self.resident.set(s.resident_bytes);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        if let Some(max) = parse_max_fds(&limits) {
            self.max_fds.set(max);
        }
    }
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.cpu.desc();
        d.extend(self.start.desc());
        for g in self.gauges() {
            d.extend(g.desc());
        }
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut m = self.cpu.collect();
        m.extend(self.start.collect());
        for g in self.gauges() {
            m.extend(g.collect());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis; 250 + 50 ticks at 100 Hz = 3 s.
        let line = "4242 (rocgw (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 \
                    7 0 12345 104857600 2560 18446744073709551615";
        let s = parse_stat(line, 100.0, 4096).unwrap();
        assert_eq!(
            s,
            Stat {
                cpu_seconds: 3.0,
                threads: 7,
                virtual_bytes: 104_857_600,
                resident_bytes: 2560 * 4096,
            }
        );
        assert_eq!(parse_stat("garbage", 100.0, 4096), None);
    }

    #[test]
    fn the_soft_file_limit_is_read_and_unlimited_is_none() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
    }

    #[test]
    fn this_process_s_own_files_give_every_value() {
        let p = Process::new(1_700_000_000.0);
        let families = p.collect();
        let value = |name: &str| {
            let f = families.iter().find(|f| f.name() == name).unwrap();
            let m = &f.get_metric()[0];
            m.get_gauge().get_value() + m.get_counter().get_value()
        };
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(value("process_virtual_memory_bytes") > 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        assert_eq!(value("process_start_time_seconds"), 1_700_000_000.0);
    }
}
