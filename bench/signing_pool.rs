//! Where should the RSA signature of a fresh assertion run: inline on the async workers, or on
//! the blocking pool behind a semaphore of one permit per core (what the gateway does)?
//!
//! The same tokio runtime as the gateway's (one worker per core) runs `clients` tasks that each
//! stamp a 2 KB envelope with a fresh assertion in a loop (plan, build_assertion, stamp), the
//! way the proxy does per request, while a probe task asks to wake up every millisecond and
//! records how late it wakes: that lateness is what every other connection (accepts, health
//! checks, answers coming back from the AMCs) waits on the same workers.
//!
//! cargo bench --bench signing_pool            (ROCGW_BENCH_SECONDS, default 5 per mode)

#[path = "common.rs"]
mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocgw::clock::now_unix;
use rocgw::config::Profile;
use rocgw::wssec::{self, Signer};

const ENVELOPE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\"><soap:Header><wsa:Action>urn:roc:idb</wsa:Action><wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000001</wsa:MessageID></soap:Header><soap:Body><idb:identificationDroits xmlns:idb=\"urn:roc:idb\"><idb:nir>2990199999999</idb:nir><idb:nom>PATIENT-TEST</idb:nom></idb:identificationDroits></soap:Body></soap:Envelope>";

fn stamp(signer: &Signer, profile: &Profile) -> usize {
    let plan = wssec::plan(ENVELOPE.as_bytes(), profile).unwrap();
    let a = wssec::build_assertion(profile, signer, "https://amc.example.test/idb", now_unix());
    wssec::stamp(ENVELOPE.as_bytes(), &plan, &a.xml, false).len()
}

#[derive(Clone, Copy, PartialEq)]
enum Where {
    /// On the async worker that handles the request.
    Inline,
    /// `spawn_blocking`, one permit per core held until the task resumes (the first design).
    Pool,
    /// `spawn_blocking`, two permits per core, each released by the blocking thread itself.
    Pool2x,
    /// One dedicated thread per core fed by a queue (permits: four per core).
    Dedicated,
}

/// Signing threads fed by a queue: a thread never waits for the async side to hand it work.
struct Dedicated {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
}

impl Dedicated {
    fn new(threads: usize) -> Dedicated {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for _ in 0..threads {
            let rx = rx.clone();
            std::thread::spawn(move || loop {
                let job = rx.lock().unwrap().recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        }
        Dedicated {
            tx: std::sync::Mutex::new(tx),
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (otx, orx) = tokio::sync::oneshot::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = otx.send(f());
        });
        self.tx.lock().unwrap().send(job).unwrap();
        orx.await.unwrap()
    }
}

struct Outcome {
    stamps_per_s: f64,
    probe_p50_us: u64,
    probe_p99_us: u64,
    probe_max_us: u64,
}

fn measure(signer: Arc<Signer>, mode: Where, clients: usize, secs: f64) -> Outcome {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(match mode {
        Where::Inline | Where::Pool => cores,
        Where::Pool2x => 2 * cores,
        Where::Dedicated => 4 * cores,
    }));
    let dedicated = Arc::new(Dedicated::new(cores));
    let lateness = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (signer, stop, done, permits, dedicated) = (
                signer.clone(),
                stop.clone(),
                done.clone(),
                permits.clone(),
                dedicated.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let profile = Profile::default();
                while !stop.load(Ordering::Relaxed) {
                    let n = match mode {
                        Where::Inline => stamp(&signer, &profile),
                        Where::Pool => {
                            let _p = permits.acquire().await.unwrap();
                            let s = signer.clone();
                            tokio::task::spawn_blocking(move || stamp(&s, &Profile::default()))
                                .await
                                .unwrap()
                        }
                        Where::Pool2x => {
                            let p = permits.clone().acquire_owned().await.unwrap();
                            let s = signer.clone();
                            tokio::task::spawn_blocking(move || {
                                let n = stamp(&s, &Profile::default());
                                drop(p);
                                n
                            })
                            .await
                            .unwrap()
                        }
                        Where::Dedicated => {
                            let p = permits.clone().acquire_owned().await.unwrap();
                            let s = signer.clone();
                            dedicated
                                .run(move || {
                                    let n = stamp(&s, &Profile::default());
                                    drop(p);
                                    n
                                })
                                .await
                        }
                    };
                    black_box(n);
                    done.fetch_add(1, Ordering::Relaxed);
                    // The request's network round trip to the AMC.
                    tokio::task::yield_now().await;
                }
            }));
        }
        let probe = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut late = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let waited = asked.elapsed().saturating_sub(Duration::from_millis(1));
                    late.push(waited.as_micros() as u64);
                }
                late
            })
        };
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = t0.elapsed().as_secs_f64();
        for t in tasks {
            let _ = t.await;
        }
        let mut late = probe.await.unwrap();
        late.sort_unstable();
        (late, elapsed)
    });
    let (late, elapsed) = lateness;
    let q = |p: f64| late[((late.len() - 1) as f64 * p) as usize];
    Outcome {
        stamps_per_s: done.load(Ordering::Relaxed) as f64 / elapsed,
        probe_p50_us: q(0.5),
        probe_p99_us: q(0.99),
        probe_max_us: *late.last().unwrap(),
    }
}

fn main() {
    let secs: f64 = std::env::var("ROCGW_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let (signer, _dir) = common::sign_signer();
    let signer = Arc::new(signer);
    println!(
        "{} cores; each mode {secs} s, alternating twice; probe = lateness of a 1 ms timer",
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
    for clients in [4usize, 32] {
        for round in 0..2 {
            for (name, mode) in [
                ("inline", Where::Inline),
                ("pool", Where::Pool),
                ("pool2x", Where::Pool2x),
                ("queue", Where::Dedicated),
            ] {
                let o = measure(signer.clone(), mode, clients, secs);
                println!(
                    "clients {clients:>3} round {round} {name:<7}: {:>6.0} stamps/s, probe lateness p50 {:>5} µs, p99 {:>6} µs, max {:>6} µs",
                    o.stamps_per_s, o.probe_p50_us, o.probe_p99_us, o.probe_max_us
                );
            }
        }
    }
}
