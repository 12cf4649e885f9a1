//! `GET /api/v1/nodes`: the servers sharing this catalog, whether each is up, its GPUs and
//! the deployments it runs (those the caller may see).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{Forbidden, Unauthorized};
use super::page::Items;
use super::system::GpuView;
use crate::auth::Caller;
use crate::catalog::{self, Db};
use crate::domain::{DeploymentName, NodeName};
use crate::error::ApiError;
use crate::nodes::Nodes;
use crate::ops;

/// A node: one Hangar server with its own Docker engine and GPUs.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    name: NodeName,
    /// Where the other nodes reach it.
    url: String,
    /// Heartbeating: a node that is not is down, and its deployments' state is `unknown`.
    up: bool,
    /// The node that answered this request.
    this: bool,
    /// Hangar's version there.
    version: String,
    started_at: String,
    heartbeat_at: String,
    gpus: Vec<GpuView>,
    /// The deployments it runs, of the models the caller may see.
    deployments: Vec<DeploymentName>,
}

/// Every node sharing this catalog.
#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    responses((status = 200, description = "The nodes", body = Items<NodeView>), Unauthorized, Forbidden),
)]
pub async fn list_nodes(
    pool: web::Data<Db>,
    nodes: web::Data<Nodes>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let visible = ops::deployments::list(&pool, &caller).await?;
    // From the catalog, not this node's copy: a node that just joined shows at once.
    let list = catalog::nodes::list(&pool).await?;
    Ok(HttpResponse::Ok().json(Items::new(list, |node| NodeView {
        up: nodes.is_node_up(&node),
        this: node.name == *nodes.me(),
        deployments: visible.iter().filter(|d| d.node.as_ref() == Some(&node.name)).map(|d| d.name.clone()).collect(),
        gpus: node.gpus.gpus.into_iter().map(GpuView::from).collect(),
        name: node.name,
        url: node.url,
        version: node.version,
        started_at: node.started_at,
        heartbeat_at: node.heartbeat_at,
    })))
}
