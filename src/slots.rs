//! Request slots: at most `max_concurrent_requests` requests in progress and, beyond them, a
//! short queue bounded in entries (`max_queued_requests`) and in wait (`queue_ms`) before a
//! request is shed. One set of slots serves both places a request waits for one: the
//! listener's gate (a request whose head has come, before it is parsed: a queued request is
//! then a few bytes in its connection's buffer, not a request's state) and the gateway (a
//! request whose body came slowly, after it is read: a slow body holds no slot).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics;

/// A request slot, held while its request is in progress.
pub type Slot = OwnedSemaphorePermit;

/// The request slots of one gateway, and their queue.
#[derive(Debug)]
pub struct Slots {
    sem: Arc<Semaphore>,
    wait: Duration,
    max_queued: usize,
    queued: AtomicUsize,
    /// Why a request is shed, written once: a shed request under load is cheap to answer.
    full: String,
}

/// What the listener's gate said of a request before its head was parsed.
#[derive(Debug, Default)]
pub enum Gated {
    /// No gate on this listener (or the slot was already taken from the request).
    #[default]
    Open,
    /// A slot, taken at once or after a wait in the queue.
    Slot(Slot),
    /// Shed: no slot within the wait, or the queue full.
    Shed,
}

impl Slots {
    pub fn new(max: usize, wait: Duration, max_queued: usize) -> Slots {
        Slots {
            sem: Arc::new(Semaphore::new(max)),
            wait,
            max_queued,
            queued: AtomicUsize::new(0),
            full: format!(
                "more than {max} requests in progress, and {max_queued} waiting or {} ms of wait",
                wait.as_millis()
            ),
        }
    }

    /// How long a request may wait for a slot (also the wait for a slot among an AMC's calls).
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// A slot at once, or after waiting at most `wait` among at most `max_queued` others (first
    /// come, first served); `None`: shed.
    pub async fn take(&self) -> Option<Slot> {
        self.take_within(None).await
    }

    /// A slot if one is free now.
    pub fn try_take(&self) -> Option<Slot> {
        self.sem.clone().try_acquire_owned().ok()
    }

    /// [`Slots::take`], waiting no longer than `limit` either (what is left of the request's
    /// own deadline).
    pub async fn take_within(&self, limit: Option<Duration>) -> Option<Slot> {
        if let Some(slot) = self.try_take() {
            return Some(slot);
        }
        let wait = limit.map_or(self.wait, |l| l.min(self.wait));
        if wait.is_zero() {
            return None;
        }
        // Counted out when the wait ends, however it ends (a caller gone drops it midway).
        let _waiting = Waiting::enter(&self.queued);
        if self.queued.load(Relaxed) > self.max_queued {
            return None;
        }
        let waited = tokio::time::timeout(wait, self.sem.clone().acquire_owned());
        waited.await.ok().and_then(Result::ok)
    }

    /// Why a request was shed, for its fault.
    pub fn full(&self) -> String {
        self.full.clone()
    }
}

/// One request waiting for a slot, in the count and in `rocgw_queued_requests` until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Relaxed);
        metrics::get().queued.inc();
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
        metrics::get().queued.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_set_queues_a_bounded_few_for_a_bounded_wait() {
        let slots = Arc::new(Slots::new(1, Duration::from_millis(50), 1));
        let held = slots.take().await.expect("a free slot is taken at once");
        // One may wait; a second beyond `max_queued` is shed at once.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await.is_some() }
        });
        tokio::task::yield_now().await;
        let t = tokio::time::Instant::now();
        assert!(slots.take().await.is_none(), "over the queue's bound");
        assert_eq!(t.elapsed(), Duration::ZERO, "shed without waiting");
        // The waiter gets the slot once it is given back, within its wait.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap(), "the slot went to the one waiting");
        // Nobody gives it back now: a new request waits the whole wait, then is shed.
        let _kept = slots.take().await.unwrap();
        let t = tokio::time::Instant::now();
        assert!(slots.take().await.is_none());
        assert_eq!(t.elapsed(), Duration::from_millis(50));
        assert!(slots
            .full()
            .contains("more than 1 requests in progress, and 1 waiting or 50 ms"));
        // A request's own shorter deadline shortens its wait.
        let t = tokio::time::Instant::now();
        let limit = Some(Duration::from_millis(10));
        assert!(slots.take_within(limit).await.is_none());
        assert_eq!(t.elapsed(), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_means_no_queue() {
        let slots = Slots::new(1, Duration::ZERO, 8);
        let _held = slots.take().await.unwrap();
        let t = tokio::time::Instant::now();
        assert!(slots.take().await.is_none());
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
