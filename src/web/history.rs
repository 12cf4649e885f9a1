//! Memory over time, for the system page: every [`EVERY`] the server samples the host's
//! memory (`/proc/meminfo`) and what deployments hold of the shared GPU pool, and keeps a
//! day of samples in a ring (5,760 of them, a few hundred KiB). Nothing is stored: a restart
//! starts the charts afresh.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::runtime::memory::MemInfo;
use crate::runtime::supervisor::Supervisor;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(15);
/// A day of samples.
const KEEP: usize = 24 * 3600 / 15;

/// One sample; a figure that could not be read is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    pub host_used_gib: Option<f64>,
    pub host_total_gib: Option<f64>,
    pub pool_held_gib: Option<f64>,
    pub pool_total_gib: Option<f64>,
}

#[derive(Debug, Default)]
pub struct MemoryHistory {
    ring: Mutex<VecDeque<Sample>>,
}

impl MemoryHistory {
    pub fn record(&self, sample: Sample) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// The samples taken at or after `from` (Unix seconds), oldest first.
    pub fn since(&self, from: i64) -> Vec<Sample> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner).iter().filter(|s| s.at >= from).copied().collect()
    }
}

/// Takes a sample now and every [`EVERY`] after, as long as the server runs.
pub async fn sample_forever(history: Arc<MemoryHistory>, supervisor: Arc<Supervisor>) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let host = MemInfo::read();
        let pool = match supervisor.gpu_usage().await {
            Ok(usage) => super::pages::system::pool_gib(&usage),
            Err(e) => {
                tracing::debug!(error = %e, "no GPU pool figures for this sample");
                None
            }
        };
        history.record(Sample {
            at: crate::auth::now_unix(),
            host_used_gib: host.map(|m| (m.total_gib - m.available_gib).max(0.0)),
            host_total_gib: host.map(|m| m.total_gib),
            pool_held_gib: pool.map(|(held, _)| held),
            pool_total_gib: pool.map(|(_, total)| total),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64) -> Sample {
        Sample { at, host_used_gib: Some(1.0), host_total_gib: Some(2.0), pool_held_gib: None, pool_total_gib: None }
    }

    #[test]
    fn the_ring_keeps_a_day_and_answers_by_time() {
        let history = MemoryHistory::default();
        for at in 0..(KEEP as i64 + 10) {
            history.record(sample(at));
        }
        let all = history.since(0);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].at, 10, "the oldest went first");
        assert_eq!(history.since(KEEP as i64 + 5).len(), 5);
    }
}
