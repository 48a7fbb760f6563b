//! Readers' cache of each tenant's bucket index (its live blocks), refreshed every
//! `--blocks-storage.bucket-index.update-interval` instead of read on every query.
//!
//! Correctness rests on the ingesters' grace period: a block shipped after the index was
//! cached stays answerable from the ingesters for `--ingester.retain-after-ship`, which must
//! exceed the update interval; a block the compactor replaces stays readable for the deletion
//! delay. Changes made through this process's own [`crate::bucket::Bucket`] (the shipper and
//! compactor of `muninn all`) drop the tenant's entry at once, and a querier drops every entry
//! when an ingester leaves the ring, since that ingester's data now lives only in blocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::block::meta::BlockMeta;

/// A tenant's live blocks and when they were read.
type Entry = (Instant, Arc<Vec<BlockMeta>>);

/// Live blocks per tenant with the time they were read.
#[derive(Debug, Default)]
pub struct IndexCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Raised by every invalidation: a read that started before one is not stored.
    epoch: AtomicU64,
}

impl IndexCache {
    /// The cached blocks of `tenant` if read less than `max_age` ago.
    pub fn get(&self, tenant: &str, max_age: Duration) -> Option<Arc<Vec<BlockMeta>>> {
        let entries = self.entries.lock();
        let (at, blocks) = entries.get(tenant)?;
        (at.elapsed() < max_age).then(|| blocks.clone())
    }

    /// The epoch to pass to [`IndexCache::put`] for a read starting now.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores blocks read since `epoch`, unless an invalidation happened meanwhile.
    pub fn put(&self, tenant: &str, epoch: u64, at: Instant, blocks: Arc<Vec<BlockMeta>>) {
        let mut entries = self.entries.lock();
        if self.epoch.load(Ordering::Acquire) == epoch {
            entries.insert(tenant.to_owned(), (at, blocks));
        }
    }

    /// Drops the tenant's entry (its index changed).
    pub fn forget(&self, tenant: &str) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(tenant);
    }

    /// Drops every entry (an ingester left: its data is now only in blocks).
    pub fn forget_all(&self) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: usize) -> Arc<Vec<BlockMeta>> {
        let meta = BlockMeta {
            ulid: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            min_time: 0,
            max_time: 7_200_000,
            stats: Default::default(),
            compaction: Default::default(),
            version: crate::block::meta::FORMAT_VERSION,
            slice_ms: 0,
            files: vec![],
        };
        Arc::new(vec![meta; n])
    }

    #[test]
    fn entries_expire_and_invalidation_wins_over_a_read_in_flight() {
        let c = IndexCache::default();
        let e = c.epoch();
        c.put("a", e, Instant::now(), blocks(1));
        assert_eq!(
            c.get("a", Duration::from_secs(60)).map(|b| b.len()),
            Some(1)
        );
        assert!(c.get("a", Duration::ZERO).is_none(), "older than max age");
        assert!(c.get("b", Duration::from_secs(60)).is_none());

        // A read starts, the index changes, the read finishes: its stale answer is dropped.
        let e = c.epoch();
        c.forget("a");
        c.put("a", e, Instant::now(), blocks(1));
        assert!(c.get("a", Duration::from_secs(60)).is_none());

        let e = c.epoch();
        c.put("a", e, Instant::now(), blocks(2));
        c.put("b", e, Instant::now(), blocks(3));
        c.forget_all();
        assert!(c.get("a", Duration::from_secs(60)).is_none());
        assert!(c.get("b", Duration::from_secs(60)).is_none());
    }
}
