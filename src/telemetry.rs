//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    // The platform verifier logs each refused certificate at ERROR, on top of the error it
    // returns; the caller (the CLI's one-line message, a webhook attempt) reports it already.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls_platform_verifier=off"));
    // A second init (tests spawning several apps) is harmless, so its error is ignored.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
