//! The memory budget: bytes of request and response bodies held at once, across all calls
//! (`[server] max_buffered_bytes`). Memory then stays bounded whatever the number of requests in
//! progress; a body that does not fit gets the `overloaded` fault.
//!
//! A body reserves only what it holds: its buffer grows as bytes arrive (doubling, up to the
//! declared length), and each growth is reserved first, so a connection that declares 1 MiB and
//! sends 6 bytes holds a few KiB. The reservation is released when dropped; an answer keeps its
//! share until its last byte is written ([`holding`]).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Answers up to this size are not counted: an answer the AMC has already produced is not
/// refused for memory unless it is large (small ones are bounded by the request limit anyway).
pub const UNCOUNTED_ANSWER: usize = 64 * 1024;
/// The budget counts whole KiB.
const UNIT: usize = 1024;
/// A body's first buffer (at most its declared length); it doubles from there.
const FIRST: usize = 8 * 1024;

/// The budget of one process, or a caller's share within it (a reservation then takes from
/// both).
#[derive(Debug, Clone)]
pub struct Budget {
    units: Arc<Semaphore>,
    bytes: usize,
    within: Option<Arc<Budget>>,
}

/// A share of the budget (and of the budget it lies within); given back when dropped.
#[derive(Debug)]
pub struct Held {
    permit: OwnedSemaphorePermit,
    within: Option<Box<Held>>,
}

impl Budget {
    pub fn new(bytes: usize) -> Budget {
        Budget {
            units: Arc::new(Semaphore::new((bytes / UNIT).max(1))),
            bytes,
            within: None,
        }
    }

    /// A budget of `bytes` whose reservations also take from this one.
    pub fn share(&self, bytes: usize) -> Budget {
        Budget {
            within: Some(Arc::new(self.clone())),
            ..Budget::new(bytes)
        }
    }

    /// The whole budget, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing of it is reserved.
    pub fn is_unused(&self) -> bool {
        self.units.available_permits() == (self.bytes / UNIT).max(1)
    }

    /// `bytes` of it (rounded up to whole KiB, one at least), or `None` when not free.
    pub fn reserve(&self, bytes: usize) -> Option<Held> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).ok()?;
        let within = match &self.within {
            Some(w) => Some(Box::new(w.reserve(bytes)?)),
            None => None,
        };
        let permit = self.units.clone().try_acquire_many_owned(units).ok()?;
        Some(Held { permit, within })
    }
}

impl Held {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.permit.num_permits() * UNIT
    }

    /// Makes room for `need` bytes in all; false when the budget has not that much free.
    pub fn grow_to(&mut self, budget: &Budget, need: usize) -> bool {
        if need <= self.bytes() {
            return true;
        }
        match budget.reserve(need - self.bytes()) {
            Some(h) => {
                self.merge(h);
                true
            }
            None => false,
        }
    }

    fn merge(&mut self, other: Held) {
        self.permit.merge(other.permit);
        if let (Some(a), Some(b)) = (&mut self.within, other.within) {
            a.merge(*b);
        }
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Over the size limit (declared, or as it came).
    TooLarge,
    /// The budget has not room for it.
    OverBudget,
    /// It came slower than its [`Pace`].
    TooSlow,
    /// The connection failed mid-body.
    Body(BoxError),
}

/// Why a body's bytes stopped coming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a body's bytes come from: a request's body, an upstream answer's.
pub trait Chunks {
    /// The body's next bytes; `None` at its end.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Result<Bytes, BoxError>>> + Send;
}

/// How fast a body must come: all of it within `grace` plus one second per `min_rate` bytes
/// received (0: no rate, `grace` for the whole body).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub grace: std::time::Duration,
    pub min_rate: u64,
}

impl Pace {
    /// When the next bytes must have come, `received` bytes after `start`.
    fn deadline(&self, start: tokio::time::Instant, received: usize) -> tokio::time::Instant {
        let earned = match self.min_rate {
            0 => std::time::Duration::ZERO,
            r => std::time::Duration::from_secs_f64(received as f64 / r as f64),
        };
        start + self.grace + earned
    }
}

/// Reads a body of at most `max` bytes: kept as it came when it is one frame, else into one
/// buffer. Bytes beyond `free` count against `budget`, reserved as they arrive and as the
/// buffer grows (it doubles from 8 KiB up to the `declared` length, so a body is held once,
/// never collected then joined), not from the declared length. With a
/// `pace`, a body that comes too slowly ends with [`ReadError::TooSlow`]. The share comes back
/// with the body; on an error the rest of the body is unread.
pub async fn read(
    body: &mut impl Chunks,
    declared: usize,
    max: usize,
    budget: Option<&Budget>,
    free: usize,
    pace: Option<Pace>,
) -> Result<(bytes::Bytes, Option<Held>), ReadError> {
    if declared > max {
        return Err(ReadError::TooLarge);
    }
    // The clock is read only for a pace to keep.
    let start = pace.map(|_| tokio::time::Instant::now());
    let mut held = None;
    let fits = |need: usize, held: &mut Option<Held>| match budget {
        Some(b) if need > free => match held {
            Some(h) => h.grow_to(b, need),
            None => b.reserve(need).map(|h| *held = Some(h)).is_some(),
        },
        _ => true,
    };
    // A body that comes in one frame (most SOAP requests and answers) is kept as it came: no
    // copy, no buffer. A second frame starts the buffer.
    let mut only: Option<bytes::Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    loop {
        let received = only.as_ref().map_or(buf.len(), bytes::Bytes::len);
        let next = match pace.zip(start) {
            Some((p, start)) => {
                crate::clock::within(p.deadline(start, received), body.next_chunk())
                    .await
                    .ok_or(ReadError::TooSlow)?
            }
            None => body.next_chunk().await,
        };
        let Some(d) = next else { break };
        let d = d.map_err(ReadError::Body)?;
        let need = received + d.len();
        if need > max {
            return Err(ReadError::TooLarge);
        }
        if received == 0 && only.is_none() {
            if !fits(need, &mut held) {
                return Err(ReadError::OverBudget);
            }
            only = Some(d);
            continue;
        }
        if need > buf.capacity() {
            let mut size = need.max(buf.capacity() * 2).max(FIRST.min(max));
            if declared >= need {
                size = size.min(declared);
            }
            let size = size.min(max);
            if !fits(size, &mut held) {
                return Err(ReadError::OverBudget);
            }
            buf.reserve(size - buf.len());
        }
        if let Some(first) = only.take() {
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&d);
    }
    Ok((only.unwrap_or_else(|| buf.freeze()), held))
}

/// The bytes of an answer that keep its share of the budget until the last reference to them
/// is gone: the listener drops them once they are written to the SIH's connection (or the connection
/// is gone), not when the handler returns.
pub fn holding(bytes: bytes::Bytes, held: Option<Held>) -> bytes::Bytes {
    match held {
        None => bytes,
        Some(held) => bytes::Bytes::from_owner(Owned { bytes, _held: held }),
    }
}

/// Bytes and the share they hold.
struct Owned {
    bytes: bytes::Bytes,
    _held: Held,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_round_up_grow_and_come_back_when_dropped() {
        let b = Budget::new(256 * 1024);
        let mut h = b.reserve(1).unwrap();
        assert_eq!(h.bytes(), 1024);
        assert!(h.grow_to(&b, 2000));
        assert_eq!(h.bytes(), 2048, "whole KiB");
        assert!(h.grow_to(&b, 65 * 1024));
        assert!(h.grow_to(&b, 60_000), "already there");
        assert!(b.reserve(192 * 1024).is_none(), "256 - 65 = 191 KiB free");
        let rest = b.reserve(191 * 1024).unwrap();
        assert!(!h.grow_to(&b, 100_000), "nothing left");
        drop(rest);
        assert!(h.grow_to(&b, 100_000));
        drop(h);
        assert!(b.reserve(256 * 1024).is_some(), "all given back");
    }

    #[test]
    fn an_answer_keeps_its_share_while_any_of_its_bytes_is_held() {
        let b = Budget::new(1024 * 1024);
        let held = b.reserve(300 * 1024);
        let bytes = holding(bytes::Bytes::from(vec![b'x'; 300 * 1024]), held);
        assert_eq!(bytes.len(), 300 * 1024);
        // What a writer keeps of a response while the socket takes it: a slice of it.
        let last = bytes.slice(299 * 1024..);
        drop(bytes);
        assert!(!b.is_unused(), "held while its last bytes are not written");
        drop(last);
        assert!(b.is_unused(), "given back once they are");
    }

    #[test]
    fn a_share_takes_from_its_budget_too() {
        let all = Budget::new(100 * 1024);
        let caller = all.share(40 * 1024);
        let mut h = caller.reserve(30 * 1024).unwrap();
        assert!(!h.grow_to(&caller, 41 * 1024), "over the share");
        assert!(h.grow_to(&caller, 40 * 1024));
        assert!(
            all.reserve(61 * 1024).is_none(),
            "the share counts in the whole"
        );
        let other = all.reserve(60 * 1024).unwrap();
        drop(other);
        assert!(!caller.is_unused());
        drop(h);
        assert!(caller.is_unused() && all.is_unused());
    }
}
