//! Writing a family from values read at scrape time: a descriptor, then its samples.
//! Counter names are given without `_total` (the encoders add it); help texts end with
//! a period, as `Registry::register` makes them.

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use std::fmt;

/// A family with one unlabelled gauge sample.
pub fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A family with one unlabelled counter sample.
pub fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// A gauge family with a sample per label set.
pub fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

/// A counter family with a sample per label set.
pub fn counters<L: EncodeLabelSet, V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

/// One histogram read from elsewhere: bucket upper bounds and the cumulative counts at
/// each, then the total (one more count than bounds), and the sum, all in the family's
/// unit.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Upper bounds, ascending.
    pub bounds: Vec<f64>,
    /// Cumulative counts at each bound, then the total.
    pub cumulative: Vec<u64>,
    /// Sum of the observations.
    pub sum: f64,
}

impl Histogram {
    /// Per-bucket counts, the last bucket `+Inf`, as the encoders take them.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let mut prev = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.cumulative)
            .map(|(b, &c)| {
                let n = c.saturating_sub(prev);
                prev = prev.max(c);
                (b, n)
            })
            .collect()
    }

    fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

/// A histogram family with one histogram per label set.
pub fn histograms<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, Histogram)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            h.sum,
            h.count(),
            &h.buckets(),
            None,
        )?;
    }
    Ok(())
}
