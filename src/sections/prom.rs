//! Small helpers for the Prometheus families sections export: a plain gauge,
//! a labelled family of gauges, and `1.0`/`0.0` for a flag.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type G = Gauge<f64, AtomicU64>;

/// Registers one gauge with `value`.
pub fn gauge(reg: &mut Registry, name: &str, help: &str, value: f64) {
    let g = G::default();
    g.set(value);
    reg.register(name, help, g);
}

/// Registers a family of gauges, one per label set.
pub fn family<L>(reg: &mut Registry, name: &str, help: &str, values: Vec<(L, f64)>)
where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    let f = Family::<L, G>::default();
    for (labels, v) in values {
        f.get_or_create(&labels).set(v);
    }
    reg.register(name, help, f);
}

/// `1.0` for true, `0.0` for false.
pub fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}
