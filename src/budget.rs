//! The memory budget: bytes of request and response bodies held at once, across all calls
//! (`[server] max_buffered_bytes`). Memory then stays bounded whatever the number of requests in
//! progress; a body that does not fit gets the `overloaded` fault.
//!
//! A body reserves its declared length before it is read, or grows its reservation as chunks
//! arrive (64 KiB at least at a time); the reservation is released when dropped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Answers up to this size are not counted: an answer the AMC has already produced is not
/// refused for memory unless it is large (small ones are bounded by the request limit anyway).
pub const UNCOUNTED_ANSWER: usize = 64 * 1024;
/// The budget counts whole KiB.
const UNIT: usize = 1024;
/// A growing body reserves at least this much more at a time.
const STEP: usize = 64 * 1024;

/// The budget of one process.
#[derive(Debug, Clone)]
pub struct Budget {
    units: Arc<Semaphore>,
    bytes: usize,
}

/// A share of the budget; given back when dropped.
#[derive(Debug)]
pub struct Held(OwnedSemaphorePermit);

impl Budget {
    pub fn new(bytes: usize) -> Budget {
        Budget {
            units: Arc::new(Semaphore::new((bytes / UNIT).max(1))),
            bytes,
        }
    }

    /// The whole budget, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `bytes` of it (rounded up to whole KiB, one at least), or `None` when not free.
    pub fn reserve(&self, bytes: usize) -> Option<Held> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).ok()?;
        self.units
            .clone()
            .try_acquire_many_owned(units)
            .ok()
            .map(Held)
    }
}

impl Held {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.0.num_permits() * UNIT
    }

    /// Makes room for `need` bytes in all, reserving at least 64 KiB more at a time but never
    /// beyond `cap`; false when the budget has not that much free.
    pub fn grow_to(&mut self, budget: &Budget, need: usize, cap: usize) -> bool {
        if need <= self.bytes() {
            return true;
        }
        let more = (need - self.bytes())
            .max(STEP)
            .min(cap.saturating_sub(self.bytes()))
            .max(1);
        match budget.reserve(more) {
            Some(h) => {
                self.0.merge(h.0);
                true
            }
            None => false,
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
    /// The connection failed mid-body.
    Body(hyper::Error),
}

/// Reads a body of at most `max` bytes into one buffer sized from its `declared` length (held
/// once: collecting frames, then joining them, would hold it twice). Bytes beyond `free` count
/// against `budget`: reserved from the declared length before a byte is read, then as chunks
/// arrive. The share comes back with the body; on an error the rest of the body is unread.
pub async fn read(
    body: &mut hyper::body::Incoming,
    declared: usize,
    max: usize,
    budget: Option<&Budget>,
    free: usize,
) -> Result<(bytes::Bytes, Option<Held>), ReadError> {
    use http_body_util::BodyExt as _;
    if declared > max {
        return Err(ReadError::TooLarge);
    }
    let mut held = None;
    let fits = |need: usize, held: &mut Option<Held>| match budget {
        Some(b) if need > free => match held {
            Some(h) => h.grow_to(b, need, max),
            None => b.reserve(need).map(|h| *held = Some(h)).is_some(),
        },
        _ => true,
    };
    if !fits(declared, &mut held) {
        return Err(ReadError::OverBudget);
    }
    let mut buf = bytes::BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Body)?;
        let Some(d) = frame.data_ref() else { continue };
        let need = buf.len() + d.len();
        if need > max {
            return Err(ReadError::TooLarge);
        }
        if !fits(need, &mut held) {
            return Err(ReadError::OverBudget);
        }
        buf.extend_from_slice(d);
    }
    Ok((buf.freeze(), held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_round_up_grow_in_steps_and_come_back_when_dropped() {
        let b = Budget::new(256 * 1024);
        let mut h = b.reserve(1).unwrap();
        assert_eq!(h.bytes(), 1024);
        assert!(h.grow_to(&b, 2000, 1024 * 1024));
        assert_eq!(h.bytes(), 1024 + 64 * 1024, "one step at least");
        assert!(h.grow_to(&b, 60_000, 1024 * 1024), "already there");
        assert!(b.reserve(192 * 1024).is_none(), "256 - 65 = 191 KiB free");
        let rest = b.reserve(191 * 1024).unwrap();
        assert!(!h.grow_to(&b, 100_000, 1024 * 1024), "nothing left");
        drop(rest);
        assert!(h.grow_to(&b, 100_000, 1024 * 1024));
        drop(h);
        assert!(b.reserve(256 * 1024).is_some(), "all given back");
    }
}
