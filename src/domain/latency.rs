//! Latency distributions that add up: a log-scale histogram whose buckets are the same for
//! every request, minute and deployment, so minutes merge into hours by adding counts and
//! percentiles come from the merged counts. Bucket `k` holds times in
//! `[2^(k/4), 2^((k+1)/4))` milliseconds: four buckets per doubling, so a percentile read
//! from the middle of its bucket is within 9 % of the true value, from microseconds to days.

use std::collections::BTreeMap;

/// Buckets per doubling of the time.
const PER_DOUBLING: f64 = 4.0;
/// Times are clamped into `[2^-20, 2^40)` ms (a microsecond to 35 years): buckets -80..160.
const LOWEST: i64 = -80;
const HIGHEST: i64 = 159;

/// The bucket that holds `ms` milliseconds.
pub fn bucket(ms: f64) -> i64 {
    if ms.is_nan() || ms <= 0.0 {
        return LOWEST;
    }
    ((ms.log2() * PER_DOUBLING).floor() as i64).clamp(LOWEST, HIGHEST)
}

/// Request counts by bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram(BTreeMap<i64, u64>);

impl Histogram {
    pub fn record(&mut self, ms: f64) {
        self.add(bucket(ms), 1);
    }

    /// Adds `requests` to bucket `bucket` (as stored, or as another histogram holds).
    pub fn add(&mut self, bucket: i64, requests: u64) {
        *self.0.entry(bucket.clamp(LOWEST, HIGHEST)).or_default() += requests;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.0 {
            self.add(b, n);
        }
    }

    /// The buckets with requests, lowest first.
    pub fn buckets(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.0.iter().map(|(&b, &n)| (b, n))
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The time that a fraction `q` (0 to 1) of requests took at most, as the geometric
    /// middle of the bucket the `ceil(q·n)`th request fell in; `None` for no requests.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&b, &n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some(((b as f64 + 0.5) / PER_DOUBLING).exp2());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_nine_percent_of_the_exact_ones() {
        let mut h = Histogram::default();
        // 1..=1000 ms: the exact p50 is 500, p95 950, p99 990.
        (1..=1000).for_each(|ms| h.record(f64::from(ms)));
        for (q, exact) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = h.quantile(q).expect("requests");
            assert!((got / exact - 1.0).abs() < 0.095, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn minutes_merge_into_the_histogram_of_all_their_requests() {
        let (mut a, mut b, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
        for ms in [0.3, 2.0, 17.0, 40.0] {
            a.record(ms);
            all.record(ms);
        }
        for ms in [17.5, 900.0, 120_000.0] {
            b.record(ms);
            all.record(ms);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.quantile(0.5), all.quantile(0.5));
    }

    #[test]
    fn times_outside_the_scale_land_in_its_end_buckets() {
        assert_eq!(bucket(0.0), LOWEST);
        assert_eq!(bucket(f64::NAN), LOWEST);
        assert_eq!(bucket(-3.0), LOWEST);
        assert_eq!(bucket(f64::INFINITY), HIGHEST);
        assert_eq!(bucket(1.0), 0);
        assert_eq!(bucket(2.0), 4);
        let mut h = Histogram::default();
        h.add(10_000, 1);
        assert_eq!(h.buckets().collect::<Vec<_>>(), vec![(HIGHEST, 1)]);
    }
}
