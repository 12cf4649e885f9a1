//! The OpenAI-compatible gateway: `/v1/*` requests are routed by their JSON `model` field to
//! the deployment that serves it and proxied to its container, the response streamed back
//! as it comes (SSE tokens are neither buffered nor coalesced). `/deployments/{name}/proxy/…`
//! passes anything through to runtimes that do not speak OpenAI (Triton's `/v2/…`).
//! Errors on `/v1/*` have OpenAI's shape, so OpenAI clients show them as such.

mod error;
mod limits;
mod metrics;
mod rewrite;
mod route;
mod upstream;
mod usage;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog::Db;
use actix_web::ResponseError as _;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use crate::auth::Caller;
use crate::catalog::deployments::{self, Deployment, State};
use crate::domain::Role;
use crate::error::ApiError;
use crate::nodes::{Location, Nodes, Relay, passed_on};
use crate::runtime::supervisor::Supervisor;
use crate::runtime::traffic::{InFlight, Traffic};
pub use error::OpenAiError;
use hyper::http::Method;
pub use metrics::Metrics;
pub use usage::Ledger;

use crate::catalog::usage::Record;
use rewrite::Streamed;
use usage::{Answer, Metered};

/// Largest request body passed to a model server (long prompts, batched embeddings).
const MAX_BODY: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a request waits for a cold start.
const MAX_COLD_START: Duration = Duration::from_secs(900);

/// The deployments as of a generation of the catalog (`catalog::generation`, its count of
/// committed writes).
type Routes = Option<(u64, Arc<Vec<Deployment>>)>;

/// The upstream client (a keep-alive pool for every deployment) and the routing table.
#[derive(Clone)]
pub struct Gateway {
    upstream: upstream::Upstream,
    read_timeout: Duration,
    ledger: Ledger,
    limiter: Arc<limits::Limiter>,
    traffic: Arc<Traffic>,
    metrics: Arc<Metrics>,
    /// Requests are routed from this copy; only a write to the catalog costs a query.
    routes: Arc<Mutex<Routes>>,
}

impl Gateway {
    /// `read_timeout`: no byte from the model server for this long ends the request (504
    /// before the answer began; a cut stream after).
    pub fn new(traffic: Arc<Traffic>, read_timeout: Duration, ledger: Ledger) -> Self {
        Self {
            upstream: upstream::Upstream::new(CONNECT_TIMEOUT, read_timeout),
            read_timeout,
            ledger,
            limiter: Arc::default(),
            traffic,
            metrics: Arc::new(Metrics::default()),
            routes: Arc::default(),
        }
    }

    /// The gateway for one server worker: the same routes, counters and traffic, with a
    /// connection pool of its own. A pooled connection's task runs on the worker that
    /// opened it, so a request handed a connection from another worker's pool pays two
    /// cross-thread wake-ups per round trip; the profile showed those as the largest cost.
    pub fn for_worker(&self) -> Self {
        Self { upstream: upstream::Upstream::new(CONNECT_TIMEOUT, self.read_timeout), ..self.clone() }
    }

    /// Every deployment, from the copy unless the table changed since it was taken.
    async fn deployments(&self, pool: &Db) -> Result<Arc<Vec<Deployment>>, OpenAiError> {
        let generation = crate::catalog::generation();
        if let Some((seen, list)) = &*self.routes.lock().unwrap_or_else(PoisonError::into_inner)
            && *seen == generation
        {
            return Ok(Arc::clone(list));
        }
        let list = Arc::new(deployments::list(pool).await.map_err(|e| OpenAiError::from(ApiError::from(e)))?);
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = Some((generation, Arc::clone(&list)));
        Ok(list)
    }

    /// Requests routed to `deployment` since the process started.
    pub fn requests(&self, deployment: &str) -> u64 {
        self.metrics.requests(deployment)
    }

    /// Appends the gateway's Prometheus series to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out, |deployment| self.traffic.in_flight(deployment));
        let dropped = self.ledger.dropped();
        let name = "hangar_usage_records_dropped_total";
        let help = "Usage records dropped because the ledger's writer fell behind.";
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {dropped}\n"),
        );
    }
}

/// Every `(method, path)` that [`configure`] registers; `route` is any method. Kept beside
/// `configure` for the authorization test, which needs a row for each.
pub const ROUTES: &[(&str, &str)] =
    &[("get", "/v1/models"), ("post", "/v1/{tail}"), ("route", "/deployments/{name}/proxy/{path}")];

pub fn configure(cfg: &mut web::ServiceConfig) {
    let body_limit = web::PayloadConfig::new(MAX_BODY);
    cfg.service(web::resource("/v1/models").route(web::get().to(list_models)))
        .service(web::resource("/v1/{tail:.*}").app_data(body_limit.clone()).route(web::post().to(forward)))
        .service(
            web::resource("/deployments/{name}/proxy/{path:.*}").app_data(body_limit).route(web::route().to(proxy)),
        );
}

/// The deployments a caller may use: running, or stopped with autostart.
async fn list_models(
    pool: web::Data<Db>,
    gateway: web::Data<Gateway>,
    caller: Result<Caller, ApiError>,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller.map_err(OpenAiError::from)?;
    caller.require(Role::Viewer).map_err(|e| OpenAiError::from(ApiError::from(e)))?;
    let data: Vec<serde_json::Value> = gateway
        .deployments(&pool)
        .await?
        .iter()
        .filter(|d| caller.require_on(Role::Viewer, &d.model).is_ok())
        .filter(|d| d.observed.state == State::Running || d.autostart)
        .map(|d| {
            serde_json::json!({
                "id": d.name,
                "object": "model",
                "created": 0,
                "owned_by": "hangar",
                "root": format!("{}{}", d.model, d.target),
                "state": d.observed.state,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "object": "list", "data": data })))
}

/// `POST /v1/…`: finds the deployment for the body's `model` (JSON, or a multipart form's
/// field) and proxies to it, with `model` rewritten to the name the deployment serves.
#[expect(clippy::too_many_arguments, reason = "actix extractors, one per argument")]
async fn forward(
    pool: web::Data<Db>,
    gateway: web::Data<Gateway>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Result<Caller, ApiError>,
    req: HttpRequest,
    tail: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller.map_err(OpenAiError::from)?;
    let content_type = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mut request = rewrite::ModelRequest::parse(content_type, &body).map_err(OpenAiError::invalid_request)?;
    let started = Instant::now();
    let at_ms = usage::now_ms();
    let routes = gateway.deployments(&pool).await?;
    let deployment = route::resolve(&routes, &caller, request.model())?;
    let name = deployment.name.as_str();
    if let Some(url) = elsewhere(&nodes, &req, deployment)? {
        // The node that runs it meters, limits and accounts the request; the body goes as
        // it came, but for the model it names, resolved here.
        let body = request.with_model(body, name).map_err(|e| OpenAiError::from(ApiError::internal(e)))?;
        return nodes
            .relay()
            .forward(&req, &url, body)
            .await
            .map_err(|e| OpenAiError::upstream(&deployment.name, e.is_timeout(), &e));
    }
    let streamed = request.ask_usage(tail.as_str());
    let body = request.with_model(body, name).map_err(|e| OpenAiError::from(ApiError::internal(e)))?;
    let record = |d: &Deployment, status: u16| Record {
        at_ms,
        deployment: d.name.to_string(),
        model: d.model.to_string(),
        version: d.observed.serving_version.clone().unwrap_or_default(),
        user: caller.user.as_ref().map(ToString::to_string).unwrap_or_default(),
        token_id: caller.token_id,
        status,
        tokens: None,
        ttft_ms: None,
        total_ms: 0.0,
    };
    let result = async {
        let deployment = autostart(&supervisor, &gateway.metrics, deployment).await?;
        let address = serving_address(&deployment)?;
        let path = path_and_query(&format!("/v1/{tail}"), req.query_string());
        let permit = gateway.limiter.admit(&pool, &caller, at_ms.div_euclid(1000)).await?;
        let metering = Some(Metering { streamed, record: record(&deployment, 0), permit });
        relay(&gateway, &req, Method::POST, address, &path, body, &deployment, started, metering).await
    }
    .await;
    if let Err(e) = &result {
        let status = e.status_code().as_u16();
        gateway.metrics.responded(name, status, None);
        gateway
            .ledger
            .refused(Record { total_ms: started.elapsed().as_secs_f64() * 1e3, ..record(deployment, status) });
    }
    result
}

/// `ANY /deployments/{name}/proxy/{path}`: raw pass-through.
async fn proxy(
    pool: web::Data<Db>,
    gateway: web::Data<Gateway>,
    nodes: web::Data<Nodes>,
    caller: Result<Caller, ApiError>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller.map_err(OpenAiError::from)?;
    let (name, rest) = path.into_inner();
    let started = Instant::now();
    let deployment = route::by_name(&pool, &caller, &name).await?;
    if let Some(url) = elsewhere(&nodes, &req, &deployment)? {
        return nodes
            .relay()
            .forward(&req, &url, body)
            .await
            .map_err(|e| OpenAiError::upstream(&deployment.name, e.is_timeout(), &e));
    }
    let address = serving_address(&deployment)?;
    let method = Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| OpenAiError::invalid_request(format!("method {} cannot be proxied", req.method())))?;
    let path = path_and_query(&format!("/{rest}"), req.query_string());
    relay(&gateway, &req, method, address, &path, body, &deployment, started, None).await
}

/// Starts a stopped autostart deployment for a request and waits for it, bounded by its
/// runtime's startup deadline. Concurrent requests share the one start. A deployment that
/// needs no start stays borrowed from the routing table.
async fn autostart<'a>(
    supervisor: &Supervisor,
    metrics: &Metrics,
    deployment: &'a Deployment,
) -> Result<Cow<'a, Deployment>, OpenAiError> {
    let ready = deployment.observed.state == State::Running && deployment.observed.address.is_some();
    if ready || !deployment.autostart || deployment.observed.state == State::Failed {
        return Ok(Cow::Borrowed(deployment));
    }
    let deadline = match supervisor.runtime(&deployment.runtime).await {
        Ok(runtime) => runtime.startup_deadline(),
        Err(e) => return Err(OpenAiError::not_started(&deployment.name, &e)),
    };
    let waited = Instant::now();
    let (running, started_here) = supervisor
        .ensure_running(&deployment.name, deadline.min(MAX_COLD_START))
        .await
        .map_err(|e| OpenAiError::not_started(&deployment.name, &e))?;
    if started_here {
        metrics.cold_start(deployment.name.as_str(), waited.elapsed());
    }
    Ok(Cow::Owned(running))
}

/// The URL of the node to relay to when `d` runs on another node; an error when that node is
/// down, or when this request was relayed here and the deployment is not here either (it
/// moved meanwhile: the client retries, instead of nodes relaying in a loop).
fn elsewhere(nodes: &Nodes, req: &HttpRequest, d: &Deployment) -> Result<Option<String>, OpenAiError> {
    match nodes.locate(d) {
        Location::Here => Ok(None),
        Location::There { node, .. } if Relay::relayed(req) => Err(OpenAiError::unavailable(format!(
            "deployment '{}' runs on node '{node}', not on the node this was relayed to; try again",
            d.name
        ))),
        Location::There { url, .. } => Ok(Some(url)),
        Location::Down { node } => Err(OpenAiError::unavailable(nodes.down_message(d, &node))),
    }
}

/// Where a deployment answers, or why it cannot answer now.
fn serving_address(d: &Deployment) -> Result<&str, OpenAiError> {
    match (d.observed.state, d.observed.address.as_deref()) {
        (State::Running, Some(address)) => Ok(address),
        (State::Failed, _) => Err(OpenAiError::unavailable(format!(
            "deployment '{}' failed: {}",
            d.name,
            d.observed.reason.as_deref().unwrap_or("no reason recorded")
        ))),
        (state, _) => Err(OpenAiError::unavailable(format!(
            "deployment '{}' is {}, not running; start it with POST /api/v1/deployments/{}/start",
            d.name,
            state.as_str(),
            d.name
        ))),
    }
}

fn path_and_query(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

/// Whether a header of the caller's request or of the model server's answer is passed on:
/// not the hop-by-hop ones (`nodes::passed_on`), nor the caller's credentials, which are
/// Hangar's and not the model server's business.
fn passed_to_model(name: &str) -> bool {
    passed_on(name) && name != "authorization"
}

/// Sends the request upstream and streams the answer back chunk by chunk, metered when
/// `metering` gives how it was asked and the request's record. Dropping the response (the
/// client went away) drops the upstream connection, which cancels the work.
#[expect(clippy::too_many_arguments, reason = "two call sites; a struct would only rename them")]
async fn relay(
    gateway: &Gateway,
    req: &HttpRequest,
    method: Method,
    address: &str,
    path: &str,
    body: web::Bytes,
    deployment: &Deployment,
    started: Instant,
    metering: Option<Metering>,
) -> Result<HttpResponse, OpenAiError> {
    // Counted before the first byte goes out, so a rollout waits for it; the address may
    // change here if a rollout switched since the catalog was read.
    let in_flight = gateway.traffic.begin(deployment.name.as_str(), address);
    let mut upstream = hyper::http::Request::builder().method(method).uri(path).header("host", in_flight.address());
    for (name, value) in req.headers() {
        if passed_to_model(name.as_str()) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let upstream =
        upstream.body(http_body_util::Full::new(body)).map_err(|e| OpenAiError::from(ApiError::internal(e)))?;
    let response = gateway
        .upstream
        .send(in_flight.address(), upstream)
        .await
        .map_err(|e| OpenAiError::upstream(&deployment.name, e.is_timeout(), &e))?;
    let status = StatusCode::from_u16(response.head.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    gateway.metrics.responded(deployment.name.as_str(), status.as_u16(), Some(started.elapsed()));
    let mut reply = HttpResponse::build(status);
    for (name, value) in &response.head.headers {
        if passed_to_model(name.as_str()) {
            reply.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    reply.insert_header(("X-Accel-Buffering", "no"));
    let name = deployment.name.to_string();
    let events = response
        .head
        .headers
        .get(hyper::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (answer, record, permit) = match metering {
        None => (Answer::Unmetered, None, None),
        Some(Metering { streamed, record, permit }) => {
            let answer = match (events, streamed) {
                (false, _) => Answer::Json,
                (true, Streamed::UsageAdded) => Answer::Events { strip: true },
                (true, _) => Answer::Events { strip: false },
            };
            (answer, Some(Record { status: status.as_u16(), ..record }), Some(permit))
        }
    };
    // The usage event taken out changes the length: an answer of known length keeps it
    // only when nothing is taken out.
    let length = response.body.exact_len().filter(|_| !matches!(answer, Answer::Events { strip: true }));
    let stream = response.body.map(move |chunk| {
        chunk.map_err(|e| {
            tracing::warn!(deployment = %name, error = %e, "upstream stream broke");
            actix_web::error::ErrorBadGateway(e)
        })
    });
    let metrics = Arc::clone(&gateway.metrics);
    let counted_name = deployment.name.to_string();
    let stream = Metered::new(stream, answer, started, record, gateway.ledger.clone(), move |tokens| {
        metrics.tokens(&counted_name, tokens);
        if let Some(permit) = &permit {
            permit.used(tokens);
        }
    });
    let counted = Counted {
        inner: stream,
        _in_flight: in_flight,
        metrics: Arc::clone(&gateway.metrics),
        deployment: deployment.name.to_string(),
        started,
    };
    // A body of known length goes out as such (no chunked framing); anything else, SSE
    // above all, is relayed chunk by chunk as it comes.
    Ok(match length {
        Some(length) => reply.body(actix_web::body::SizedStream::new(length, counted)),
        None => reply.streaming(counted),
    })
}

/// How a relayed answer is accounted: how it was asked for, the request's record, and its
/// place under the caller's limits (held until the answer ends).
struct Metering {
    streamed: Streamed,
    record: Record,
    permit: limits::Permit,
}

/// A response body that counts as a request in flight until it ends or is dropped, and
/// then records the request's latency.
struct Counted<S> {
    inner: S,
    _in_flight: InFlight,
    metrics: Arc<Metrics>,
    deployment: String,
    started: Instant,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.metrics.finished(&self.deployment, self.started.elapsed());
    }
}

impl<S: futures_util::Stream + Unpin> futures_util::Stream for Counted<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}
