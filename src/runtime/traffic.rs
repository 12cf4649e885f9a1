//! Traffic through the gateway, per deployment and per upstream address: requests in
//! flight and when the last one ended. The gateway writes it; the supervisor reads it to
//! stop idle deployments, to pick which idle ones to evict for a cold start, and to let an
//! old container finish its requests before a rollout stops it.
//!
//! It also closes the one race of a rollout's switch: a request that read the old address
//! from the catalog just before the switch and has not begun yet. `retire` and `begin`
//! take the same lock, so such a request either began in time to be waited for, or is
//! sent on to the new address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a retired address is redirected: far longer than a request takes from reading
/// the catalog to beginning, short enough that a port Docker hands out again is not taken
/// for the old one.
const REDIRECT_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone)]
struct Counter {
    in_flight: u64,
    last_active: Option<Instant>,
    /// `(old, new, since)`: requests for `old` go to `new`.
    moved: Option<(String, String, Instant)>,
}

#[derive(Debug, Default)]
struct Counts {
    by_deployment: HashMap<String, Counter>,
    by_address: HashMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Traffic {
    counts: Mutex<Counts>,
}

/// One request in flight; dropping it (when the response body ends or the client leaves)
/// ends the request.
#[must_use]
pub struct InFlight {
    traffic: Arc<Traffic>,
    deployment: String,
    address: String,
}

impl InFlight {
    /// Where the request goes: the address it began with, unless that was retired.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.traffic.lock();
        let counter = counts.by_deployment.entry(self.deployment.clone()).or_default();
        counter.in_flight = counter.in_flight.saturating_sub(1);
        counter.last_active = Some(Instant::now());
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request to `deployment` at `address` until the returned guard drops. An
    /// address a rollout just retired is swapped for its successor.
    pub fn begin(self: &Arc<Self>, deployment: &str, address: &str) -> InFlight {
        let mut counts = self.lock();
        let counts = &mut *counts;
        let count = |counter: &mut Counter| {
            counter.in_flight += 1;
            counter.last_active = Some(Instant::now());
            match &counter.moved {
                Some((old, new, since)) if old == address && since.elapsed() < REDIRECT_FOR => new.clone(),
                _ => address.to_owned(),
            }
        };
        // Keys are allocated on a deployment's (an address's) first request only: `entry`
        // takes an owned key every time.
        let address = match counts.by_deployment.get_mut(deployment) {
            Some(counter) => count(counter),
            None => count(counts.by_deployment.entry(deployment.to_owned()).or_default()),
        };
        match counts.by_address.get_mut(&address) {
            Some(n) => *n += 1,
            None => {
                counts.by_address.insert(address.clone(), 1);
            }
        }
        InFlight { traffic: Arc::clone(self), deployment: deployment.to_owned(), address }
    }

    /// A rollout switched `deployment` from `old` to `new`: requests about to begin at `old`
    /// go to `new`. Call after the switch is committed and before waiting for `old` to drain.
    pub fn retire(&self, deployment: &str, old: &str, new: &str) {
        let mut counts = self.lock();
        counts.by_deployment.entry(deployment.to_owned()).or_default().moved =
            Some((old.to_owned(), new.to_owned(), Instant::now()));
    }

    pub fn in_flight(&self, deployment: &str) -> u64 {
        self.lock().by_deployment.get(deployment).map_or(0, |c| c.in_flight)
    }

    pub fn in_flight_at(&self, address: &str) -> u64 {
        self.lock().by_address.get(address).copied().unwrap_or(0)
    }

    /// When a request to the deployment last began or ended; `None` if never.
    pub fn last_active(&self, deployment: &str) -> Option<Instant> {
        self.lock().by_deployment.get(deployment).and_then(|c| c.last_active)
    }

    /// Marks the deployment active now (it just started), so idle time counts from here.
    pub fn touch(&self, deployment: &str) {
        self.lock().by_deployment.entry(deployment.to_owned()).or_default().last_active = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_requests_per_deployment_and_address() {
        let traffic = Arc::new(Traffic::default());
        assert_eq!(traffic.last_active("d"), None);
        let a = traffic.begin("d", "127.0.0.1:1");
        let b = traffic.begin("d", "127.0.0.1:2");
        assert_eq!(traffic.in_flight("d"), 2);
        assert_eq!(traffic.in_flight_at("127.0.0.1:1"), 1);
        drop(a);
        assert_eq!(traffic.in_flight("d"), 1);
        assert_eq!(traffic.in_flight_at("127.0.0.1:1"), 0);
        drop(b);
        assert_eq!(traffic.in_flight("d"), 0);
        assert!(traffic.last_active("d").is_some());
    }

    #[test]
    fn a_request_that_read_the_old_address_before_a_switch_goes_to_the_new_one() {
        let traffic = Arc::new(Traffic::default());
        let early = traffic.begin("d", "old:1");
        traffic.retire("d", "old:1", "new:2");
        // Began before the switch: stays, and the drain waits for it.
        assert_eq!(early.address(), "old:1");
        assert_eq!(traffic.in_flight_at("old:1"), 1);
        // Read the old address, began after the switch: sent on, never counted at old.
        let late = traffic.begin("d", "old:1");
        assert_eq!(late.address(), "new:2");
        drop(early);
        assert_eq!(traffic.in_flight_at("old:1"), 0);
        assert_eq!(traffic.in_flight_at("new:2"), 1);
        // Another deployment's requests to that address are its own business.
        assert_eq!(traffic.begin("e", "old:1").address(), "old:1");
    }
}
