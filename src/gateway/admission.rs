//! Whether a request gets in, and what it may hold: a request slot (at most
//! `max_concurrent_requests` in progress; beyond, a short queue, then `overloaded`), its body
//! read at a minimum pace under the size limit and the memory budget (reserved as bytes
//! arrive), and a slot among the calls to its AMC; with per-caller caps, a caller's requests
//! in progress and bytes held.
//!
//! The slot is usually taken before the request is parsed, at the listener's gate
//! (`slots`), when the body came with the head; a request shed there is refused before its
//! body is read. Otherwise (a body still coming, per-caller caps on) the body is read first and
//! the slot waited for after it, so a slow or lying body holds its bytes and its connection,
//! not a slot. What is refused is said at once (`overloaded`, Retry-After) rather than queued
//! without bound, and a refused body is drained, not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::listener::Body;
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::budget::{Budget, Held, Pace, ReadError};
use crate::config::ServerConfig;
use crate::fault::{Fault, FaultCode};
use crate::metrics;
use crate::slots::{Slot, Slots};

/// How long a refused request's body is drained.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The gateway's limits on what requests hold.
#[derive(Debug)]
pub struct Admission {
    /// Requests in progress (a short queue, then load shedding beyond it), shared with the
    /// listener's gate.
    pub requests: Arc<Slots>,
    /// Calls in progress per AMC (label-bounded keys: known AMCs, else `other`).
    per_amc: Mutex<HashMap<String, Arc<Semaphore>>>,
    max_per_amc: usize,
    /// Bytes of request and response bodies held: what bounds memory.
    pub budget: Budget,
    pub max_body_bytes: usize,
    /// How fast a request body must come.
    pace: Pace,
    /// Per-caller caps, when configured.
    per_caller: Option<PerCaller>,
}

/// Per-caller caps: requests in progress and bytes held, each caller's share kept while in use.
#[derive(Debug)]
struct PerCaller {
    max_requests: usize,
    max_bytes: usize,
    shares: Mutex<HashMap<String, Arc<CallerShare>>>,
}

/// One caller's share.
#[derive(Debug)]
pub struct CallerShare {
    requests: Arc<Semaphore>,
    budget: Budget,
}

/// What a request holds of its caller's share while it runs (nothing without per-caller caps).
#[derive(Debug, Default)]
pub struct CallerHold {
    share: Option<Arc<CallerShare>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Admission {
    pub fn new(server: &ServerConfig, max_per_amc: usize) -> Admission {
        let budget = Budget::new(server.max_buffered_bytes);
        let per_caller = (server.max_requests_per_caller > 0
            || server.max_buffered_bytes_per_caller > 0)
            .then(|| PerCaller {
                max_requests: match server.max_requests_per_caller {
                    0 => Semaphore::MAX_PERMITS,
                    n => n,
                },
                max_bytes: match server.max_buffered_bytes_per_caller {
                    0 => server.max_buffered_bytes,
                    n => n,
                },
                shares: Mutex::default(),
            });
        Admission {
            requests: Arc::new(Slots::new(
                server.max_concurrent_requests,
                server.queue_wait,
                server.max_queued_requests,
            )),
            per_amc: Mutex::default(),
            max_per_amc,
            budget,
            max_body_bytes: server.max_body_bytes,
            pace: Pace {
                grace: server.body_timeout,
                min_rate: server.min_body_rate,
            },
            per_caller,
        }
    }

    /// Whether callers have caps of their own (`max_requests_per_caller`,
    /// `max_buffered_bytes_per_caller`).
    pub fn has_caller_caps(&self) -> bool {
        self.per_caller.is_some()
    }

    /// The caller's share and one of its request slots, or `overloaded` (nothing to hold
    /// without per-caller caps).
    pub fn caller(&self, caller: &str) -> Result<CallerHold, Fault> {
        let Some(pc) = &self.per_caller else {
            return Ok(CallerHold::default());
        };
        let share = {
            let mut m = pc.shares.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= 4096 {
                // Shares nobody holds are dropped: the map stays bounded by the callers active.
                m.retain(|_, s| Arc::strong_count(s) > 1);
            }
            entry(&mut m, caller, || {
                Arc::new(CallerShare {
                    requests: Arc::new(Semaphore::new(pc.max_requests)),
                    budget: self.budget.share(pc.max_bytes),
                })
            })
        };
        let slot = share.requests.clone().try_acquire_owned().map_err(|_| {
            overloaded(format!(
                "more than {} requests in progress for this caller (server.max_requests_per_caller)",
                pc.max_requests
            ))
        })?;
        Ok(CallerHold {
            share: Some(share),
            _slot: Some(slot),
        })
    }

    /// A request slot, waiting for one at most `queue_wait` among at most `max_queued` others
    /// (first come, first served; the wait counts against the request's deadline), else
    /// `overloaded`. A short wait turns a burst into latency instead of refusals that the
    /// SIHs would retry at once.
    pub async fn request_slot(&self) -> Result<Slot, Fault> {
        self.requests.take().await.ok_or_else(|| self.full())
    }

    /// The `overloaded` fault of a request that found no slot.
    pub fn full(&self) -> Fault {
        overloaded(self.requests.full())
    }

    /// The body, read by [`Admission::read_body`], then a request slot: the one the listener's
    /// gate took (it takes one only for a request whose body came with its head, so that body
    /// is read at once), else one waited for now that the body is read (a slow body held its
    /// bytes and connection, not a slot).
    pub async fn body_then_slot(
        &self,
        headers: &HeaderMap,
        body: Body,
        caller: &CallerHold,
        gated: Option<Slot>,
    ) -> Result<(Bytes, Option<Held>, Slot), Fault> {
        let (body, held) = self.read_body(headers, body, caller).await?;
        let slot = match gated {
            Some(slot) => slot,
            None => self.request_slot().await?,
        };
        Ok((body, held, slot))
    }

    /// A permit of `sem`, waited for at most `queue_wait`.
    async fn wait_for(&self, sem: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        if let Ok(slot) = sem.clone().try_acquire_owned() {
            return Some(slot);
        }
        let waited = tokio::time::timeout(self.requests.wait(), sem.clone().acquire_owned());
        waited.await.ok().and_then(Result::ok)
    }

    /// A slot among the calls in progress to the AMC labelled `amc_label`, waited for at most
    /// `queue_wait` like a request slot (the waiters are admitted requests: bounded by
    /// `max_concurrent_requests`), else `overloaded`.
    pub async fn amc_slot(&self, amc_label: &str) -> Result<OwnedSemaphorePermit, Fault> {
        let sem = {
            let mut m = self.per_amc.lock().unwrap_or_else(|e| e.into_inner());
            entry(&mut m, amc_label, || {
                Arc::new(Semaphore::new(self.max_per_amc))
            })
        };
        self.wait_for(&sem).await.ok_or_else(|| {
            overloaded(format!(
                "more than {} calls in progress to this AMC",
                self.max_per_amc
            ))
        })
    }

    /// Reads the body at the configured pace, under the size limit and the memory budget (the
    /// caller's share of it, with per-caller caps). A body refused for its size or for memory
    /// is drained, not kept, so the SIH reads the fault; one that came too slowly is dropped
    /// with its connection.
    pub async fn read_body(
        &self,
        headers: &HeaderMap,
        mut body: Body,
        caller: &CallerHold,
    ) -> Result<(Bytes, Option<Held>), Fault> {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let max = self.max_body_bytes;
        let budget = caller.share.as_ref().map_or(&self.budget, |s| &s.budget);
        let pace = Some(self.pace);
        match crate::budget::read(&mut body, declared, max, Some(budget), 0, pace).await {
            Ok(read) => Ok(read),
            Err(ReadError::TooLarge) => {
                self.drain(body);
                Err(Fault::with_detail(
                    FaultCode::BodyTooLarge,
                    format!("the limit is {max} bytes"),
                ))
            }
            Err(ReadError::OverBudget) => {
                self.drain(body);
                Err(overloaded(match caller.share {
                    Some(_) if !budget.is_unused() || budget.bytes() < self.budget.bytes() => {
                        format!(
                            "this caller's {} KiB for bodies in progress \
                             (server.max_buffered_bytes_per_caller) or the gateway's are in use",
                            budget.bytes() / 1024
                        )
                    }
                    _ => format!(
                        "the {} MiB for request bodies in progress (server.max_buffered_bytes) are in use",
                        self.budget.bytes() / (1024 * 1024)
                    ),
                }))
            }
            Err(ReadError::TooSlow) => Err(Fault::with_detail(
                FaultCode::BodyTimeout,
                format!(
                    "the body must come within {} ms plus one second per {} bytes \
                     (server.body_timeout_ms, server.min_body_rate)",
                    self.pace.grace.as_millis(),
                    self.pace.min_rate
                ),
            )),
            Err(ReadError::Body(_)) => Err(Fault::with_detail(
                FaultCode::NotSoap,
                "the request body could not be read completely",
            )),
        }
    }

    /// Has a refused request's body read and dropped after the answer (by the listener): at
    /// most `max_body_bytes` and [`DRAIN_TIME`], never kept in memory, so the SIH, still
    /// sending, reads the fault instead of a reset.
    pub fn drain(&self, body: Body) {
        body.discard(self.max_body_bytes, DRAIN_TIME);
    }
}

/// The `overloaded` fault, with `Retry-After: 1`.
pub fn overloaded(detail: String) -> Fault {
    let mut f = Fault::with_detail(FaultCode::Overloaded, detail);
    f.retry_after = Some(1);
    f
}

/// One request in `rocgw_in_flight_requests`. Dropped unfinished when the SIH closes its
/// connection before the answer: the listener then drops the request's future, which abandons the
/// upstream call (its connection is closed, nothing keeps running); counted as `client-gone`.
pub struct InFlight {
    pub done: bool,
}

impl InFlight {
    pub fn enter() -> InFlight {
        metrics::get().in_flight.inc();
        InFlight { done: false }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let m = metrics::get();
        m.in_flight.dec();
        if !self.done {
            m.requests
                .with_label_values(&["-", "-", "-", "client-gone", "-"])
                .inc();
            tracing::info!("the SIH closed its connection before the answer: call abandoned");
        }
    }
}

/// The value of `key` in `m`, made by `make` on first use; the key is copied only then.
fn entry<V: Clone>(m: &mut HashMap<String, V>, key: &str, make: impl FnOnce() -> V) -> V {
    match m.get(key) {
        Some(v) => v.clone(),
        None => m.entry(key.to_string()).or_insert_with(make).clone(),
    }
}
