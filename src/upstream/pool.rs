//! The upstream connection pool: keep-alive HTTP/1.1 connections per `host:port`, each driven
//! by the request that holds it. A request polls its own connection while it waits for the
//! answer and reads its body, so no connection task, channel or wake-up sits between a request
//! and its socket (hyper-util's pool had one of each per request). An idle connection is polled
//! by nobody: before it is reused it is polled once, without waiting, to see that the server
//! has not closed it; idle ones past `pool_idle_timeout` are dropped (on checkout, and by a
//! sweep every half timeout), before the servers' own idle timeouts close them under a request.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper::Request;

use super::connect::{Conn, Evict, HostLimits};

type Body = Full<Bytes>;

/// How a request on a connection ended before its answer came.
#[derive(Debug)]
pub enum SendError {
    /// The request was not written: the connection was closed first. It may be sent again.
    NotSent(hyper::Error, Box<Request<Body>>),
    /// The request may have reached the server.
    Failed(hyper::Error),
    /// The connection ended without an answer and without an error.
    Closed,
}

/// Why a connection ended while its answer's body was read.
#[derive(Debug, thiserror::Error)]
#[error("the connection closed before the answer was complete")]
pub struct ClosedEarly;

/// One HTTP/1.1 connection: the handle requests are sent on, and the state machine that reads
/// and writes its socket.
pub struct Link {
    sender: http1::SendRequest<Body>,
    /// `None` once it returned: the connection is over. Dropped at once, so that a request
    /// queued on it but never written comes back (`SendError::NotSent`) and its socket and
    /// per-host permit are released.
    driver: Option<http1::Connection<Conn, Body>>,
    /// Taken from the pool (a request sent on it may find it closed by the server).
    pub reused: bool,
}

impl Link {
    /// HTTP/1.1 over an established connection. Boxed: the connection's state is large, and
    /// it changes hands (pool, request) once per request.
    pub async fn handshake(conn: Conn) -> Result<Box<Link>, hyper::Error> {
        let (sender, driver) = http1::Builder::new().handshake(conn).await?;
        Ok(Box::new(Link {
            sender,
            driver: Some(driver),
            reused: false,
        }))
    }

    /// Polls the connection once; true when it ended (it is dropped then).
    fn poll_driver(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(d) = &mut self.driver {
            if Pin::new(d).poll(cx).is_ready() {
                self.driver = None;
            }
        }
        self.driver.is_none()
    }

    /// `work` run to its end while the connection is polled beside it; `None` when the
    /// connection ended and `work` did not finish after it.
    pub async fn drive<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = pin!(work);
        let mut last_chance = false;
        poll_fn(|cx| {
            if let Poll::Ready(v) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            if last_chance {
                return Poll::Ready(None);
            }
            if self.poll_driver(cx) {
                // The connection's end settles the work (its answer, an error, or the request
                // handed back): once more on the next turn, in case the work's channel was out
                // of its cooperative budget on this one.
                last_chance = true;
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    /// Sends `req` and waits for the answer's head.
    pub async fn send(
        &mut self,
        req: Request<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, SendError> {
        let sent = self.sender.try_send_request(req);
        match self.drive(sent).await {
            Some(Ok(resp)) => Ok(resp),
            Some(Err(mut e)) => match e.take_message() {
                Some(req) => Err(SendError::NotSent(e.into_error(), Box::new(req))),
                None => Err(SendError::Failed(e.into_error())),
            },
            None => Err(SendError::Closed),
        }
    }

    /// Ready for another request after an exchange: at once, or once the driver has taken in
    /// the end of the last answer.
    fn idle_ready(&mut self) -> bool {
        (self.driver.is_some() && self.sender.is_ready()) || self.still_open()
    }

    /// Still open after sitting idle: polled once, without waiting, so that a close or anything
    /// unexpected the server sent meanwhile is read now.
    fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.poll_driver(&mut cx) && self.sender.is_ready()
    }
}

struct Idle {
    link: Box<Link>,
    since: Instant,
}

#[derive(Default)]
struct Shelves(HashMap<String, Vec<Idle>>);

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
    pub fn checkin(&self, key: &str, mut link: Box<Link>) {
        if !link.idle_ready() {
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
