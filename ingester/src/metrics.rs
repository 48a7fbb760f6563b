//! The ingester's self-instrumentation, registered into the process registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub tenant: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// Metrics of the write path.
#[derive(Default)]
pub struct IngesterMetrics {
    pub ingested_samples: Family<TenantLabels, Counter>,
    pub memory_series: Family<TenantLabels, Gauge>,
    /// Heap bytes the head's own structures hold (estimated), set at every shipper tick.
    pub head_heap_bytes: Family<TenantLabels, Gauge>,
    /// Head chunk files on disk, and the closed chunks kept on the heap after a write error.
    pub head_chunk_files: Family<TenantLabels, Gauge>,
    pub head_heap_chunk_bytes: Family<TenantLabels, Gauge>,
    pub created_series: Family<TenantLabels, Counter>,
    /// Exemplars stored, and dropped per reason, per tenant.
    pub exemplars_stored: Family<TenantLabels, Counter>,
    pub exemplars_discarded: Family<ReasonLabels, Counter>,
    pub wal_bytes_written: Counter,
    pub wal_fsyncs: Counter,
    pub wal_replayed_records: Counter,
    pub wal_truncations: Counter,
    pub blocks_uploaded: Counter,
    pub block_failures: Counter,
}

impl IngesterMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_ingester");
        r.register(
            "ingested_samples",
            "Samples accepted into the head, per tenant",
            self.ingested_samples.clone(),
        );
        r.register(
            "memory_series",
            "Series in the in-memory head, per tenant",
            self.memory_series.clone(),
        );
        r.register(
            "head_heap_bytes",
            "Heap bytes held by the head's series, chunks, postings and symbols (estimate, updated every shipper interval), per tenant",
            self.head_heap_bytes.clone(),
        );
        r.register(
            "head_chunk_files",
            "Files of closed head chunks (chunks_head/) on disk, per tenant",
            self.head_chunk_files.clone(),
        );
        r.register(
            "head_heap_chunk_bytes",
            "Bytes of closed head chunks kept on the heap because writing their file failed, per tenant",
            self.head_heap_chunk_bytes.clone(),
        );
        r.register(
            "exemplars_stored",
            "Exemplars stored in the head's exemplar buffer, per tenant",
            self.exemplars_stored.clone(),
        );
        r.register(
            "discarded_exemplars",
            "Exemplars dropped (out of order, labels too long), per tenant and reason",
            self.exemplars_discarded.clone(),
        );
        r.register(
            "created_series",
            "Series created in the head, per tenant",
            self.created_series.clone(),
        );
        r.register(
            "wal_written_bytes",
            "Bytes written to the WAL",
            self.wal_bytes_written.clone(),
        );
        r.register("wal_fsyncs", "WAL fsyncs", self.wal_fsyncs.clone());
        r.register(
            "wal_replayed_records",
            "WAL records replayed at startup",
            self.wal_replayed_records.clone(),
        );
        r.register(
            "wal_truncations",
            "WAL segments truncated at a torn or corrupt record",
            self.wal_truncations.clone(),
        );
        r.register(
            "blocks_uploaded",
            "Blocks cut from the head and uploaded",
            self.blocks_uploaded.clone(),
        );
        r.register(
            "block_cut_failures",
            "Block cuts or uploads that failed (the data stays in the head and WAL and is retried)",
            self.block_failures.clone(),
        );
    }
}
