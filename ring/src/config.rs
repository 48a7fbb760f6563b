//! The ring's flags: `--memberlist.*` (gossip) and `--ingester.ring.*` (placement and
//! lifecycle). Every role that holds the ring takes them.

use std::net::SocketAddr;
use std::time::Duration;

use muninn_proto::duration::FlagDuration;

/// Ring and gossip flags; the binary flattens them into its command line.
#[derive(clap::Args, Clone, Debug)]
pub struct RingArgs {
    /// UDP address the gossip listens on. Gossip runs only when `--memberlist.join` is given.
    #[arg(long = "memberlist.bind-addr", default_value = "0.0.0.0:7946")]
    pub bind_addr: SocketAddr,
    /// Address other members reach this one's gossip at (default: the bind address, or this
    /// host's address towards the first join address when binding 0.0.0.0).
    #[arg(long = "memberlist.advertise-addr")]
    pub advertise_addr: Option<SocketAddr>,
    /// Members to join, comma-separated `host:port`; DNS names are resolved and re-resolved
    /// (a Kubernetes headless service works). Empty: no gossip.
    #[arg(long = "memberlist.join", value_delimiter = ',')]
    pub join: Vec<String>,
    /// How often each member gossips with a few others.
    #[arg(long = "memberlist.gossip-interval", default_value = "200ms")]
    pub gossip_interval: FlagDuration,
    /// Name of the cluster: members of different clusters ignore each other.
    #[arg(long = "memberlist.cluster-label", default_value = "muninn")]
    pub cluster_label: String,
    /// This ingester's id in the ring (default: the host name).
    #[arg(long = "ingester.ring.instance-id")]
    pub instance_id: Option<String>,
    /// gRPC address other members reach this ingester at (default: `--grpc-addr`, with this
    /// host's address when it binds 0.0.0.0).
    #[arg(long = "ingester.ring.instance-addr")]
    pub instance_addr: Option<String>,
    /// This ingester's availability zone (with zone awareness, one replica per zone).
    #[arg(long = "ingester.ring.zone", default_value = "")]
    pub zone: String,
    /// Distinct ingesters that receive each series (default: 3 in cluster roles, 1 in `all`).
    #[arg(long = "ingester.ring.replication-factor")]
    pub replication_factor: Option<usize>,
    /// Place at most one replica of a series per zone.
    #[arg(long = "ingester.ring.zone-awareness-enabled", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub zone_awareness: bool,
    /// Tokens this ingester owns (kept in `<data-dir>/tokens`).
    #[arg(long = "ingester.ring.num-tokens", default_value_t = 128)]
    pub num_tokens: usize,
    /// An instance whose heartbeat is older than this is UNHEALTHY: writes to it count as
    /// failed without being tried, reads skip it.
    #[arg(long = "ingester.ring.heartbeat-timeout", default_value = "1m")]
    pub heartbeat_timeout: FlagDuration,
    /// An instance UNHEALTHY for this long is removed from the ring (its tokens move).
    #[arg(
        long = "ingester.ring.auto-forget-unhealthy-period",
        default_value = "10m"
    )]
    pub auto_forget_period: FlagDuration,
}

impl RingArgs {
    /// Checks what flag parsing cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.replication_factor == Some(0) {
            return Err("--ingester.ring.replication-factor must be at least 1".into());
        }
        if self.num_tokens == 0 || self.num_tokens > 4096 {
            return Err("--ingester.ring.num-tokens must be between 1 and 4096".into());
        }
        if self.gossip_interval.0 < Duration::from_millis(10) {
            return Err("--memberlist.gossip-interval must be at least 10ms".into());
        }
        if self.heartbeat_timeout.0 < self.gossip_interval.0 * 4 {
            return Err(
                "--ingester.ring.heartbeat-timeout must be at least 4 gossip intervals".into(),
            );
        }
        if self.auto_forget_period.0 < self.heartbeat_timeout.0 {
            return Err(
                "--ingester.ring.auto-forget-unhealthy-period must not be shorter than the heartbeat timeout"
                    .into(),
            );
        }
        if self.instance_id.as_deref().is_some_and(|id| {
            id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c == ',')
        }) {
            return Err("--ingester.ring.instance-id must be 1-128 printable characters".into());
        }
        Ok(())
    }

    /// The instance id: the flag, or the host name.
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(hostname)
    }

    /// How often an ingester republishes its heartbeat timestamp.
    pub fn heartbeat_period(&self) -> Duration {
        (self.heartbeat_timeout.0 / 4)
            .min(Duration::from_secs(5))
            .max(self.gossip_interval.0)
    }
}

/// This host's name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, or `muninn`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "muninn".to_owned())
}
