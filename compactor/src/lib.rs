//! The compactor: merges, deduplicates and expires each tenant's blocks in object storage.
//!
//! Blocks do not exist yet (they arrive with the block format), so this role only owns its
//! configuration and its place in the process: it starts, reports that it has nothing to
//! compact, and stops cleanly. The planner and executor land here with the blocks.

use std::time::Duration;

/// Flags owned by the compactor.
#[derive(clap::Args, Clone, Debug)]
pub struct CompactorArgs {
    /// Seconds between compaction passes.
    #[arg(long = "compactor.interval", default_value_t = 3600)]
    pub interval_seconds: u64,
}

/// Runs compaction passes until `shutdown` resolves.
pub async fn run(args: CompactorArgs, shutdown: impl std::future::Future<Output = ()>) {
    let interval = Duration::from_secs(args.interval_seconds.max(1));
    tokio::pin!(shutdown);
    loop {
        tracing::info!("compaction pass: no blocks in storage yet, nothing to compact");
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
