//! Cached extents of range-query answers, after Cortex's results cache.
//!
//! The cache holds, per tenant, query text, step, step grid (start modulo step) and split
//! interval, the answers for spans of that interval's steps already computed: its
//! *extents*. A request for a piece is answered from the extents it overlaps plus
//! sub-requests for the gaps between them; the gaps' answers join the extents (contiguous
//! ones merged). Steps newer than now minus `--query-frontend.max-cache-freshness` are
//! always fetched and never stored.

use serde::{Deserialize, Serialize};

use crate::cache::{ResultsCache, hashed_key};
use crate::matrix::Matrix;
use crate::split::Span;

/// The answer for the steps `start..=end` of one key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Extent {
    pub start: i64,
    pub end: i64,
    pub matrix: Matrix,
}

/// What a cache entry holds: its logical key (checked on read) and its extents.
#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    extents: Vec<Extent>,
}

/// The logical key of one split interval of a range query. Steps sit on the grid
/// `start + k*step`, so the grid's phase is part of the key; so is the tenant's cache
/// generation ([`crate::generation`]).
pub fn cache_key(
    tenant: &str,
    generation: u64,
    query: &str,
    step: i64,
    start: i64,
    interval_index: i64,
) -> String {
    format!(
        "v1\n{tenant}\n{generation}\n{step}\n{}\n{interval_index}\n{query}",
        start.rem_euclid(step.max(1))
    )
}

/// The extents stored under `key`; none if absent, unreadable or another key's.
pub async fn load(cache: &dyn ResultsCache, key: &str) -> crate::Result<Vec<Extent>> {
    let Some(bytes) = cache.get(&hashed_key(key)).await? else {
        return Ok(vec![]);
    };
    match serde_json::from_slice::<Entry>(&bytes) {
        Ok(e) if e.key == key => Ok(e.extents),
        Ok(_) => Ok(vec![]),
        Err(e) => Err(crate::Error::Cache(format!("an unreadable entry: {e}"))),
    }
}

/// Stores `extents` under `key`.
pub async fn store(cache: &dyn ResultsCache, key: &str, extents: Vec<Extent>) -> crate::Result<()> {
    let entry = Entry {
        key: key.to_string(),
        extents,
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| crate::Error::Cache(e.to_string()))?;
    cache.set(&hashed_key(key), bytes).await
}

/// The spans of `want`'s steps that no extent holds, in time order.
pub fn gaps(extents: &[Extent], want: Span, step: i64) -> Vec<Span> {
    let mut sorted: Vec<&Extent> = extents.iter().collect();
    sorted.sort_by_key(|e| e.start);
    let mut out = vec![];
    let mut cur = want.start;
    for e in sorted {
        if cur > want.end {
            break;
        }
        if e.end < cur {
            continue;
        }
        if e.start > want.end {
            break;
        }
        if e.start > cur {
            // The last step before the extent on the grid.
            let last = cur + (e.start - 1 - cur) / step * step;
            out.push(Span {
                start: cur,
                end: last,
            });
        }
        cur = cur.max(next_step_after(cur, e.end, step));
    }
    if cur <= want.end {
        out.push(Span {
            start: cur,
            end: want.end,
        });
    }
    out
}

/// The first grid step (phase of `grid`) after `t`.
fn next_step_after(grid: i64, t: i64, step: i64) -> i64 {
    if t < grid {
        return grid;
    }
    grid + ((t - grid) / step + 1) * step
}

/// `old` and `new` extents as one sorted list, contiguous or overlapping ones merged.
pub fn combine(old: Vec<Extent>, new: Vec<Extent>, step: i64) -> crate::Result<Vec<Extent>> {
    let mut all: Vec<Extent> = old.into_iter().chain(new).collect();
    all.sort_by_key(|e| e.start);
    let mut out: Vec<Extent> = vec![];
    for e in all {
        match out.last_mut() {
            Some(last) if e.start <= last.end.saturating_add(step) => {
                let m = Matrix::merge(vec![std::mem::take(&mut last.matrix), e.matrix])?;
                last.matrix = m;
                last.end = last.end.max(e.end);
            }
            _ => out.push(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::LruResultsCache;

    fn ext(start: i64, end: i64) -> Extent {
        Extent {
            start,
            end,
            matrix: Matrix::default(),
        }
    }

    #[test]
    fn gaps_are_the_steps_no_extent_holds() {
        let want = Span { start: 0, end: 100 };
        assert_eq!(gaps(&[], want, 10), vec![want]);
        assert_eq!(gaps(&[ext(0, 100)], want, 10), vec![]);
        assert_eq!(
            gaps(&[ext(30, 50), ext(80, 200)], want, 10),
            vec![Span { start: 0, end: 20 }, Span { start: 60, end: 70 }]
        );
        assert_eq!(
            gaps(&[ext(-50, 40)], want, 10),
            vec![Span {
                start: 50,
                end: 100
            }]
        );
    }

    #[test]
    fn contiguous_extents_merge() {
        let c = combine(vec![ext(0, 40), ext(100, 120)], vec![ext(50, 90)], 10).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start, c[0].end), (0, 120));
        let c = combine(vec![ext(0, 40)], vec![ext(60, 90)], 10).unwrap();
        assert_eq!(c.len(), 2);
    }

    #[tokio::test]
    async fn another_key_under_the_same_hash_is_not_served() {
        let cache = LruResultsCache::new(1 << 20);
        store(&cache, "k1", vec![ext(0, 10)]).await.unwrap();
        assert_eq!(load(&cache, "k1").await.unwrap().len(), 1);
        // Simulate a collision: k2's slot holding k1's entry.
        let bytes = cache.get(&hashed_key("k1")).await.unwrap().unwrap();
        cache.set(&hashed_key("k2"), bytes).await.unwrap();
        assert!(load(&cache, "k2").await.unwrap().is_empty());
    }
}
