//! A small bounded cache whose entries expire, for review results (kubelet caches
//! TokenReviews 2 minutes, allowed SubjectAccessReviews 5 minutes, denied ones 30 seconds).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries kept: past it expired ones go, and if none had, everything goes.
const MAX_ENTRIES: usize = 4096;

pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache = TtlCache::default();
        cache.put("a", 1, Duration::from_secs(60));
        cache.put("b", 2, Duration::ZERO);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.get(&"c"), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TtlCache::default();
        for n in 0..(MAX_ENTRIES * 2) {
            cache.put(n, n, Duration::from_secs(60));
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
