//! What the ring knows about one instance, as gossiped (keys under `ring.`) and as shown on
//! `/ingester/ring`.

use std::fmt;
use std::str::FromStr;

/// The lifecycle state an instance publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstanceState {
    /// Announced with its tokens, owning nothing yet.
    Joining,
    /// Owns its tokens: receives writes and reads.
    Active,
    /// Shutting down: owns nothing, still read until it has flushed its head to blocks.
    Leaving,
    /// Flushed and gone: dropped from the ring at once.
    Left,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Joining => "JOINING",
            InstanceState::Active => "ACTIVE",
            InstanceState::Leaving => "LEAVING",
            InstanceState::Left => "LEFT",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "JOINING" => InstanceState::Joining,
            "ACTIVE" => InstanceState::Active,
            "LEAVING" => InstanceState::Leaving,
            "LEFT" => InstanceState::Left,
            other => return Err(format!("unknown instance state {other:?}")),
        })
    }
}

/// One ingester in the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceDesc {
    pub id: String,
    /// gRPC address (`host:port`).
    pub addr: String,
    pub zone: String,
    pub state: InstanceState,
    /// Sorted tokens.
    pub tokens: Vec<u32>,
    /// When this process last saw the instance's gossip heartbeat advance (Unix ms).
    pub last_heartbeat_ms: i64,
    /// False once no heartbeat was seen for the heartbeat timeout (shown as UNHEALTHY).
    pub healthy: bool,
    /// When the instance first took its tokens (Unix ms; 0 if unknown). Queriers also ask
    /// ingesters registered recently for a tenant's shuffle shard (they may have displaced
    /// members that still hold the tenant's data).
    pub registered_ms: i64,
}

/// Tokens as gossiped: decimal, comma-separated.
pub fn encode_tokens(tokens: &[u32]) -> String {
    let mut s = String::with_capacity(tokens.len() * 11);
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&t.to_string());
    }
    s
}

/// Parses [`encode_tokens`]'s output; `None` if any part is not a token.
pub fn decode_tokens(s: &str) -> Option<Vec<u32>> {
    if s.is_empty() {
        return Some(vec![]);
    }
    let mut v: Vec<u32> = s
        .split(',')
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    v.sort_unstable();
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_states_round_trip() {
        let t = vec![1, 5, u32::MAX];
        assert_eq!(decode_tokens(&encode_tokens(&t)), Some(t));
        assert_eq!(decode_tokens("1,x"), None);
        for s in ["JOINING", "ACTIVE", "LEAVING", "LEFT"] {
            assert_eq!(s.parse::<InstanceState>().unwrap().as_str(), s);
        }
    }
}
