//! Login brute-force protection: after `MAX_FAILURES` failed logins for one user or from one
//! address within `WINDOW`, further attempts are refused until the oldest failure ages out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::AuthError;

const MAX_FAILURES: usize = 10;
const WINDOW: Duration = Duration::from_secs(600);
/// Keys tracked at most; past this, the oldest-looking state is dropped wholesale.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Refuses an attempt if any of `keys` (`user:…`, `addr:…`) has failed too often lately.
    pub fn check(&self, keys: &[String]) -> Result<(), AuthError> {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    times.pop_front();
                }
                if times.len() >= MAX_FAILURES
                    && let Some(oldest) = times.front()
                {
                    wait = wait.max(WINDOW - now.duration_since(*oldest));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(AuthError::TooManyAttempts { retry_after_secs: wait.as_secs().max(1) })
        }
    }

    pub fn record_failure(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_KEYS {
            failures.clear();
        }
        let now = Instant::now();
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            times.push_back(now);
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_is_refused() {
        let limiter = LoginLimiter::default();
        let keys = vec!["user:admin".to_owned(), "addr:127.0.0.1".to_owned()];
        for _ in 0..10 {
            assert!(limiter.check(&keys).is_ok());
            limiter.record_failure(&keys);
        }
        assert!(matches!(limiter.check(&keys), Err(AuthError::TooManyAttempts { .. })));
        assert!(limiter.check(&["user:other".to_owned()]).is_ok(), "other users are unaffected");
        assert!(limiter.check(&["user:other".to_owned(), "addr:127.0.0.1".to_owned()]).is_err(), "same address");
    }
}
