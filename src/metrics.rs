//! Prometheus text for the server itself: the histogram type every family here and in the
//! gateway uses, the HTTP server's requests (by route template, method and status), their
//! latency by route and the requests in flight, and the standard `process_*` families read
//! from `/proc/self`. Routes are templates (`/api/v1/models/{model}`), never raw paths, so
//! the number of series stays bounded whatever clients send; requests no route matched are
//! counted under `route="-"`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0];

#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, value: Duration) {
        let secs = value.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if secs <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    /// Its `_bucket`, `_sum` and `_count` lines, with `labels` (`a="b",c="d"`) on each.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The HTTP server's requests, recorded by the request middleware (`request_id.rs`).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// `(route, method, status)` → requests.
    requests: Mutex<HashMap<(String, String, u16), u64>>,
    latency: Mutex<HashMap<String, Histogram>>,
    in_flight: AtomicI64,
}

impl HttpMetrics {
    /// A request arrived; `done` is called once it is answered.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered: its route template, method, status and time to its head.
    pub fn done(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        self.latency.lock().unwrap_or_else(PoisonError::into_inner).entry(route.to_owned()).or_default().observe(took);
    }

    pub fn render(&self, out: &mut String) {
        let mut requests: Vec<_> =
            self.requests.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(k, v)| (k.clone(), *v)).collect();
        requests.sort();
        let _ = writeln!(
            out,
            "# HELP hangar_http_requests_total HTTP requests answered, by route template, method and status.\n\
             # TYPE hangar_http_requests_total counter"
        );
        for ((route, method, status), n) in requests {
            let route = escape(&route);
            let _ = writeln!(
                out,
                "hangar_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let mut latency: Vec<_> = self
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        latency.sort_by(|a, b| a.0.cmp(&b.0));
        let name = "hangar_http_request_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a request to its answer's head, by route template.\n# TYPE {name} histogram"
        );
        for (route, histogram) in latency {
            histogram.render(out, name, &format!("route=\"{}\"", escape(&route)));
        }
        let _ = writeln!(
            out,
            "# HELP hangar_http_requests_in_flight HTTP requests being handled.\n\
             # TYPE hangar_http_requests_in_flight gauge\nhangar_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// The `process_*` families Prometheus' client libraries export, read from `/proc/self`;
/// those it cannot read are left out.
pub fn render_process(out: &mut String) {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // The fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(") "))
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let mut family = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    };
    // utime (14) and stime (15) in clock ticks; starttime (22) in ticks after boot.
    let cpu = field(14).zip(field(15)).map(|(user, system)| (user + system) / ticks);
    family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu);
    let page = rustix::param::page_size() as f64;
    family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", field(24).map(|p| p * page));
    family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", field(23));
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<f64>().ok()));
    let start = boot.zip(field(22)).map(|(boot, after)| boot + after / ticks);
    family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", start);
    let fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
    family("process_open_fds", "gauge", "Number of open file descriptors.", fds);
    let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.map(|n| n as f64);
    family("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_series_are_by_route_template_method_and_status() {
        let metrics = HttpMetrics::default();
        metrics.started();
        metrics.started();
        metrics.done("/api/v1/models/{model}", "GET", 404, Duration::from_millis(3));
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains(
                "hangar_http_requests_total{route=\"/api/v1/models/{model}\",method=\"GET\",status=\"404\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains("hangar_http_request_seconds_bucket{route=\"/api/v1/models/{model}\",le=\"0.005\"} 1"),
            "{out}"
        );
        assert!(out.contains("hangar_http_requests_in_flight 1"), "{out}");
    }

    #[test]
    fn process_families_are_read_from_proc() {
        let mut out = String::new();
        render_process(&mut out);
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
        ] {
            assert!(
                out.contains(&format!("\n{family} ")) || out.starts_with(&format!("# HELP {family}")),
                "{family}: {out}"
            );
        }
        let rss = out.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).expect("rss");
        assert!(rss.parse::<f64>().expect("number") > 1e6, "{rss}");
    }
}
