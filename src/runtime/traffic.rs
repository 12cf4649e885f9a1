//! Traffic through the gateway, per deployment and per upstream address: requests in
//! flight and when the last one ended. The gateway writes it; the supervisor reads it to
//! stop idle deployments, to pick which idle ones to evict for a cold start, and to let an
//! old container finish its requests before a rollout stops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    in_flight: u64,
    last_active: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Traffic {
    by_deployment: Mutex<HashMap<String, Counter>>,
    by_address: Mutex<HashMap<String, u64>>,
}

/// One request in flight; dropping it (when the response body ends or the client leaves)
/// ends the request.
#[must_use]
pub struct InFlight {
    traffic: Arc<Traffic>,
    deployment: String,
    address: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut deployments = self.traffic.by_deployment.lock().unwrap_or_else(PoisonError::into_inner);
        let counter = deployments.entry(self.deployment.clone()).or_default();
        counter.in_flight = counter.in_flight.saturating_sub(1);
        counter.last_active = Some(Instant::now());
        let mut addresses = self.traffic.by_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = addresses.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                addresses.remove(&self.address);
            }
        }
    }
}

impl Traffic {
    /// Counts a request to `deployment` at `address` until the returned guard drops.
    pub fn begin(self: &Arc<Self>, deployment: &str, address: &str) -> InFlight {
        {
            let mut deployments = self.by_deployment.lock().unwrap_or_else(PoisonError::into_inner);
            let counter = deployments.entry(deployment.to_owned()).or_default();
            counter.in_flight += 1;
            counter.last_active = Some(Instant::now());
        }
        *self.by_address.lock().unwrap_or_else(PoisonError::into_inner).entry(address.to_owned()).or_default() += 1;
        InFlight { traffic: Arc::clone(self), deployment: deployment.to_owned(), address: address.to_owned() }
    }

    pub fn in_flight(&self, deployment: &str) -> u64 {
        self.by_deployment.lock().unwrap_or_else(PoisonError::into_inner).get(deployment).map_or(0, |c| c.in_flight)
    }

    pub fn in_flight_at(&self, address: &str) -> u64 {
        self.by_address.lock().unwrap_or_else(PoisonError::into_inner).get(address).copied().unwrap_or(0)
    }

    /// When a request to the deployment last began or ended; `None` if never.
    pub fn last_active(&self, deployment: &str) -> Option<Instant> {
        self.by_deployment.lock().unwrap_or_else(PoisonError::into_inner).get(deployment).and_then(|c| c.last_active)
    }

    /// Marks the deployment active now (it just started), so idle time counts from here.
    pub fn touch(&self, deployment: &str) {
        self.by_deployment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(deployment.to_owned())
            .or_default()
            .last_active = Some(Instant::now());
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
}
