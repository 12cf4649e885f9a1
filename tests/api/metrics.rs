//! `/metrics` as Prometheus reads it: parsed by the official client's parser, with the HTTP
//! server's families by route template (never a raw path) and the standard `process_*` ones.

use std::io::Write as _;
use std::process::Stdio;

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_http_families_by_route_template_and_process_families() {
    let app = spawn_app().await;
    app.create_model("team/m").await;
    assert_eq!(app.get("/api/v1/models/team/nothing-here").await.status(), 404);
    assert_eq!(app.get("/no/such/route/at/all").await.status(), 404);
    let text = app.get("/metrics").await.text().await.expect("text");

    let samples: Vec<Value> = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(crate::machine::python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/parse_metrics.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python");
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        let output = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        assert!(
            output.status.success(),
            "Prometheus' parser refused /metrics: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
    })
    .await
    .expect("join");

    let family = |name: &str| samples.iter().find(|s| s["family"] == name).map(|s| s["type"].clone());
    for (name, kind) in [
        ("hangar_http_requests", "counter"),
        ("hangar_http_request_seconds", "histogram"),
        ("hangar_http_requests_in_flight", "gauge"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_open_fds", "gauge"),
        ("hangar_models", "gauge"),
    ] {
        assert_eq!(family(name), Some(Value::from(kind)), "{name}");
    }
    let count = |route: &str, method: &str, status: &str| {
        samples
            .iter()
            .find(|s| {
                s["name"] == "hangar_http_requests_total"
                    && s["labels"]["route"] == route
                    && s["labels"]["method"] == method
                    && s["labels"]["status"] == status
            })
            .and_then(|s| s["value"].as_f64())
    };
    assert_eq!(count("/api/v1/models/{model}", "GET", "404"), Some(1.0));
    assert_eq!(count("/api/v1/models", "POST", "201"), Some(1.0));
    assert_eq!(count("-", "GET", "404"), Some(1.0), "unmatched paths share one series");
    let raw = samples.iter().find(|s| s["labels"]["route"].as_str().is_some_and(|r| r.contains("nothing-here")));
    assert!(raw.is_none(), "a raw path became a label: {raw:?}");
}
