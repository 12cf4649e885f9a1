//! What pages read from the catalog, kept between views of the same page until the catalog
//! changes. An entry is filed under the catalog's write count (`catalog::generation`) taken
//! before it was read, and is used only while that count has not moved, so a page never
//! shows what a committed write has changed. Who is signed in is not part of what is kept:
//! the frame (user, CSRF token) and what depends on the caller's role are built per view.
//!
//! One cache per page and per worker (the App is built per worker). At the scale of
//! benches/dashboard.sh the models list's catalog read costs more than the rest of the
//! view together.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog;

/// Entries kept at most; past it the cache starts over (a new write count empties it in
/// effect anyway).
const ENTRIES: usize = 256;

pub struct PageCache<K, V> {
    entries: Mutex<HashMap<K, (u64, Arc<V>)>>,
}

impl<K, V> Default for PageCache<K, V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V> PageCache<K, V> {
    /// What `load` gives for `key`, from the cache while the catalog has not changed since
    /// it was loaded.
    pub async fn get_or_load<E, F, Fut>(&self, key: K, load: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        // Taken before the read, so a write committed meanwhile makes this entry old.
        self.get_or_load_at(catalog::generation(), key, load).await
    }

    async fn get_or_load_at<E, F, Fut>(&self, generation: u64, key: K, load: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some((at, value)) = self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
            && *at == generation
        {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(load().await?);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= ENTRIES {
            entries.retain(|_, (at, _)| *at == generation);
            if entries.len() >= ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (generation, Arc::clone(&value)));
        Ok(value)
    }
}

/// One value that the catalog does not hold (whether Docker answers), asked for again once
/// it is older than its time to live: on a status page, a second's delay is fine.
pub struct Recent<T> {
    ttl: Duration,
    value: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Recent<T> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, value: Mutex::new(None) }
    }

    pub async fn get_or_load<F, Fut>(&self, load: F) -> Arc<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some((at, value)) = &*self.value.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < self.ttl
        {
            return Arc::clone(value);
        }
        let value = Arc::new(load().await);
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), Arc::clone(&value)));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_is_kept_until_the_write_count_moves_and_failures_are_not_kept() {
        let cache: PageCache<u32, String> = PageCache::default();
        let load = |text: &'static str| move || async move { Ok::<_, ()>(text.to_owned()) };
        assert_eq!(*cache.get_or_load_at(7, 1, load("first")).await.expect("loads"), "first");
        assert_eq!(*cache.get_or_load_at(7, 1, load("second")).await.expect("kept"), "first");
        assert_eq!(*cache.get_or_load_at(7, 2, load("other key")).await.expect("loads"), "other key");
        assert_eq!(*cache.get_or_load_at(8, 1, load("after a write")).await.expect("reloads"), "after a write");
        let failed = cache.get_or_load_at(9, 1, || async { Err::<String, _>("no") }).await;
        assert_eq!(failed, Err("no"));
        assert_eq!(*cache.get_or_load_at(9, 1, load("retried")).await.expect("loads"), "retried");
    }

    #[tokio::test]
    async fn a_recent_value_is_asked_for_again_once_it_is_old() {
        let recent = Recent::new(Duration::from_millis(50));
        assert_eq!(*recent.get_or_load(|| async { 1 }).await, 1);
        assert_eq!(*recent.get_or_load(|| async { 2 }).await, 1, "still fresh");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(*recent.get_or_load(|| async { 3 }).await, 3, "asked again");
    }

    #[tokio::test]
    async fn a_full_cache_keeps_only_the_current_entries() {
        let cache: PageCache<usize, usize> = PageCache::default();
        for key in 0..ENTRIES {
            cache.get_or_load_at(1, key, || async move { Ok::<_, ()>(key) }).await.expect("loads");
        }
        cache.get_or_load_at(2, ENTRIES, || async { Ok::<_, ()>(0) }).await.expect("loads");
        assert_eq!(cache.entries.lock().expect("lock").len(), 1, "the old count's entries went");
    }
}
