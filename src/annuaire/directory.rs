//! The gateway's directory: annuaire lookups behind a cache.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{Answer, Lookup};
use crate::config::{DirectoryConfig, Requester};

/// Asks the annuaire (the gateway passes a closure over its mutual-TLS client).
pub type Fetch = Arc<
    dyn Fn(Lookup) -> Pin<Box<dyn Future<Output = Result<Answer, String>> + Send>> + Send + Sync,
>;

/// One lookup in progress; everyone asking the same key meanwhile waits on it.
type Flight = OnceCell<Result<Arc<Answer>, String>>;

struct Cached {
    answer: Arc<Answer>,
    at: Instant,
}

/// The annuaire behind a cache: time-to-live, stale-while-revalidate with bounded staleness,
/// negative caching, single flight (concurrent lookups of one key make one call), bounded size.
pub struct Directory {
    cfg: DirectoryConfig,
    fetch: Fetch,
    cache: Mutex<HashMap<Lookup, Cached>>,
    inflight: Mutex<HashMap<Lookup, Arc<Flight>>>,
    /// AMC numbers the annuaire has found (bounded like the cache): metric labels.
    known: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("cfg", &self.cfg).finish()
    }
}

impl Directory {
    pub fn new(cfg: DirectoryConfig, fetch: Fetch) -> Arc<Directory> {
        Arc::new(Directory {
            cfg,
            fetch,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            known: Mutex::new(std::collections::HashSet::new()),
        })
    }

    pub fn requester(&self) -> &Requester {
        &self.cfg.requester
    }

    /// The answer for `key`: from the cache when fresh enough, else from the annuaire. An
    /// error means the annuaire could not answer and nothing usable was cached.
    pub async fn resolve(self: &Arc<Self>, key: Lookup) -> Result<Arc<Answer>, String> {
        let count = |r: &str| {
            crate::metrics::get()
                .annuaire_lookups
                .with_label_values(&[r])
                .inc()
        };
        match self.cached(&key, Instant::now()) {
            Freshness::Fresh(a) => {
                count(if matches!(*a, Answer::UnknownAmc) {
                    "negative"
                } else {
                    "hit"
                });
                return Ok(a);
            }
            Freshness::Stale(a) => {
                count("stale");
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.fetch_once(key).await {
                        tracing::warn!(error = %e, "annuaire refresh failed; serving the last good answer");
                    }
                });
                return Ok(a);
            }
            Freshness::Missing => {}
        }
        let r = self.fetch_once(key).await;
        count(match r.as_deref() {
            Ok(Answer::Found(_)) => "fetched",
            Ok(Answer::UnknownAmc) => "unknown-amc",
            Err(_) => "error",
        });
        r
    }

    fn cached(&self, key: &Lookup, now: Instant) -> Freshness {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = cache.get(key) else {
            return Freshness::Missing;
        };
        let age = now.saturating_duration_since(c.at);
        match *c.answer {
            Answer::UnknownAmc if age < self.cfg.negative_ttl => Freshness::Fresh(c.answer.clone()),
            Answer::UnknownAmc => Freshness::Missing,
            Answer::Found(_) if age < self.cfg.ttl => Freshness::Fresh(c.answer.clone()),
            Answer::Found(_) if age < self.cfg.ttl + self.cfg.stale => {
                Freshness::Stale(c.answer.clone())
            }
            Answer::Found(_) => Freshness::Missing,
        }
    }

    /// One annuaire call per key at a time: later callers wait for the same answer.
    async fn fetch_once(self: &Arc<Self>, key: Lookup) -> Result<Arc<Answer>, String> {
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            // An answer stored since this caller looked: no second call.
            if let Freshness::Fresh(a) = self.cached(&key, Instant::now()) {
                return Ok(a);
            }
            inflight.entry(key.clone()).or_default().clone()
        };
        let r = cell
            .get_or_init(|| async {
                let r = (self.fetch)(key.clone()).await.map(Arc::new);
                if let Ok(a) = &r {
                    self.store(key.clone(), a.clone());
                }
                r
            })
            .await
            .clone();
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        r
    }

    /// Whether the annuaire has found this AMC number.
    pub fn knows(&self, numero: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(numero)
    }

    fn store(&self, key: Lookup, answer: Arc<Answer>) {
        if matches!(*answer, Answer::Found(_)) {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            if known.len() < self.cfg.max_entries {
                known.insert(key.numero_amc.clone());
            }
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.cfg.max_entries && !cache.contains_key(&key) {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            key,
            Cached {
                answer,
                at: Instant::now(),
            },
        );
    }

    /// Cached answers (for tests and metrics).
    pub fn len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Freshness {
    Fresh(Arc<Answer>),
    Stale(Arc<Answer>),
    Missing,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::annuaire::Entry;

    fn counting_fetch(
        calls: Arc<std::sync::atomic::AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
    ) -> Fetch {
        use std::sync::atomic::Ordering;
        Arc::new(move |key: Lookup| {
            let (calls, fail) = (calls.clone(), fail.clone());
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if fail.load(Ordering::SeqCst) {
                    return Err("annuaire down".to_string());
                }
                if key.numero_amc == "0" {
                    return Ok(Answer::UnknownAmc);
                }
                Ok(Answer::Found(Entry {
                    numero_amc: key.numero_amc,
                    libelle: String::new(),
                    services: vec![("idb".into(), "https://x/idb".into())],
                }))
            })
        })
    }

    // Paused clock: every sleep below advances time exactly, so the test is deterministic.
    #[tokio::test(start_paused = true)]
    async fn the_cache_is_single_flight_serves_stale_and_forgets_unknown_amcs() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let d = Directory::new(
            DirectoryConfig {
                ttl: Duration::from_millis(150),
                stale: Duration::from_millis(400),
                negative_ttl: Duration::from_millis(100),
                max_entries: 2,
                requester: Requester::default(),
            },
            counting_fetch(calls.clone(), fail.clone()),
        );
        let key = |n: &str| Lookup {
            numero_amc: n.into(),
            code_service: "idb".into(),
            ..Lookup::default()
        };
        // 100 concurrent lookups of a cold key: one call.
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let d = d.clone();
                tokio::spawn(async move { d.resolve(key("1")).await })
            })
            .collect();
        for t in tasks {
            assert!(matches!(*t.await.unwrap().unwrap(), Answer::Found(_)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Fresh: no call. Stale while the annuaire is down: the last good answer.
        d.resolve(key("1")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        fail.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(matches!(
            *d.resolve(key("1")).await.unwrap(),
            Answer::Found(_)
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one background refresh");
        // Beyond the bounded staleness: an error, not a stale answer.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(d.resolve(key("1")).await.is_err());
        // Unknown AMC: remembered for negative_ttl, then asked again.
        fail.store(false, Ordering::SeqCst);
        let before = calls.load(Ordering::SeqCst);
        assert_eq!(*d.resolve(key("0")).await.unwrap(), Answer::UnknownAmc);
        assert_eq!(*d.resolve(key("0")).await.unwrap(), Answer::UnknownAmc);
        assert_eq!(calls.load(Ordering::SeqCst), before + 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        d.resolve(key("0")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), before + 2);
        // Bounded size.
        d.resolve(key("2")).await.unwrap();
        d.resolve(key("3")).await.unwrap();
        assert_eq!(d.len(), 2);
    }
}
