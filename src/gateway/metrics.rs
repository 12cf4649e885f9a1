//! Gateway metrics, per deployment: requests by status, latency and time to first byte as
//! histograms, cold starts and their duration, tokens reported. Rendered with the catalog's and the blob
//! store's gauges as Prometheus text at `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::catalog::usage::Tokens;
use crate::metrics::Histogram;

#[derive(Debug, Default, Clone)]
struct PerDeployment {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
    first_byte: Histogram,
    cold_starts: Histogram,
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    deployments: Mutex<HashMap<String, PerDeployment>>,
}

impl Metrics {
    fn with(&self, deployment: &str, f: impl FnOnce(&mut PerDeployment)) {
        let mut deployments = self.deployments.lock().unwrap_or_else(PoisonError::into_inner);
        // Looked up before `entry`, which would allocate the key on every request.
        match deployments.get_mut(deployment) {
            Some(d) => f(d),
            None => f(deployments.entry(deployment.to_owned()).or_default()),
        }
    }

    /// A response (or a refusal) with `status`, its headers after `first_byte`.
    pub fn responded(&self, deployment: &str, status: u16, first_byte: Option<Duration>) {
        self.with(deployment, |d| {
            *d.by_status.entry(status).or_default() += 1;
            if let Some(t) = first_byte {
                d.first_byte.observe(t);
            }
        });
    }

    /// A response body that ended (or was abandoned) after `latency`.
    pub fn finished(&self, deployment: &str, latency: Duration) {
        self.with(deployment, |d| d.latency.observe(latency));
    }

    /// Tokens an answer reported.
    pub fn tokens(&self, deployment: &str, tokens: Tokens) {
        self.with(deployment, |d| {
            d.prompt_tokens += tokens.prompt;
            d.completion_tokens += tokens.completion;
        });
    }

    pub fn cold_start(&self, deployment: &str, took: Duration) {
        self.with(deployment, |d| d.cold_starts.observe(took));
    }

    /// Requests routed to `deployment` since the process started.
    pub fn requests(&self, deployment: &str) -> u64 {
        self.deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(deployment)
            .map_or(0, |d| d.by_status.values().sum())
    }

    /// Appends the gateway's series; `in_flight` gives the current count per deployment.
    pub fn render(&self, out: &mut String, in_flight: impl Fn(&str) -> u64) {
        let deployments = self.deployments.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut names: Vec<&String> = deployments.keys().collect();
        names.sort();
        let series = [
            ("hangar_gateway_requests_total", "counter", "Requests routed to a deployment, by status."),
            ("hangar_gateway_errors_total", "counter", "Requests that ended in a 4xx or 5xx, by status."),
            ("hangar_gateway_in_flight", "gauge", "Requests in flight."),
            ("hangar_gateway_tokens_total", "counter", "Tokens the model servers reported, prompt and completion."),
            ("hangar_gateway_request_seconds", "histogram", "Time from request to the end of the response body."),
            ("hangar_gateway_first_byte_seconds", "histogram", "Time from request to the response headers."),
            (
                "hangar_gateway_cold_start_seconds",
                "histogram",
                "Starts of a stopped deployment that a request asked for, and how long until it served.",
            ),
        ];
        for (name, kind, help) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for deployment in &names {
                let d = &deployments[*deployment];
                let label = format!("deployment=\"{deployment}\"");
                match name {
                    "hangar_gateway_requests_total" => {
                        for (status, n) in &d.by_status {
                            let _ = writeln!(out, "{name}{{{label},status=\"{status}\"}} {n}");
                        }
                    }
                    "hangar_gateway_errors_total" => {
                        for (status, n) in d.by_status.iter().filter(|(s, _)| **s >= 400) {
                            let _ = writeln!(out, "{name}{{{label},status=\"{status}\"}} {n}");
                        }
                    }
                    "hangar_gateway_tokens_total" => {
                        let _ = writeln!(out, "{name}{{{label},kind=\"prompt\"}} {}", d.prompt_tokens);
                        let _ = writeln!(out, "{name}{{{label},kind=\"completion\"}} {}", d.completion_tokens);
                    }
                    "hangar_gateway_in_flight" => {
                        let _ = writeln!(out, "{name}{{{label}}} {}", in_flight(deployment));
                    }
                    "hangar_gateway_request_seconds" => d.latency.render(out, name, &label),
                    "hangar_gateway_first_byte_seconds" => d.first_byte.render(out, name, &label),
                    _ => d.cold_starts.render(out, name, &label),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.responded("chat", 200, Some(Duration::from_millis(3)));
        metrics.responded("chat", 503, None);
        metrics.finished("chat", Duration::from_millis(30));
        metrics.cold_start("chat", Duration::from_secs(2));
        metrics.tokens("chat", Tokens { prompt: 3, completion: 5 });
        let mut out = String::new();
        metrics.render(&mut out, |_| 1);
        assert!(out.contains("hangar_gateway_requests_total{deployment=\"chat\",status=\"200\"} 1"), "{out}");
        assert!(out.contains("hangar_gateway_errors_total{deployment=\"chat\",status=\"503\"} 1"), "{out}");
        assert!(!out.contains("hangar_gateway_errors_total{deployment=\"chat\",status=\"200\"}"), "{out}");
        assert!(out.contains("hangar_gateway_in_flight{deployment=\"chat\"} 1"), "{out}");
        assert!(out.contains("hangar_gateway_tokens_total{deployment=\"chat\",kind=\"completion\"} 5"), "{out}");
        assert!(out.contains("hangar_gateway_first_byte_seconds_bucket{deployment=\"chat\",le=\"0.0025\"} 0"), "{out}");
        assert!(out.contains("hangar_gateway_first_byte_seconds_bucket{deployment=\"chat\",le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("hangar_gateway_request_seconds_count{deployment=\"chat\"} 1"), "{out}");
        assert!(out.contains("hangar_gateway_cold_start_seconds_bucket{deployment=\"chat\",le=\"+Inf\"} 1"), "{out}");
    }
}
