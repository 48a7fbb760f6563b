//! The roles a process can run, and which of them `all` expands to.

/// A role of the `muninn` binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Ingester, querier and compactor in one process, on local storage.
    All,
    /// Receives remote write, keeps the head and WAL, serves queriers over gRPC.
    Ingester,
    /// Prometheus HTTP API and PromQL over the ingesters.
    Querier,
    /// Merges, deduplicates and expires blocks.
    Compactor,
}

impl Role {
    pub fn runs_ingester(self) -> bool {
        matches!(self, Role::All | Role::Ingester)
    }

    pub fn runs_querier(self) -> bool {
        matches!(self, Role::All | Role::Querier)
    }

    pub fn runs_compactor(self) -> bool {
        matches!(self, Role::All | Role::Compactor)
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Ingester => "ingester",
            Role::Querier => "querier",
            Role::Compactor => "compactor",
        }
    }
}
