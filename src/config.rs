//! Settings, layered: built-in defaults < `hangar.toml` (`--config`) < `HANGAR_*` environment
//! < command-line flags. clap reads the environment and the flags (a flag wins over its
//! variable); the file fills in what neither gave.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use crate::blobs::{BucketSettings, gib_to_bytes};
use crate::domain::Glob;
use crate::domain::NodeName;
use crate::forwarded::Cidr;
use crate::runtime::supervisor::{DEFAULT_NODE, Rollout};
use crate::runtime::{GpuConfig, GpuMode};

/// Everything `hangar serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `blob_store = "s3://bucket/prefix"`: the blobs live in that bucket, the data dir keeping
    /// a local cache of those deployments use. `None` (`"local"`, the default): in the data dir.
    pub blob_store: Option<BucketSettings>,
    /// `postgres://…`: the catalog lives in that Postgres database instead of the SQLite file
    /// in the data dir. Redacted: it may hold a password.
    pub database_url: Option<Redacted>,
    /// Unreferenced blobs younger than this are kept: an upload may be about to name them.
    pub gc_grace_secs: u64,
    /// An upload session not completed within this many seconds is removed with its parts.
    pub upload_session_ttl_secs: u64,
    /// Per-request usage rows older than this many hours are removed (the per-minute
    /// rollups stay).
    pub usage_raw_retention_hours: u64,
    /// Largest JSON body accepted, in bytes.
    pub json_limit: usize,
    /// Lets requests without credentials read and download (GET and HEAD only).
    pub anonymous_read: bool,
    /// Serves `/metrics` without a token.
    pub metrics_public: bool,
    /// Aliases only admins may move or delete.
    pub protected_aliases: Vec<Glob>,
    /// `[[gpus]]`: the GPU inventory, overriding what NVML reports (needed on unified-memory
    /// machines such as the GB10, where NVML reports no memory).
    pub gpus: Option<Vec<GpuConfig>>,
    /// How GPUs are requested from Docker.
    pub gpu_mode: GpuMode,
    /// On a detected unified-memory GPU (GB10): GiB of the host's memory kept out of the
    /// pool deployments share, for the host itself.
    pub gpu_host_reserve_gib: f64,
    /// When Hangar runs in a container: the Docker network model containers join.
    pub docker_network: Option<String>,
    /// When Hangar runs in a container: the data dir's path on the host.
    pub host_data_dir: Option<PathBuf>,
    /// Restarts after crashes before a deployment is failed.
    pub max_restarts: u32,
    /// The first restart backoff, in milliseconds; it doubles per crash.
    pub restart_backoff_ms: u64,
    /// How deployments follow an alias that moves: `surge` (blue/green) or `recreate`.
    pub rollout: Rollout,
    /// A model server that sends no byte for this long fails the request with 504.
    pub upstream_timeout_secs: u64,
    /// Attempts at a webhook delivery before it is marked failed.
    pub webhook_max_attempts: u32,
    /// The wait after a webhook delivery's first failed attempt, in milliseconds; it
    /// doubles after each further one.
    pub webhook_backoff_ms: u64,
    /// How long a webhook receiver has to connect and answer.
    pub webhook_timeout_secs: u64,
    /// A request body that sends nothing for this long is cut with 408.
    pub body_chunk_timeout_secs: u64,
    /// After SIGTERM, how long requests in flight may take to finish before they are cut.
    pub shutdown_grace_secs: u64,
    /// Lets webhooks reach loopback, link-local and private addresses (refused by default:
    /// an admin's webhook must not become a scanner of Hangar's own network).
    pub webhook_allow_private: bool,
    /// `HANGAR_ADMIN_PASSWORD`: the first admin's password, on first start only.
    pub admin_password: Option<Redacted>,
    /// `HANGAR_BOOTSTRAP_TOKEN`: an admin token created at start if it does not exist.
    pub bootstrap_token: Option<Redacted>,
    /// The certificate chain and key Hangar serves HTTPS with; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (see `forwarded`).
    pub trusted_proxies: Vec<Cidr>,
    /// A PEM CA (or bundle) that outgoing HTTPS (webhook deliveries) trusts besides the
    /// system's roots: for receivers whose certificates a private CA signed. Read at start.
    pub ca_cert: Option<PathBuf>,
    /// This server's node name, when several share one Postgres catalog (`local` by default).
    pub node: NodeName,
    /// Where the other nodes reach this one (`http://HOST:PORT`); by default the listen
    /// address, which must then not be a wildcard for other boxes to use it.
    pub node_url: Option<String>,
    /// A node whose last heartbeat is older than this many seconds is down.
    pub node_down_after_secs: u64,
}

/// PEM files, re-read on SIGHUP so a renewed certificate needs no restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// More attempts than this would only retry a receiver that has been gone for days.
const MAX_WEBHOOK_ATTEMPTS: u32 = 20;

/// A secret setting: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./hangar-data"),
            blob_store: None,
            database_url: None,
            gc_grace_secs: 3600,
            upload_session_ttl_secs: 7 * 24 * 3600,
            usage_raw_retention_hours: 24,
            json_limit: 1 << 20,
            anonymous_read: false,
            metrics_public: false,
            protected_aliases: vec![Glob::parse("prod*").expect("a valid built-in glob")],
            gpus: None,
            gpu_mode: GpuMode::default(),
            gpu_host_reserve_gib: 8.0,
            docker_network: None,
            host_data_dir: None,
            max_restarts: 5,
            restart_backoff_ms: 1000,
            rollout: Rollout::default(),
            upstream_timeout_secs: 600,
            webhook_max_attempts: 6,
            webhook_backoff_ms: 1000,
            webhook_timeout_secs: 10,
            body_chunk_timeout_secs: 60,
            shutdown_grace_secs: 30,
            webhook_allow_private: false,
            admin_password: None,
            bootstrap_token: None,
            tls: None,
            trusted_proxies: Vec::new(),
            ca_cert: None,
            node: NodeName::parse(DEFAULT_NODE).expect("the default node name is valid"),
            node_url: None,
            node_down_after_secs: 30,
        }
    }
}

/// The `[hangar.toml]` file: every key optional, unknown keys refused (a typo should not
/// silently do nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    blob_store: Option<String>,
    blob_cache_gib: Option<f64>,
    presign_downloads: Option<bool>,
    /// `object_store` S3 settings over the `AWS_*` environment (`endpoint`, `region`, …).
    s3: Option<std::collections::BTreeMap<String, String>>,
    database_url: Option<String>,
    gc_grace_secs: Option<u64>,
    upload_session_ttl_secs: Option<u64>,
    usage_raw_retention_hours: Option<u64>,
    json_limit: Option<usize>,
    anonymous_read: Option<bool>,
    metrics_public: Option<bool>,
    protected_aliases: Option<Vec<String>>,
    gpus: Option<Vec<GpuConfig>>,
    gpu_mode: Option<GpuMode>,
    gpu_host_reserve_gib: Option<f64>,
    docker_network: Option<String>,
    host_data_dir: Option<PathBuf>,
    max_restarts: Option<u32>,
    restart_backoff_ms: Option<u64>,
    rollout: Option<Rollout>,
    upstream_timeout_secs: Option<u64>,
    webhook_max_attempts: Option<u32>,
    webhook_backoff_ms: Option<u64>,
    webhook_timeout_secs: Option<u64>,
    body_chunk_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    webhook_allow_private: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_proxies: Option<Vec<String>>,
    ca_cert: Option<PathBuf>,
    node: Option<String>,
    node_url: Option<String>,
    node_down_after_secs: Option<u64>,
}

/// Values from the environment or flags; `None` where neither was given.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Address to listen on, HOST:PORT (port 0 picks a free one).
    #[arg(long, env = "HANGAR_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the database, blobs and snapshots live.
    #[arg(long, env = "HANGAR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where blobs live: "local" (the data dir) or s3://BUCKET/PREFIX (endpoint, region and
    /// credentials from the AWS_* environment and the config file's [s3] table).
    #[arg(long, env = "HANGAR_BLOB_STORE", value_name = "URL")]
    pub blob_store: Option<String>,
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`: keep the catalog in Postgres (default: SQLite
    /// in the data dir).
    #[arg(long, env = "HANGAR_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A TOML file of settings (keys as the flags, with '_' for '-').
    #[arg(long, env = "HANGAR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds an unreferenced blob is kept before garbage collection removes it.
    #[arg(long, env = "HANGAR_GC_GRACE_SECS", value_name = "SECS")]
    pub gc_grace_secs: Option<u64>,
    /// Let requests without credentials read and download.
    #[arg(long, env = "HANGAR_ANONYMOUS_READ", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub anonymous_read: Option<bool>,
    /// Serve /metrics without a token.
    #[arg(long, env = "HANGAR_METRICS_PUBLIC", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_public: Option<bool>,
    /// When Hangar runs in a container: the Docker network model containers join.
    #[arg(long, env = "HANGAR_DOCKER_NETWORK", value_name = "NETWORK")]
    pub docker_network: Option<String>,
    /// When Hangar runs in a container: the data dir's path on the host.
    #[arg(long, env = "HANGAR_HOST_DATA_DIR", value_name = "DIR")]
    pub host_data_dir: Option<PathBuf>,
    /// Seconds a request body may send nothing before it is cut with 408.
    #[arg(long, env = "HANGAR_BODY_CHUNK_TIMEOUT_SECS", value_name = "SECS")]
    pub body_chunk_timeout_secs: Option<u64>,
    /// Seconds requests in flight get to finish after SIGTERM before they are cut.
    #[arg(long, env = "HANGAR_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "HANGAR_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "HANGAR_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For/-Proto are believed.
    #[arg(long, env = "HANGAR_TRUSTED_PROXIES", value_name = "CIDR,...", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// A PEM CA certificate (or bundle) that webhook deliveries to https:// receivers trust
    /// besides the system's; the same variable as the CLI's --ca-cert.
    #[arg(long, env = "HANGAR_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// This server's node name, when several servers share one Postgres catalog.
    #[arg(long, env = "HANGAR_NODE", value_name = "NAME")]
    pub node: Option<String>,
    /// Where the other nodes reach this server, http://HOST:PORT (default: the listen address).
    #[arg(long, env = "HANGAR_NODE_URL", value_name = "URL")]
    pub node_url: Option<String>,
}

impl Settings {
    /// Resolves the layers. Errors name the setting, where it came from and what is expected.
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let mut settings = Settings::default();
        if let Some(listen) = file.listen {
            settings.listen = parse_listen(&listen, "listen in the config file")?;
        }
        if let Some(dir) = file.data_dir {
            settings.data_dir = dir;
        }
        settings.database_url = file.database_url.map(Redacted);
        if let Some(secs) = file.gc_grace_secs {
            settings.gc_grace_secs = secs;
        }
        if let Some(hours) = file.usage_raw_retention_hours {
            settings.usage_raw_retention_hours = hours;
        }
        if let Some(secs) = file.upload_session_ttl_secs {
            settings.upload_session_ttl_secs = secs;
        }
        if let Some(limit) = file.json_limit {
            settings.json_limit = limit;
        }
        if let Some(on) = file.anonymous_read {
            settings.anonymous_read = on;
        }
        if let Some(on) = file.metrics_public {
            settings.metrics_public = on;
        }
        settings.gpus = file.gpus.or(settings.gpus);
        if let Some(mode) = file.gpu_mode {
            settings.gpu_mode = mode;
        }
        if let Some(gib) = file.gpu_host_reserve_gib {
            anyhow::ensure!(
                gib.is_finite() && gib >= 0.0,
                "gpu_host_reserve_gib in the config file must be a number of GiB, 0 or more"
            );
            settings.gpu_host_reserve_gib = gib;
        }
        settings.docker_network = file.docker_network.or(settings.docker_network);
        settings.host_data_dir = file.host_data_dir.or(settings.host_data_dir);
        if let Some(n) = file.max_restarts {
            settings.max_restarts = n;
        }
        if let Some(ms) = file.restart_backoff_ms {
            settings.restart_backoff_ms = ms;
        }
        if let Some(rollout) = file.rollout {
            settings.rollout = rollout;
        }
        if let Some(secs) = file.upstream_timeout_secs {
            anyhow::ensure!(secs > 0, "upstream_timeout_secs in the config file must be at least 1");
            settings.upstream_timeout_secs = secs;
        }
        if let Some(n) = file.webhook_max_attempts {
            anyhow::ensure!(
                (1..=MAX_WEBHOOK_ATTEMPTS).contains(&n),
                "webhook_max_attempts in the config file must be 1 to {MAX_WEBHOOK_ATTEMPTS}"
            );
            settings.webhook_max_attempts = n;
        }
        if let Some(ms) = file.webhook_backoff_ms {
            anyhow::ensure!(ms > 0, "webhook_backoff_ms in the config file must be at least 1");
            settings.webhook_backoff_ms = ms;
        }
        if let Some(secs) = file.webhook_timeout_secs {
            anyhow::ensure!(secs > 0, "webhook_timeout_secs in the config file must be at least 1");
            settings.webhook_timeout_secs = secs;
        }
        if let Some(secs) = file.body_chunk_timeout_secs {
            settings.body_chunk_timeout_secs = secs;
        }
        if let Some(secs) = file.shutdown_grace_secs {
            settings.shutdown_grace_secs = secs;
        }
        if let Some(allow) = file.webhook_allow_private {
            settings.webhook_allow_private = allow;
        }
        if let Some(globs) = file.protected_aliases {
            settings.protected_aliases = globs
                .iter()
                .map(|g| Glob::parse(g).map_err(|e| anyhow::anyhow!("protected_aliases in the config file: {e}")))
                .collect::<anyhow::Result<_>>()?;
        }
        settings.blob_store = blob_store(
            overrides.blob_store.clone().or(file.blob_store),
            file.s3,
            file.blob_cache_gib,
            file.presign_downloads,
        )?;
        let mut tls_cert = file.tls_cert;
        let mut tls_key = file.tls_key;
        if let Some(list) = file.trusted_proxies {
            settings.trusted_proxies = parse_cidrs(&list, "trusted_proxies in the config file")?;
        }
        settings.ca_cert = file.ca_cert;
        if let Some(secs) = file.node_down_after_secs {
            anyhow::ensure!(secs >= 3, "node_down_after_secs in the config file must be at least 3");
            settings.node_down_after_secs = secs;
        }
        if let Some(name) = overrides.node.as_ref().or(file.node.as_ref()) {
            settings.node = NodeName::parse(name).map_err(|e| anyhow::anyhow!("node (--node / HANGAR_NODE): {e}"))?;
        }
        if let Some(url) = overrides.node_url.clone().or(file.node_url) {
            settings.node_url = Some(parse_node_url(&url)?);
        }
        if let Some(listen) = &overrides.listen {
            settings.listen = parse_listen(listen, "--listen / HANGAR_LISTEN")?;
        }
        if let Some(dir) = &overrides.data_dir {
            settings.data_dir.clone_from(dir);
        }
        if let Some(secs) = overrides.gc_grace_secs {
            settings.gc_grace_secs = secs;
        }
        if let Some(on) = overrides.anonymous_read {
            settings.anonymous_read = on;
        }
        if let Some(on) = overrides.metrics_public {
            settings.metrics_public = on;
        }
        if let Some(url) = &overrides.database_url {
            settings.database_url = Some(Redacted(url.clone()));
        }
        if let Some(network) = &overrides.docker_network {
            settings.docker_network = Some(network.clone());
        }
        if let Some(dir) = &overrides.host_data_dir {
            settings.host_data_dir = Some(dir.clone());
        }
        if let Some(secs) = overrides.body_chunk_timeout_secs {
            settings.body_chunk_timeout_secs = secs;
        }
        if let Some(secs) = overrides.shutdown_grace_secs {
            settings.shutdown_grace_secs = secs;
        }
        if let Some(cert) = &overrides.tls_cert {
            tls_cert = Some(cert.clone());
        }
        if let Some(key) = &overrides.tls_key {
            tls_key = Some(key.clone());
        }
        if let Some(list) = &overrides.trusted_proxies {
            settings.trusted_proxies = parse_cidrs(list, "--trusted-proxies / HANGAR_TRUSTED_PROXIES")?;
        }
        if let Some(ca) = &overrides.ca_cert {
            settings.ca_cert = Some(ca.clone());
        }
        settings.tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key (--tls-cert / --tls-key) go together: give both or neither"),
        };
        anyhow::ensure!(
            settings.body_chunk_timeout_secs > 0,
            "body_chunk_timeout_secs (--body-chunk-timeout-secs / HANGAR_BODY_CHUNK_TIMEOUT_SECS) must be at least 1"
        );
        // Secrets come from the environment only: flags would show in `ps`.
        settings.admin_password = std::env::var("HANGAR_ADMIN_PASSWORD").ok().filter(|v| !v.is_empty()).map(Redacted);
        settings.bootstrap_token = std::env::var("HANGAR_BOOTSTRAP_TOKEN").ok().filter(|v| !v.is_empty()).map(Redacted);
        Ok(settings)
    }
}

/// The blob store from its URL, the `[s3]` table, the cache budget and `presign_downloads`;
/// the last three only go with a bucket.
fn blob_store(
    url: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
    cache_gib: Option<f64>,
    presign: Option<bool>,
) -> anyhow::Result<Option<BucketSettings>> {
    let Some(url) = url.filter(|url| url != "local") else {
        anyhow::ensure!(
            options.is_none() && cache_gib.is_none() && presign.is_none(),
            "[s3], blob_cache_gib and presign_downloads in the config file apply only with \
             blob_store = \"s3://BUCKET/PREFIX\""
        );
        return Ok(None);
    };
    let mut bucket = BucketSettings::parse(&url)
        .map_err(|e| anyhow::anyhow!("blob_store (--blob-store / HANGAR_BLOB_STORE): {e}"))?;
    for (key, value) in options.unwrap_or_default() {
        bucket = bucket.with_option(&key, value).map_err(|e| anyhow::anyhow!("[s3] in the config file: {e}"))?;
    }
    if let Some(gib) = cache_gib {
        anyhow::ensure!(
            gib.is_finite() && gib > 0.0,
            "blob_cache_gib in the config file must be a number of GiB above 0"
        );
        bucket.cache_bytes = gib_to_bytes(gib);
    }
    bucket.presign_downloads = presign.unwrap_or(false);
    Ok(Some(bucket))
}

/// A node's URL: `http(s)://HOST[:PORT]`, kept without a trailing `/` (paths are appended).
fn parse_node_url(raw: &str) -> anyhow::Result<String> {
    let source = "node_url (--node-url / HANGAR_NODE_URL)";
    let url = reqwest::Url::parse(raw)
        .map_err(|e| anyhow::anyhow!("{source}: {raw:?} is not a URL ({e}); expected http://HOST:PORT"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some() && url.path() == "/" && url.query().is_none(),
        "{source}: {raw:?} must be http://HOST:PORT or https://HOST:PORT, without a path"
    );
    Ok(raw.trim_end_matches('/').to_owned())
}

fn parse_cidrs(list: &[String], source: &str) -> anyhow::Result<Vec<Cidr>> {
    list.iter()
        .filter(|c| !c.trim().is_empty())
        .map(|c| Cidr::parse(c).map_err(|e| anyhow::anyhow!("{source}: {e}")))
        .collect()
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))
}

fn parse_listen(raw: &str, source: &str) -> anyhow::Result<SocketAddr> {
    raw.parse()
        .map_err(|_| anyhow::anyhow!("{source}: {raw:?} is not an address; expected HOST:PORT such as 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/h\"\ngc_grace_secs = 5\n").expect("write");
        let from_file = Settings::load(&Overrides { config: Some(path.clone()), ..Default::default() }).expect("load");
        assert_eq!(from_file.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/h"));
        assert_eq!(from_file.gc_grace_secs, 5);
        let flagged =
            Settings::load(&Overrides { config: Some(path), listen: Some("127.0.0.1:1".into()), ..Default::default() })
                .expect("load");
        assert_eq!(flagged.listen.to_string(), "127.0.0.1:1");
        assert_eq!(flagged.data_dir, PathBuf::from("/srv/h"));
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let err = Settings::load(&Overrides { listen: Some("nope".into()), ..Default::default() }).expect_err("bad");
        assert!(err.to_string().contains("HOST:PORT"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.toml");
        std::fs::write(&path, "lissen = \"x\"\n").expect("write");
        let err = Settings::load(&Overrides { config: Some(path), ..Default::default() }).expect_err("typo");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn tls_files_go_in_pairs_and_trusted_proxies_parse() {
        let half = Overrides { tls_cert: Some("cert.pem".into()), ..Default::default() };
        let err = Settings::load(&half).expect_err("cert without key");
        assert!(err.to_string().contains("give both or neither"), "{err}");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.toml");
        std::fs::write(&path, "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n")
            .expect("write");
        let settings = Settings::load(&Overrides { config: Some(path.clone()), ..Default::default() }).expect("load");
        assert_eq!(settings.tls, Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }));
        assert_eq!(settings.trusted_proxies, vec![Cidr::parse("10.0.0.0/8").expect("cidr")]);

        let bad =
            Overrides { config: Some(path), trusted_proxies: Some(vec!["10.0.0.0/99".into()]), ..Default::default() };
        let err = Settings::load(&bad).expect_err("bad CIDR");
        assert!(err.to_string().contains("--trusted-proxies / HANGAR_TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn a_bucket_is_named_by_url_with_its_settings_beside_it() {
        assert_eq!(Settings::load(&Overrides::default()).expect("load").blob_store, None, "local by default");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.toml");
        std::fs::write(
            &path,
            "blob_store = \"s3://models/hangar/\"\nblob_cache_gib = 1.5\npresign_downloads = true\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\n",
        )
        .expect("write");
        let bucket = Settings::load(&Overrides { config: Some(path.clone()), ..Default::default() })
            .expect("load")
            .blob_store
            .expect("a bucket");
        assert_eq!((bucket.bucket.as_str(), bucket.prefix.as_str()), ("models", "hangar"));
        assert_eq!(bucket.cache_bytes, 3 << 29);
        assert_eq!(bucket.options.len(), 1);
        assert!(bucket.presign_downloads);
        let local = Overrides { config: Some(path), blob_store: Some("local".into()), ..Default::default() };
        let err = Settings::load(&local).expect_err("[s3] without a bucket");
        assert!(err.to_string().contains("apply only with"), "{err}");

        for (url, expected) in [
            ("models", "expected \"local\" or s3://"),
            ("s3:///prefix", "names no bucket"),
            ("s3://b/a//c", "empty, '.' or '..' segment"),
        ] {
            let err = Settings::load(&Overrides { blob_store: Some(url.into()), ..Default::default() })
                .expect_err("a bad URL");
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
        let unknown = tempfile::tempdir().expect("tempdir");
        let path = unknown.path().join("hangar.toml");
        std::fs::write(&path, "blob_store = \"s3://b\"\n[s3]\nendpiont = \"x\"\n").expect("write");
        let err = Settings::load(&Overrides { config: Some(path), ..Default::default() }).expect_err("a typo");
        assert!(err.to_string().contains("\"endpiont\" is not an S3 setting"), "{err}");
    }

    #[test]
    fn a_node_is_named_and_reached_as_configured() {
        let defaults = Settings::load(&Overrides::default()).expect("load");
        assert_eq!((defaults.node.as_str(), defaults.node_url, defaults.node_down_after_secs), ("local", None, 30));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.toml");
        std::fs::write(&path, "node = \"spark-1\"\nnode_url = \"http://10.0.0.1:8080/\"\nnode_down_after_secs = 10\n")
            .expect("write");
        let from_file = Settings::load(&Overrides { config: Some(path.clone()), ..Default::default() }).expect("load");
        assert_eq!(from_file.node.as_str(), "spark-1");
        assert_eq!(from_file.node_url.as_deref(), Some("http://10.0.0.1:8080"));
        assert_eq!(from_file.node_down_after_secs, 10);
        let flagged = Overrides { config: Some(path), node: Some("spark-2".into()), ..Default::default() };
        assert_eq!(Settings::load(&flagged).expect("load").node.as_str(), "spark-2");

        for (node, url, expected) in [
            (Some("Spark 1"), None, "node (--node / HANGAR_NODE)"),
            (None, Some("10.0.0.1:8080"), "node_url (--node-url / HANGAR_NODE_URL)"),
            (None, Some("http://10.0.0.1:8080/v1"), "without a path"),
            (None, Some("ftp://10.0.0.1"), "http://HOST:PORT"),
        ] {
            let bad = Overrides { node: node.map(Into::into), node_url: url.map(Into::into), ..Default::default() };
            let err = Settings::load(&bad).expect_err("refused");
            assert!(err.to_string().contains(expected), "{node:?} {url:?}: {err}");
        }
    }

    #[test]
    fn the_ca_cert_comes_from_the_file_or_the_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.toml");
        std::fs::write(&path, "ca_cert = \"/etc/hangar/ca.pem\"\n").expect("write");
        let from_file = Settings::load(&Overrides { config: Some(path.clone()), ..Default::default() }).expect("load");
        assert_eq!(from_file.ca_cert, Some(PathBuf::from("/etc/hangar/ca.pem")));
        let flagged = Overrides { config: Some(path), ca_cert: Some("other.pem".into()), ..Default::default() };
        assert_eq!(Settings::load(&flagged).expect("load").ca_cert, Some(PathBuf::from("other.pem")));
        assert_eq!(Settings::load(&Overrides::default()).expect("load").ca_cert, None);
    }
}
