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
    /// Stateless write router: receives remote write, deduplicates HA pairs, and sends each
    /// series to its owners on the ring (needs `--memberlist.join`).
    Distributor,
    /// The Prometheus HTTP API in front of queriers: splits, caches, shards and queues
    /// queries (`--query-frontend.downstream-url`).
    QueryFrontend,
    /// Evaluates tenants' recording and alerting rules (groups sharded over the rulers of the
    /// ring), writes results through the ring, sends alerts to Alertmanager (needs
    /// `--memberlist.join`).
    Ruler,
}

impl Role {
    pub fn runs_ingester(self) -> bool {
        matches!(self, Role::All | Role::Ingester)
    }

    pub fn runs_querier(self) -> bool {
        matches!(self, Role::All | Role::Querier)
    }

    /// Whether the process serves `POST /api/v1/push` (and routes it over the ring).
    pub fn runs_distributor(self) -> bool {
        matches!(self, Role::All | Role::Ingester | Role::Distributor)
    }

    /// Whether the process serves the query API through the query frontend.
    pub fn runs_frontend(self) -> bool {
        matches!(self, Role::All | Role::QueryFrontend)
    }

    pub fn runs_ruler(self) -> bool {
        matches!(self, Role::All | Role::Ruler)
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
            Role::Distributor => "distributor",
            Role::QueryFrontend => "query-frontend",
            Role::Ruler => "ruler",
        }
    }
}
