//! `muninn_discarded_samples_total{tenant,reason}`: every sample refused, wherever it was
//! refused (router: rate limit; ingester: validation, series limits, time bounds), as Mimir's
//! `cortex_discarded_samples_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscardLabels {
    pub tenant: String,
    pub reason: String,
}

/// The shared counter family (clones count into the same series).
#[derive(Clone, Default)]
pub struct Discarded(pub Family<DiscardLabels, Counter>);

impl Discarded {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "muninn_discarded_samples",
            "Samples refused, per tenant and reason",
            self.0.clone(),
        );
    }

    pub fn add(&self, tenant: &str, reason: &str, n: u64) {
        if n > 0 {
            self.0
                .get_or_create(&DiscardLabels {
                    tenant: tenant.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc_by(n);
        }
    }
}
