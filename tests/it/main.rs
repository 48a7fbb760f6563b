//! End-to-end tests: the real `muninn` binary, started as processes, talked to over HTTP, and
//! a real Prometheus (Debian package `prometheus`) where Prometheus is the point.

#![allow(clippy::unwrap_used)]

mod bad_input;
mod block_cache;
mod blocks;
mod churn;
mod cluster;
mod compaction;
mod crash;
mod deploy;
mod exemplars;
mod frontend;
mod harness;
mod hostile_queries;
mod http_api;
mod import_blocks;
mod native_histograms;
mod prometheus_remote_write;
mod promql_differential;
mod reliability;
mod remote_read;

mod remote_write_v2;
mod ruler;
mod scale_out;
mod tenancy;
mod tenants;
mod two_process;
mod ui;
