//! The `muninn` binary's library: configuration, role composition and the HTTP/gRPC servers.
//!
//! `muninn all` runs every role in one process on one HTTP port; `muninn <role>` runs one.
//! [`server::run`] takes its shutdown future, so tests can start and stop whole services.

pub mod config;
pub mod http_metrics;
pub mod import_blocks;
pub mod promql_test;
pub mod roles;
pub mod server;
pub mod ui;
