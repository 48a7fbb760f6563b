//! Command line and YAML configuration.
//!
//! Every flag can also be set in the YAML file given with `--config`: keys are the flag names
//! without `--`, nested maps joined with dots, so
//! `auth: {multitenancy-enabled: false}` sets `--auth.multitenancy-enabled=false`. Layering:
//! defaults < file < command line. An unknown key is an error naming it.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Parser};

use crate::roles::Role;

/// Muninn: a horizontally scalable, multi-tenant Prometheus backend.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "muninn",
    version,
    args_override_self = true,
    after_help = "Also: `muninn promql-test [-v] FILE...` runs PromQL test files (Prometheus's test language) against Muninn's engine; `muninn import-blocks --tenant T [storage flags] DIR` imports Prometheus TSDB blocks."
)]
pub struct Config {
    /// Which role to run: all (every role in one process, local storage), ingester, querier,
    /// query-frontend, compactor, distributor, ruler.
    #[arg(value_enum)]
    pub role: Role,
    /// YAML file with any of these flags (nested keys joined with dots).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTP listen address (remote write, Prometheus API, /metrics, /ready).
    #[arg(long = "http-addr", default_value = "0.0.0.0:9009")]
    pub http_addr: SocketAddr,
    /// gRPC listen address (querier → ingester).
    #[arg(long = "grpc-addr", default_value = "0.0.0.0:9095")]
    pub grpc_addr: SocketAddr,
    /// Directory for the WAL and local data.
    #[arg(long = "data-dir", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Require a tenant (X-Scope-OrgID or basic-auth user) on every request. When false,
    /// every request belongs to tenant `anonymous`.
    #[arg(long = "auth.multitenancy-enabled", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub multitenancy: bool,
    /// Log level filter (e.g. info, debug, muninn_ingester=debug).
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
    /// Log format: text or json.
    #[arg(long = "log.format", default_value = "text")]
    pub log_format: String,
    #[command(flatten)]
    pub ingester: muninn_ingester::config::IngesterArgs,
    #[command(flatten)]
    pub distributor: muninn_ingester::config::DistributorArgs,
    #[command(flatten)]
    pub ring: muninn_ring::RingArgs,
    #[command(flatten)]
    pub querier: muninn_querier::QuerierArgs,
    #[command(flatten)]
    pub frontend: muninn_frontend::FrontendArgs,
    #[command(flatten)]
    pub compactor: muninn_compactor::CompactorArgs,
    #[command(flatten)]
    pub ruler: muninn_ruler::RulerArgs,
    #[command(flatten)]
    pub storage: muninn_storage::bucket::StorageArgs,
    #[command(flatten)]
    pub tenancy: muninn_tenancy::TenancyArgs,
    /// Serve `/metrics` on this separate address instead of the HTTP address (it lists tenant
    /// ids, so a multi-tenant install can keep it off the public listener).
    #[arg(long = "server.metrics-addr")]
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// Parses the command line, merging the `--config` file under it.
    pub fn load(args: Vec<OsString>) -> anyhow::Result<Self> {
        let first = Config::try_parse_from(&args).unwrap_or_else(|e| e.exit());
        let Some(path) = &first.config else {
            first.validate()?;
            return Ok(first);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file_args = yaml_to_args(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        let mut merged: Vec<OsString> = Vec::with_capacity(args.len() + file_args.len());
        merged.push(args.first().cloned().unwrap_or_else(|| "muninn".into()));
        merged.extend(file_args.into_iter().map(OsString::from));
        merged.extend(args.into_iter().skip(1));
        let config = Config::try_parse_from(merged).unwrap_or_else(|e| e.exit());
        config.validate()?;
        Ok(config)
    }

    /// Checks what flag parsing cannot (each component's `validate`).
    pub fn validate(&self) -> anyhow::Result<()> {
        self.compactor.validate().map_err(anyhow::Error::msg)?;
        self.ring.validate().map_err(anyhow::Error::msg)?;
        self.distributor.validate().map_err(anyhow::Error::msg)?;
        if self.tenancy.tenants_file.is_some() && !self.multitenancy {
            anyhow::bail!(
                "--auth.tenants-file authenticates tenants: it needs --auth.multitenancy-enabled=true"
            );
        }
        if self.role == Role::QueryFrontend
            && self.frontend.downstream_url.is_empty()
            && self.ring.join.is_empty()
        {
            anyhow::bail!(
                "muninn query-frontend forwards to queriers: give --query-frontend.downstream-url, or --memberlist.join to find them in the ring"
            );
        }
        if self.role == Role::Distributor && self.ring.join.is_empty() {
            anyhow::bail!("muninn distributor routes over the ring: give --memberlist.join");
        }
        if self.role == Role::Ruler && self.ring.join.is_empty() {
            anyhow::bail!(
                "muninn ruler reads ingesters and writes rule results over the ring: give --memberlist.join"
            );
        }
        Ok(())
    }

    /// The replication factor: the flag, or 3 in cluster roles and 1 in `all`.
    pub fn replication_factor(&self) -> usize {
        self.ring
            .replication_factor
            .unwrap_or(if self.role == Role::All { 1 } else { 3 })
    }
}

/// Flattens a YAML mapping into `--key=value` arguments.
pub fn yaml_to_args(text: &str) -> anyhow::Result<Vec<String>> {
    let v: serde_json::Value = serde_saphyr::from_str(text).context("invalid YAML")?;
    let mut out = vec![];
    match v {
        serde_json::Value::Object(m) => flatten("", &m, &mut out)?,
        serde_json::Value::Null => {}
        _ => anyhow::bail!("the config file must be a mapping of flag names to values"),
    }
    Ok(out)
}

fn flatten(
    prefix: &str,
    m: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<String>,
) -> anyhow::Result<()> {
    for (k, v) in m {
        // Mimir's files spell keys with underscores (`limits: {ingestion_rate: ...}`); flag
        // names use dashes.
        let k = k.replace('_', "-");
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let value = match v {
            serde_json::Value::Object(inner) => {
                flatten(&key, inner, out)?;
                continue;
            }
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            serde_json::Value::Null => continue,
            other => other.to_string(),
        };
        if key == "role" || key == "config" {
            anyhow::bail!("{key:?} cannot be set in the config file");
        }
        out.push(format!("--{key}={value}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_its_own_name() {
        // clap checks ids, names and defaults of every flag of every component together.
        use clap::CommandFactory;
        Config::command().debug_assert();
    }

    #[test]
    fn yaml_layers_under_the_command_line() {
        let args = yaml_to_args("http-addr: 127.0.0.1:1\nauth:\n  multitenancy-enabled: false\nquerier:\n  ingester-addrs: [a:1, b:2]\n").unwrap();
        assert!(args.contains(&"--auth.multitenancy-enabled=false".to_string()));
        assert!(args.contains(&"--querier.ingester-addrs=a:1,b:2".to_string()));
        let mut argv: Vec<OsString> = vec!["muninn".into()];
        argv.extend(args.into_iter().map(OsString::from));
        argv.push("querier".into());
        argv.push("--http-addr=127.0.0.1:2".into());
        let c = Config::try_parse_from(argv).unwrap();
        assert_eq!(c.http_addr.port(), 2, "command line wins");
        assert!(!c.multitenancy);
        assert_eq!(c.querier.ingester_addrs, vec!["a:1", "b:2"]);
        assert_eq!(c.role, Role::Querier);
    }

    #[test]
    fn limits_in_the_config_file_with_mimir_spelling() {
        let args =
            yaml_to_args("limits:\n  ingestion_rate: 1000\n  max_global_series_per_user: 50\n")
                .unwrap();
        let mut argv: Vec<OsString> = vec!["muninn".into(), "all".into()];
        argv.extend(args.into_iter().map(OsString::from));
        let c = Config::try_parse_from(argv).unwrap();
        assert_eq!(c.tenancy.limits.ingestion_rate, 1000.0);
        assert_eq!(c.tenancy.limits.max_global_series_per_user, 50);
    }

    #[test]
    fn durations_and_booleans_in_flags() {
        let c = Config::try_parse_from([
            "muninn",
            "all",
            "--once=false",
            "--ingester.flush-on-shutdown=false",
            "--ingester.block-range=7200",
            "--ingester.cut-interval=500ms",
            "--ingester.retain-after-ship=7d",
            "--validation.create-grace-period=1m",
            "--limits.out-of-order-time-window=1h",
            "--querier.timeout=2h",
            "--compactor.interval=10s",
            "--compactor.block-ranges=2h,12h,24h",
        ])
        .unwrap();
        assert!(!c.compactor.once && !c.ingester.flush_on_shutdown);
        assert_eq!(c.ingester.block_range.to_string(), "2h");
        assert_eq!(c.ingester.cut_interval.0.as_millis(), 500);
        assert_eq!(c.ingester.retain_after_ship.0.as_secs(), 7 * 86_400);
        assert_eq!(c.querier.timeout.0.as_secs(), 7200);
        assert_eq!(
            c.tenancy.limits.creation_grace_period.0.as_secs(),
            60,
            "old flag name"
        );
        assert_eq!(c.tenancy.limits.out_of_order_time_window.0.as_secs(), 3600);
        assert!(c.validate().is_ok());
        let hours =
            Config::try_parse_from(["muninn", "all", "--compactor.block-ranges=2,12,24"]).unwrap();
        assert!(
            hours.validate().is_err(),
            "bare numbers are seconds: 2 s ranges are refused"
        );
        assert!(Config::try_parse_from(["muninn", "all", "--ingester.block-range=2x"]).is_err());
    }
}
