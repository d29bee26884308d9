//! Whether a request gets in, and what it may hold: a request slot (load shedding beyond
//! `max_concurrent_requests`), a slot among the calls to its AMC, its body read under the size
//! limit and the memory budget. What is refused is said at once (`overloaded`, Retry-After)
//! rather than queued without bound, and a refused body is drained, not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::budget::{Budget, Held, ReadError};
use crate::fault::{Fault, FaultCode};
use crate::metrics;

/// How long a refused request's body is drained.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The gateway's limits on what requests hold.
#[derive(Debug)]
pub struct Admission {
    /// Requests in progress (load shedding beyond it).
    requests: Arc<Semaphore>,
    max_requests: usize,
    /// Calls in progress per AMC (label-bounded keys: known AMCs, else `other`).
    per_amc: Mutex<HashMap<String, Arc<Semaphore>>>,
    max_per_amc: usize,
    /// Bytes of request and response bodies held: what bounds memory.
    pub budget: Budget,
    pub max_body_bytes: usize,
}

impl Admission {
    pub fn new(
        max_requests: usize,
        max_per_amc: usize,
        max_buffered_bytes: usize,
        max_body_bytes: usize,
    ) -> Admission {
        Admission {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            per_amc: Mutex::default(),
            max_per_amc,
            budget: Budget::new(max_buffered_bytes),
            max_body_bytes,
        }
    }

    /// A request slot, or `overloaded`.
    pub fn request_slot(&self) -> Result<OwnedSemaphorePermit, Fault> {
        self.requests.clone().try_acquire_owned().map_err(|_| {
            overloaded(format!(
                "more than {} requests in progress",
                self.max_requests
            ))
        })
    }

    /// A slot among the calls in progress to the AMC labelled `amc_label`, or `overloaded`.
    pub fn amc_slot(&self, amc_label: &str) -> Result<OwnedSemaphorePermit, Fault> {
        let sem = {
            let mut m = self.per_amc.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(amc_label) {
                Some(s) => s.clone(),
                None => m
                    .entry(amc_label.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_amc)))
                    .clone(),
            }
        };
        sem.try_acquire_owned().map_err(|_| {
            overloaded(format!(
                "more than {} calls in progress to this AMC",
                self.max_per_amc
            ))
        })
    }

    /// Reads the body under the size limit and the memory budget (`budget::read`). A refused
    /// body is drained, not kept, so the SIH reads the fault.
    pub async fn read_body(
        &self,
        headers: &HeaderMap,
        mut body: Incoming,
    ) -> Result<(Bytes, Option<Held>), Fault> {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let max = self.max_body_bytes;
        match crate::budget::read(&mut body, declared, max, Some(&self.budget), 0).await {
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
                Err(overloaded(format!(
                    "the {} MiB for request bodies in progress (server.max_buffered_bytes) are in use",
                    self.budget.bytes() / (1024 * 1024)
                )))
            }
            Err(ReadError::Body(_)) => Err(Fault::with_detail(
                FaultCode::NotSoap,
                "the request body could not be read completely",
            )),
        }
    }

    /// Reads and drops a refused request's body in the background: at most `max_body_bytes`
    /// and [`DRAIN_TIME`], never kept in memory, so the SIH, still sending, reads the fault
    /// instead of a reset.
    pub fn drain(&self, body: Incoming) {
        let limit = self.max_body_bytes;
        tokio::spawn(async move {
            let mut body = body;
            let mut seen = 0usize;
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, |d| d.len());
                    if seen > limit {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

/// The `overloaded` fault, with `Retry-After: 1`.
pub fn overloaded(detail: String) -> Fault {
    let mut f = Fault::with_detail(FaultCode::Overloaded, detail);
    f.retry_after = Some(1);
    f
}

/// One request in `rocgw_in_flight_requests`. Dropped unfinished when the SIH closes its
/// connection before the answer: hyper then drops the request's future, which abandons the
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
