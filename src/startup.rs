//! Builds the application: opens the data dir, database and blob store, binds the listener
//! (port 0 works; `port()` says which one was chosen), and starts the background loops (the
//! supervisor, garbage collection and webhook delivery) in one `Tasks` set, stopped on shutdown.

use std::fs::File;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Db;
use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::auth::{self, Authenticator, Bootstrapped, LoginLimiter};
use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::gateway::{Gateway, Ledger};
use crate::nodes::{Nodes, Relay};
use crate::runtime::docker::DockerClient;
use crate::runtime::supervisor::{Supervisor, SupervisorSettings};
use crate::runtime::traffic::Traffic;
use crate::runtime::{GpuInventory, SpecSettings};
use crate::tasks::Tasks;
use crate::tls::{self, CertResolver};
use crate::web::history::{self, MemoryHistory};
use crate::webhooks::{Deliverer, DeliverySettings};
use crate::{api, catalog, gateway, gc, hf, request_id, web as dashboard};

/// How often unreferenced blobs are looked for after the startup sweep.
const GC_INTERVAL: Duration = Duration::from_secs(15 * 60);

pub struct Application {
    port: u16,
    server: Server,
    pool: Db,
    blobs: BlobStore,
    bootstrapped: Bootstrapped,
    tasks: Tasks,
    _lock: File,
}

impl Application {
    /// Prepares everything that can fail with a message for the operator, so that a bad
    /// data dir or a busy port ends the process before it claims to be serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        tls::install_provider();
        // A bad certificate is an operator's error: refuse to start rather than serve without it.
        let cert = settings.tls.clone().map(CertResolver::load).transpose()?;
        let listener =
            TcpListener::bind(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let lock = prepare_data_dir(&settings.data_dir)?;
        let database_url = settings.database_url.as_ref().map(|url| url.0.as_str());
        let pool = catalog::connect(database_url, &settings.data_dir.join("hangar.db")).await?;
        let blobs = BlobStore::open_with(&settings.data_dir, settings.blob_store.as_ref())
            .with_context(|| format!("cannot open the blob store in {}", settings.data_dir.display()))?;
        if let Some(bucket) = &settings.blob_store {
            // Wrong credentials or an unreachable endpoint stop the start, not the first upload.
            blobs.check_bucket().await.with_context(|| format!("cannot reach the blob store's bucket {bucket:?}"))?;
        }
        let removed = blobs.sweep_tmp().await.context("cannot clean the tmp/ folder of the data dir")?;
        if removed > 0 {
            tracing::info!(removed, "removed uploads left over from the last run");
        }
        let bootstrapped = auth::bootstrap(
            &pool,
            &settings.data_dir,
            settings.admin_password.as_ref().map(|p| p.0.as_str()),
            settings.bootstrap_token.as_ref().map(|t| t.0.as_str()),
        )
        .await?;
        let swept = gc::sweep(&pool, &blobs, settings.gc_grace_secs).await?;
        tracing::info!(?swept, "startup garbage collection done");

        let mut tasks = Tasks::default();
        let traffic = Arc::new(Traffic::default());
        let supervisor = start_supervisor(&settings, pool.clone(), blobs.clone(), Arc::clone(&traffic)).await?;
        // Before the supervisor's first pass: it converges this node's deployments only, and
        // those made before nodes existed become this node's here.
        let relay = Relay::new(&settings.node, Duration::from_secs(settings.upstream_timeout_secs))?;
        let nodes = Nodes::join(
            &pool,
            database_url,
            settings.node.clone(),
            node_url(&settings, port),
            supervisor.inventory(),
            Duration::from_secs(settings.node_down_after_secs),
            relay,
        )
        .await?;
        let (beating, beat_pool) = (Arc::clone(&nodes), pool.clone());
        tasks.spawn("node heartbeat", move || Arc::clone(&beating).run(beat_pool.clone()));
        if let Db::Postgres(_) = &pool {
            // Other nodes' writes move this process's generation count (and wake its
            // supervisor), as its own writes do.
            let (watched, woken) = (pool.clone(), Arc::clone(&supervisor));
            tasks.spawn("catalog changes", move || {
                let woken = Arc::clone(&woken);
                catalog::follow_other_writers(watched.clone(), move || woken.wake())
            });
        }
        let looping = Arc::clone(&supervisor);
        tasks.spawn("supervisor", move || Arc::clone(&looping).run());
        let (gc_pool, gc_blobs, grace) = (pool.clone(), blobs.clone(), settings.gc_grace_secs);
        tasks.spawn("gc", move || gc_loop(gc_pool.clone(), gc_blobs.clone(), grace));
        // Like a bad TLS certificate, a CA file that cannot be used stops the start.
        let extra_roots = match &settings.ca_cert {
            Some(path) => tls::ca_certificates(path)
                .with_context(|| format!("ca_cert (--ca-cert / HANGAR_CA_CERT) {}", path.display()))?,
            None => Vec::new(),
        };
        let deliverer = Deliverer::new(
            pool.clone(),
            DeliverySettings {
                max_attempts: settings.webhook_max_attempts,
                backoff: Duration::from_millis(settings.webhook_backoff_ms),
                timeout: Duration::from_secs(settings.webhook_timeout_secs),
                allow_private: settings.webhook_allow_private,
                extra_roots,
            },
        )
        .context("cannot build the webhook client")?;
        tasks.spawn("webhooks", move || Arc::clone(&deliverer).run());
        let tls = match cert {
            Some(cert) => {
                let config = cert.server_config()?;
                tasks.spawn("tls-reload", move || tls::reload_on_sighup(Arc::clone(&cert)));
                Some(config)
            }
            None => None,
        };
        let history = Arc::new(MemoryHistory::default());
        let (sampled, sampler_supervisor) = (Arc::clone(&history), Arc::clone(&supervisor));
        tasks.spawn("memory samples", move || {
            history::sample_forever(Arc::clone(&sampled), Arc::clone(&sampler_supervisor))
        });
        let retention = Duration::from_secs(settings.usage_raw_retention_hours.saturating_mul(3600));
        let (ledger, ledger_writer) = Ledger::new(pool.clone(), retention);
        tasks.spawn("usage ledger", move || Arc::clone(&ledger_writer).run());
        let shared = Shared { pool: pool.clone(), blobs: blobs.clone(), supervisor, traffic, history, ledger, nodes };
        let server = serve(listener, tls, shared, settings)?;
        Ok(Self { port, server, pool, blobs, bootstrapped, tasks, _lock: lock })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The blob store, for its counters.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// What first-start bootstrap did (a generated admin password, to show once).
    pub fn bootstrapped(&self) -> &Bootstrapped {
        &self.bootstrapped
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests for up to
    /// `shutdown_grace_secs`; the ones still running then are cut, and their staging files
    /// removed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // Nothing is in flight any more: whatever is left in tmp/ belongs to a cut upload.
        if let Err(e) = self.blobs.sweep_tmp().await {
            tracing::warn!(error = %e, "cannot clean tmp/ after shutdown; the next start will");
        }
        self.tasks.shutdown().await;
        self.pool.close().await;
        result
    }
}

/// How long an idle client connection stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// What every worker's `App` shares, made once by [`Application::build`].
struct Shared {
    pool: Db,
    blobs: BlobStore,
    supervisor: Arc<Supervisor>,
    traffic: Arc<Traffic>,
    history: Arc<MemoryHistory>,
    ledger: Ledger,
    nodes: Arc<Nodes>,
}

fn serve(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    shared: Shared,
    settings: Settings,
) -> anyhow::Result<Server> {
    let Shared { pool, blobs, supervisor, traffic, history, ledger, nodes } = shared;
    let nodes = web::Data::from(nodes);
    let (json, query, path) = api::extractor_configs(settings.json_limit);
    let authenticator = web::Data::new(Authenticator::new(pool.clone()));
    let limiter = web::Data::new(LoginLimiter::default());
    let http_metrics = web::Data::new(crate::metrics::HttpMetrics::default());
    let history = web::Data::from(history);
    let supervisor = web::Data::from(supervisor);
    let gateway = Gateway::new(traffic, Duration::from_secs(settings.upstream_timeout_secs), ledger);
    let pool = web::Data::new(pool);
    let blobs = web::Data::new(blobs);
    let body_timeout = Duration::from_secs(settings.body_chunk_timeout_secs);
    let grace = settings.shutdown_grace_secs;
    let hsts = tls.is_some();
    let ticket_key =
        web::Data::new(crate::hf::TicketKey::load_or_create(&settings.data_dir).with_context(|| {
            format!("cannot read or make the upload ticket key in {}", settings.data_dir.display())
        })?);
    let settings = web::Data::new(settings);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(move |req, next| api::cut_stalled_bodies(body_timeout, req, next)))
            .wrap(from_fn(request_id::assign))
            .wrap(security_headers(hsts))
            .app_data(json.clone())
            .app_data(query.clone())
            .app_data(path.clone())
            .app_data(pool.clone())
            .app_data(blobs.clone())
            .app_data(settings.clone())
            .app_data(authenticator.clone())
            .app_data(limiter.clone())
            .app_data(http_metrics.clone())
            .app_data(history.clone())
            .app_data(supervisor.clone())
            .app_data(nodes.clone())
            .app_data(ticket_key.clone())
            .app_data(web::Data::new(gateway.for_worker()))
            // The gateway's routes first: `/v1/…` is the hot path, and actix tries routes in
            // the order they are registered (the API's are regular expressions).
            .configure(gateway::configure)
            .configure(api::configure)
            // The Hugging Face Hub protocol: not in the OpenAPI document (its contract is the Hub's).
            .configure(hf::configure)
            .configure(dashboard::configure)
            .default_service(web::to(api::not_found))
    })
    // Small writes go out at once: a response's last chunk must not wait, by Nagle's rule,
    // for the client's (delayed) ACK of the one before — milliseconds on every answer.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    // An idle connection is kept as long as nginx keeps one (actix's default is 5 s):
    // clients pool connections for longer (reqwest 90 s, the CLI's and the tests'), and a
    // server that closes one just as the client reuses it fails that request with an
    // incomplete message — seen when a CLI run between two calls took over 5 s.
    .keep_alive(KEEP_ALIVE)
    .shutdown_timeout(grace);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// Every response's security headers, in one place. The CSP allows no inline script and
/// nothing from elsewhere: the dashboard's CSS and JS are served by Hangar itself.
fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = if hsts {
        // Only when Hangar itself serves HTTPS: behind a proxy, HSTS is the proxy's to send.
        DefaultHeaders::new().add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        DefaultHeaders::new()
    };
    headers
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// Creates the data dir and takes its lock, so two servers never share one catalog.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<File> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    make_private(dir).with_context(|| format!("cannot restrict the permissions of data dir {}", dir.display()))?;
    let lock_path = dir.join("hangar.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("data dir {} is not writable", dir.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "data dir {} is in use by another hangar process (it holds {})",
            dir.display(),
            lock_path.display()
        )
    })?;
    Ok(lock)
}

/// Takes group and other access away from the data dir and the files at its top (the
/// database and its journal, the lock, the installation id, a generated password), logging
/// each one changed. What lies below stays as it is: `blobs/` and `snapshots/` are
/// unreachable through the closed data dir, and a model container, which runs as its image's
/// user, reads a snapshot through its bind mount without passing the data dir.
fn make_private(dir: &Path) -> std::io::Result<()> {
    tighten(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            tighten(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

fn tighten(path: &Path, private: u32) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
        tracing::warn!(path = %path.display(), from = format!("{mode:o}"), to = format!("{private:o}"), "tightened permissions: only the server's user may read the data dir");
    }
    Ok(())
}

/// Connects to Docker (lazily: Hangar starts without it) and loads the GPU inventory.
async fn start_supervisor(
    settings: &Settings,
    pool: Db,
    blobs: BlobStore,
    traffic: Arc<Traffic>,
) -> anyhow::Result<Arc<Supervisor>> {
    let owner = installation_id(&settings.data_dir)?;
    let engine = Arc::new(DockerClient::connect(&owner).await);
    let inventory = GpuInventory::load(settings.gpus.as_deref(), settings.gpu_host_reserve_gib)?;
    let supervisor_settings = SupervisorSettings {
        spec: SpecSettings {
            gpu_mode: settings.gpu_mode,
            docker_network: settings.docker_network.clone(),
            owner,
            ..SpecSettings::default()
        },
        host_data_dir: settings.host_data_dir.clone(),
        max_restarts: settings.max_restarts,
        backoff_base: Duration::from_millis(settings.restart_backoff_ms),
        rollout: settings.rollout,
        node: settings.node.clone(),
        node_down_after: Duration::from_secs(settings.node_down_after_secs),
        ..SupervisorSettings::default()
    };
    let data_dir = std::path::absolute(&settings.data_dir)?;
    Ok(Supervisor::new(pool, blobs, engine, inventory, supervisor_settings, data_dir, traffic))
}

/// Where the other nodes reach this one: `node_url`, else the address it listens on (its
/// host name when that is a wildcard address).
fn node_url(settings: &Settings, port: u16) -> String {
    if let Some(url) = &settings.node_url {
        return url.clone();
    }
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    let ip = settings.listen.ip();
    if ip.is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        return format!("{scheme}://{}:{port}", if host.is_empty() { "localhost" } else { host });
    }
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, port))
}

/// This installation's id, made at first start: the owner label of its containers.
fn installation_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("installation-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut file| writeln!(file, "{id}"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

async fn gc_loop(pool: Db, blobs: BlobStore, grace_secs: u64) {
    let mut ticks = tokio::time::interval(GC_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match gc::sweep(&pool, &blobs, grace_secs).await {
            Ok(swept) => tracing::info!(?swept, "garbage collection done"),
            Err(e) => tracing::warn!(error = ?e, "garbage collection failed; will retry"),
        }
    }
}
