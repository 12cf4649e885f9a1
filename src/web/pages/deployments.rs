//! Deployments: a table whose states update live (the page's script follows the event
//! stream), a form to create one, start/stop/restart, and a page per deployment with its
//! events and the tail of its log.

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Notice;
use crate::catalog::deployments::{self, Deployment};
use crate::catalog::events;
use crate::catalog::launches::{self, Launch};
use crate::domain::{DeploymentName, ModelName, ModelRef, Role};
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::nodes::Nodes;
use crate::ops::{self, deployments::Action, deployments::DeploymentRequest};
use crate::runtime::supervisor::Supervisor;
use crate::runtime::{GpuAllocation, PRESET_NAMES};
use crate::web::cache::PageCache;
use crate::web::error::encode_query;
use crate::web::{Frame, WebCaller, WebError};

/// The newest events shown on a deployment's page.
const EVENTS_SHOWN: u32 = 50;

#[derive(Clone)]
pub struct DeploymentRow {
    pub name: String,
    pub target: String,
    pub runtime: String,
    pub state: String,
    pub version: String,
    pub gpus: String,
    pub started_at: String,
    pub restarts: i64,
    pub reason: String,
    pub address: String,
    pub autostart: bool,
    pub requests: u64,
    /// The node that runs it.
    pub node: String,
}

impl DeploymentRow {
    /// The row as this node sees it now: `unknown` while the node that runs it is down
    /// (read at every view: node liveness moves without a catalog write).
    fn seen_from(self, nodes: &Nodes) -> Self {
        if nodes.is_up(&self.node) { self } else { Self { state: "unknown".into(), ..self } }
    }
}

impl From<Deployment> for DeploymentRow {
    fn from(d: Deployment) -> Self {
        let gpus = match &d.observed.gpu_allocation {
            Some(GpuAllocation::Exclusive { device_ids }) => format!("GPU {}", device_ids.join(", ")),
            Some(GpuAllocation::Shared { device_id, memory_gib, .. }) => format!("{memory_gib} GiB of GPU {device_id}"),
            None => "—".into(),
        };
        Self {
            target: format!("{}{}", d.model, d.target),
            name: d.name.to_string(),
            runtime: d.runtime,
            state: d.observed.state.as_str().to_owned(),
            version: d.observed.serving_version.unwrap_or_default(),
            gpus,
            started_at: d.observed.started_at.unwrap_or_default(),
            restarts: d.observed.restarts,
            reason: d.observed.reason.unwrap_or_default(),
            address: d.observed.address.unwrap_or_default(),
            autostart: d.autostart,
            requests: 0,
            node: d.node.map(|n| n.to_string()).unwrap_or_default(),
        }
    }
}

/// What the deployments page shows of the catalog, for every caller: each row with its
/// model (who may see it is decided per view), and the runtimes for the form.
pub struct DeploymentsData {
    deployments: Vec<(ModelName, DeploymentRow)>,
    runtimes: Vec<String>,
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct DeploymentsPage {
    frame: Frame,
    notice: Option<String>,
    deployments: Vec<DeploymentRow>,
    runtimes: Vec<String>,
    can_deploy: bool,
}

pub struct EventRow {
    at: String,
    action: String,
    actor: String,
    details: String,
}

/// A deployment's traffic charts with their tables, for its page and for the page's refresh.
#[derive(Template)]
#[template(path = "deployment_traffic.html")]
struct TrafficCharts {
    traffic: Vec<super::usage::TrafficView>,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    frame: Frame,
    notice: Option<String>,
    d: DeploymentRow,
    events: Vec<EventRow>,
    can_change: bool,
    /// Whether its runtime speaks the OpenAI API, so the try-it panel can talk to it.
    openai: bool,
    /// What its newest start ran.
    launch: Option<LaunchFacts>,
    /// Its traffic through the gateway over the last hour and day.
    traffic: Vec<super::usage::TrafficView>,
}

/// A launch record as the deployment page shows it.
pub struct LaunchFacts {
    started_at: String,
    image: String,
    image_digest: String,
    /// Arguments joined by spaces, for reading (the API has the exact list).
    argv: String,
    env: Vec<(String, String)>,
    version: String,
    manifest_digest: String,
}

impl From<Launch> for LaunchFacts {
    fn from(l: Launch) -> Self {
        Self {
            started_at: l.started_at,
            image: l.image,
            image_digest: l.image_digest.unwrap_or_else(|| "unknown".into()),
            argv: l.argv.join(" "),
            env: l.env.into_iter().collect(),
            version: l.version,
            manifest_digest: l.manifest_digest.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// `model@alias` or `model:version`.
    target: String,
    runtime: String,
    #[serde(default)]
    gpus: String,
    #[serde(default)]
    gpu_memory_gib: String,
    autostart: Option<String>,
    #[serde(default)]
    idle_timeout_secs: String,
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct ActionPath {
    name: String,
    action: String,
}

fn html(body: Result<String, askama::Error>) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body.map_err(ApiError::internal)?))
}

fn redirect(to: &str, notice: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, format!("{to}?notice={}", encode_query(notice)))).finish()
}

pub async fn list(
    pool: web::Data<Db>,
    gateway: web::Data<Gateway>,
    nodes: web::Data<Nodes>,
    cache: web::Data<PageCache<(), DeploymentsData>>,
    caller: WebCaller,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, WebError> {
    caller.caller.require(Role::Viewer)?;
    let data = cache.get_or_load((), || load_list(&pool)).await?;
    let deployments = data
        .deployments
        .iter()
        .filter(|(model, _)| caller.caller.require_on(Role::Viewer, model).is_ok())
        // Requests are counted by the gateway, not the catalog: read at every view.
        .map(|(_, row)| DeploymentRow { requests: gateway.requests(&row.name), ..row.clone() }.seen_from(&nodes))
        .collect();
    let runtimes = data.runtimes.clone();
    html(
        DeploymentsPage {
            frame: caller.frame(),
            can_deploy: caller.caller.role >= Role::Maintainer,
            notice: notice.into_inner().notice,
            deployments,
            runtimes,
        }
        .render(),
    )
}

async fn load_list(pool: &Db) -> Result<DeploymentsData, WebError> {
    let mut runtimes: Vec<String> = PRESET_NAMES.iter().map(|s| (*s).to_owned()).collect();
    for (name, _) in crate::catalog::runtimes::list(pool).await? {
        if !runtimes.contains(&name) {
            runtimes.push(name);
        }
    }
    let deployments = deployments::list(pool).await?.into_iter().map(|d| (d.model.clone(), d.into())).collect();
    Ok(DeploymentsData { deployments, runtimes })
}

/// The traffic charts alone, which the page fetches every 30 s to redraw them.
pub async fn traffic(
    pool: web::Data<Db>,
    caller: WebCaller,
    name: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let name = DeploymentName::parse(&name).map_err(ApiError::from)?;
    ops::deployments::find(&pool, &caller.caller, Role::Viewer, &name).await?;
    let traffic = super::usage::deployment_traffic(&pool, &caller.caller, name.as_str()).await?;
    let body = TrafficCharts { traffic }.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

pub async fn show(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: WebCaller,
    name: web::Path<String>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, WebError> {
    let name = DeploymentName::parse(&name).map_err(ApiError::from)?;
    let deployment = ops::deployments::find(&pool, &caller.caller, Role::Viewer, &name).await?;
    let events: Vec<EventRow> = events::recent_about(&pool, deployment.model.as_str(), name.as_str(), EVENTS_SHOWN)
        .await?
        .into_iter()
        .map(|e| EventRow {
            at: e.at,
            action: e.action,
            actor: e.actor.unwrap_or_default(),
            details: e.details.to_string(),
        })
        .collect();
    // A runtime removed since the deployment was made: no panel, the page still shows.
    let openai = supervisor.runtime(&deployment.runtime).await.is_ok_and(|r| r.openai());
    let launch = launches::latest(&pool, &name).await?.map(LaunchFacts::from);
    let traffic = super::usage::deployment_traffic(&pool, &caller.caller, name.as_str()).await?;
    html(
        DeploymentPage {
            frame: caller.frame(),
            openai,
            can_change: caller.caller.require_on(Role::Maintainer, &deployment.model).is_ok(),
            notice: notice.into_inner().notice,
            d: DeploymentRow::from(deployment).seen_from(&nodes),
            events,
            launch,
            traffic,
        }
        .render(),
    )
}

/// Optional number fields arrive as text; empty means absent.
pub(super) fn number<T: std::str::FromStr>(raw: &str, field: &str) -> Result<Option<T>, WebError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("{field} must be a number, not {raw:?}")).into())
}

pub async fn create(
    supervisor: web::Data<Supervisor>,
    caller: WebCaller,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let ModelRef { model, target } = ModelRef::parse(form.target.trim()).map_err(ApiError::from)?;
    let Some(target) = target else {
        return Err(ApiError::BadRequest("give the target as model@alias or model:version".into()).into());
    };
    let name = Some(form.name.trim()).filter(|n| !n.is_empty()).map(DeploymentName::parse).transpose();
    let request = DeploymentRequest {
        name: name.map_err(ApiError::from)?,
        model,
        target,
        runtime: form.runtime,
        gpus: number(&form.gpus, "GPUs")?,
        gpu_memory_gib: number(&form.gpu_memory_gib, "GPU memory")?,
        env: Default::default(),
        args: Vec::new(),
        autostart: form.autostart.is_some(),
        idle_timeout_secs: number::<i64>(&form.idle_timeout_secs, "idle timeout")?,
        start: true,
        node: None,
    };
    let created = ops::deployments::create(&supervisor, &caller.caller, request).await?;
    Ok(redirect("/deployments", &format!("Deployment {} created; it is starting.", created.name)))
}

/// Start, stop or restart from a button.
pub async fn act(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    caller: WebCaller,
    path: web::Path<ActionPath>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let name = DeploymentName::parse(&path.name).map_err(ApiError::from)?;
    let (action, notice) = match path.action.as_str() {
        "start" => (Action::Start, "Start requested."),
        "stop" => (Action::Stop, "Stop requested."),
        "restart" => (Action::Restart, "Restart requested."),
        other => return Err(ApiError::NotFound(format!("no action {other:?}; use start, stop or restart")).into()),
    };
    ops::deployments::act(&pool, &supervisor, &caller.caller, &name, action).await?;
    Ok(redirect(&format!("/deployments/{name}"), notice))
}
