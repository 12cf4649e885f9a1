//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text for people
//! or, with `HANGAR_LOG_FORMAT=json`, one JSON object per line for log shippers. Each
//! request's access line (request_id.rs) carries its id, caller, route, status and duration
//! as fields; other lines inside a request carry the request's span.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `HANGAR_LOG_FORMAT`: `text` (the default) or `json`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("HANGAR_LOG_FORMAT").as_deref() {
            Err(_) | Ok("" | "text") => Ok(Self::Text),
            Ok("json") => Ok(Self::Json),
            Ok(other) => Err(format!("HANGAR_LOG_FORMAT={other:?}: use text or json")),
        }
    }
}

pub fn init(format: LogFormat) {
    // The platform verifier logs each refused certificate at ERROR, on top of the error it
    // returns; the caller (the CLI's one-line message, a webhook attempt) reports it already.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls_platform_verifier=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests spawning several apps) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // Fields at the top level, the request's span beside them, no span list: one flat
        // object a shipper can index without unnesting.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}
