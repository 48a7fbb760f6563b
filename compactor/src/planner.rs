//! The compaction planner: pure, `&[BlockMeta] -> Option<Job>`.
//!
//! Vertical first: blocks whose time ranges overlap (replica copies from several ingesters, a
//! late upload) become one. Then horizontal: blocks that together exactly fill one range of the
//! next level (`--compactor.block-ranges`, 2h,12h,24h) become one.

use muninn_storage::block::BlockMeta;

/// One compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub sources: Vec<BlockMeta>,
    pub min_time: i64,
    pub max_time: i64,
    pub level: u32,
    pub vertical: bool,
}

fn job(sources: Vec<BlockMeta>, vertical: bool) -> Job {
    let min_time = sources.iter().map(|b| b.min_time).min().unwrap_or(0);
    let max_time = sources.iter().map(|b| b.max_time).max().unwrap_or(0);
    let level = sources
        .iter()
        .map(|b| b.compaction.level)
        .max()
        .unwrap_or(0)
        + 1;
    Job {
        sources,
        min_time,
        max_time,
        level,
        vertical,
    }
}

/// The next job for these (live) blocks, if any.
pub fn plan(blocks: &[BlockMeta], ranges: &[i64]) -> Option<Job> {
    let mut sorted: Vec<BlockMeta> = blocks.to_vec();
    sorted.sort_by(|a, b| (a.min_time, &a.ulid).cmp(&(b.min_time, &b.ulid)));
    // Vertical: the first group of transitively overlapping blocks.
    let mut i = 0;
    while i < sorted.len() {
        let mut end = sorted[i].max_time;
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].min_time < end {
            end = end.max(sorted[j].max_time);
            j += 1;
        }
        if j - i > 1 {
            return Some(job(sorted[i..j].to_vec(), true));
        }
        i = j;
    }
    // Horizontal: blocks exactly filling a window of a larger range.
    for &range in ranges.iter().skip(1) {
        let mut k = 0;
        while k < sorted.len() {
            let w = sorted[k].min_time.div_euclid(range) * range;
            let group: Vec<BlockMeta> = sorted
                .iter()
                .filter(|b| {
                    b.min_time >= w && b.max_time <= w + range && b.max_time - b.min_time < range
                })
                .cloned()
                .collect();
            let contiguous = group.windows(2).all(|p| p[0].max_time == p[1].min_time);
            if group.len() > 1
                && contiguous
                && group[0].min_time == w
                && group[group.len() - 1].max_time == w + range
            {
                return Some(job(group, false));
            }
            k += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_storage::block::{BlockStats, Compaction};

    const H: i64 = 3_600_000;

    fn b(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            ulid: id.into(),
            min_time: min,
            max_time: max,
            stats: BlockStats::default(),
            compaction: Compaction {
                level: 1,
                sources: vec![id.into()],
            },
            version: 1,
            slice_ms: 0,
            files: vec![],
        }
    }

    #[test]
    fn overlaps_first_then_filled_ranges() {
        let ranges = [2 * H, 12 * H, 24 * H];
        // Two replicas of the same range.
        let j = plan(
            &[b("a", 0, 2 * H), b("b", 0, 2 * H), b("c", 2 * H, 4 * H)],
            &ranges,
        )
        .unwrap();
        assert!(j.vertical);
        assert_eq!(j.sources.len(), 2);
        assert_eq!((j.min_time, j.max_time, j.level), (0, 2 * H, 2));
        // Six 2h blocks fill 12h.
        let six: Vec<_> = (0..6)
            .map(|i| b(&format!("x{i}"), i * 2 * H, (i + 1) * 2 * H))
            .collect();
        let j = plan(&six, &ranges).unwrap();
        assert!(!j.vertical);
        assert_eq!((j.min_time, j.max_time), (0, 12 * H));
        // Five do not.
        assert_eq!(plan(&six[..5], &ranges), None);
        // Two 12h blocks fill 24h.
        let j = plan(&[b("p", 0, 12 * H), b("q", 12 * H, 24 * H)], &ranges).unwrap();
        assert_eq!((j.min_time, j.max_time), (0, 24 * H));
        assert_eq!(plan(&[b("only", 0, 24 * H)], &ranges), None);
    }
}
