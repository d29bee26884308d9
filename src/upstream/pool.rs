//! The upstream connection pool: keep-alive HTTP/1.1 connections (`upstream::h1`) per
//! `host:port`, each read and written by the request that holds it. An idle connection is read
//! by nobody: before it is reused it is read once, without waiting, to see that the server has
//! not closed it; idle ones past `pool_idle_timeout` are dropped (on checkout, and by a sweep
//! every half timeout), before the servers' own idle timeouts close them under a request.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::connect::{Evict, HostLimits};
use super::h1::Link;

struct Idle {
    link: Box<Link>,
    since: Instant,
}

#[derive(Default)]
struct Shelves(super::HostMap<Vec<Idle>>);

impl Evict for Mutex<Shelves> {
    fn evict_one(&self, key: &str) -> bool {
        let oldest = {
            let mut shelves = self.lock().unwrap_or_else(|e| e.into_inner());
            match shelves.0.get_mut(key) {
                Some(list) if !list.is_empty() => Some(list.remove(0)),
                _ => None,
            }
        };
        // Closed outside the lock; its per-host permit goes with it.
        oldest.is_some()
    }
}

/// Idle connections by `host:port`, newest last (reused first: the oldest expire).
#[derive(Clone)]
pub struct Pool {
    idle: Arc<Mutex<Shelves>>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    /// A pool keeping at most `max_idle` idle connections per host, each at most
    /// `idle_timeout`. The sweep runs while the pool lives, when a runtime is there to run it.
    pub fn new(idle_timeout: Duration, max_idle: usize, limits: &HostLimits) -> Pool {
        let idle = Arc::new(Mutex::new(Shelves::default()));
        let evict: Arc<dyn Evict> = idle.clone();
        limits.register(Arc::downgrade(&evict));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&idle), idle_timeout));
        }
        Pool {
            idle,
            idle_timeout,
            max_idle,
        }
    }

    fn shelves(&self) -> std::sync::MutexGuard<'_, Shelves> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection to `key` that is still open, if any.
    pub fn checkout(&self, key: &str) -> Option<Box<Link>> {
        let now = Instant::now();
        let mut closed = Vec::new();
        let found = {
            let mut shelves = self.shelves();
            let list = shelves.0.get_mut(key)?;
            expire(list, now, self.idle_timeout, &mut closed);
            let mut found = None;
            while let Some(mut idle) = list.pop() {
                if idle.link.still_open() {
                    found = Some(idle.link);
                    break;
                }
                closed.push(idle);
            }
            found
        };
        // Sockets are closed outside the lock.
        drop(closed);
        found.map(|mut link| {
            link.reused = true;
            link
        })
    }

    /// Puts a connection back after its exchange, when it can take another.
    pub fn checkin(&self, key: &str, link: Box<Link>) {
        if !link.reusable() {
            return;
        }
        let idle = Idle {
            link,
            since: Instant::now(),
        };
        let oldest = {
            let mut shelves = self.shelves();
            let list = match shelves.0.get_mut(key) {
                Some(l) => l,
                None => shelves.0.entry(key.to_string()).or_default(),
            };
            list.push(idle);
            (list.len() > self.max_idle).then(|| list.remove(0))
        };
        drop(oldest);
    }
}

/// Moves the connections of `list` idle for `timeout` or more (the oldest, at its front) to
/// `out`.
fn expire(list: &mut Vec<Idle>, now: Instant, timeout: Duration, out: &mut Vec<Idle>) {
    let n = list
        .iter()
        .take_while(|i| now.duration_since(i.since) >= timeout)
        .count();
    out.extend(list.drain(..n));
}

/// Drops idle connections past `timeout`, and those the server closed, every half timeout,
/// until the pool is gone.
async fn sweep(idle: Weak<Mutex<Shelves>>, timeout: Duration) {
    let period = (timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let Some(shelves) = idle.upgrade() else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<Idle> = {
            let mut s = shelves.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for list in s.0.values_mut() {
                expire(list, now, timeout, &mut out);
                // And those the server closed meanwhile: their sockets and per-host permits
                // go now, not at the next checkout.
                out.extend(list.extract_if(.., |i| !i.link.still_open()));
            }
            s.0.retain(|_, l| !l.is_empty());
            out
        };
        drop(expired);
    }
}
