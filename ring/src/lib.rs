//! Muninn's hash ring: which ingesters own which series, and how processes agree on it.
//!
//! - [`token_ring`]: pure placement over a snapshot: tokens, replica sets (zone-aware),
//!   quorum, the instances a read asks.
//! - [`gossip`]: membership by gossip (the `chitchat` crate): each member publishes its own
//!   keys; everyone builds the same ring from them.
//! - [`handle`]: the ring a process holds (local, or kept up to date from gossip) and this
//!   ingester's lifecycle in it (JOINING → ACTIVE → LEAVING → LEFT).
//! - [`tokens`]: tokens kept in `<data-dir>/tokens` across restarts; [`hash`]: series keys.
//! - [`clients`]: gRPC clients of the ingesters; [`http`]: `GET /ingester/ring`.
//!
//! Guarantees: a series' replica set depends only on tokens and states, never on which owners
//! answer; a ring change moves only the token ranges of the instances that changed.

pub mod clients;
pub mod config;
pub mod gossip;
pub mod handle;
pub mod hash;
pub mod http;
pub mod instance;
pub mod metrics;
pub mod shuffle;
pub mod token_ring;
pub mod tokens;

use std::path::{Path, PathBuf};

pub use config::RingArgs;
pub use handle::RingHandle;
pub use instance::{InstanceDesc, InstanceState};
pub use token_ring::{InstanceIdx, ReadPlan, ReplicaSet, Ring};

/// Errors of the ring.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokens file {path} is corrupt ({message}); remove it to get new tokens")]
    TokensFile { path: PathBuf, message: String },
    #[error("gossip: {0}")]
    Gossip(String),
    #[error("ingester address {0}")]
    Address(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
