//! This server as one node among those sharing the catalog: it claims its name, registers
//! its URL and GPUs, heartbeats, and keeps a copy of the other nodes' rows (refreshed with
//! each heartbeat) so that a request can be told at once where its deployment runs. A
//! request for a deployment on another node is relayed there ([`relay`]), so every node's
//! gateway, API and dashboard serve every deployment.

mod relay;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;

use crate::catalog::Db;
use crate::catalog::deployments::Deployment;
use crate::catalog::nodes::{self, Claim, Node};
use crate::domain::NodeName;
use crate::runtime::GpuInventory;
pub use relay::{Relay, passed_on};

/// Where a deployment runs, as this node sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// On this node.
    Here,
    /// On another node that is up: relay to its URL.
    There { node: NodeName, url: String },
    /// On a node that stopped heartbeating (or never registered): its state is unknown.
    Down { node: NodeName },
}

/// What this process knows of the nodes.
pub struct Nodes {
    me: NodeName,
    down_after: Duration,
    known: RwLock<Vec<Node>>,
    relay: Relay,
    claim: tokio::sync::Mutex<Claim>,
}

impl Nodes {
    /// Claims this node's name, registers it and takes the deployments no node has yet.
    /// `url`: where the other nodes reach this one.
    pub async fn join(
        pool: &Db,
        database_url: Option<&str>,
        me: NodeName,
        url: String,
        gpus: &GpuInventory,
        down_after: Duration,
        relay: Relay,
    ) -> anyhow::Result<Arc<Self>> {
        let claim = nodes::claim(pool, database_url, &me).await.context("cannot claim this node's name")?;
        nodes::register(pool, &me, &url, gpus).await.context("cannot register this node in the catalog")?;
        let taken = nodes::take_unplaced(pool, &me).await.context("cannot take the deployments of no node")?;
        if taken > 0 {
            tracing::info!(node = %me, taken, "deployments without a node are this node's now");
        }
        let known = nodes::list(pool).await.context("cannot read the nodes")?;
        tracing::info!(node = %me, %url, nodes = known.len(), "joined the catalog as a node");
        Ok(Arc::new(Self { me, down_after, known: RwLock::new(known), relay, claim: tokio::sync::Mutex::new(claim) }))
    }

    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// How often the heartbeat is written: three beats fit in the time that marks a node
    /// down, so one slow write does not.
    fn beat_every(&self) -> Duration {
        self.down_after / 3
    }

    /// Heartbeats and refreshes the copy of the nodes until the process ends.
    pub async fn run(self: Arc<Self>, pool: Db) {
        let mut ticks = tokio::time::interval(self.beat_every());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.claim.lock().await.keep().await {
                tracing::error!(node = %self.me, error = %e, "this node's claim on its name is lost; will retry");
                continue;
            }
            if let Err(e) = nodes::heartbeat(&pool, &self.me).await {
                tracing::warn!(error = %e, "could not write this node's heartbeat; will retry");
                continue;
            }
            match nodes::list(&pool).await {
                Ok(list) => *self.known.write().unwrap_or_else(PoisonError::into_inner) = list,
                Err(e) => tracing::warn!(error = %e, "could not read the nodes; will retry"),
            }
        }
    }

    /// Whether `node`, as the catalog has it now, is up (this one always is).
    pub fn is_node_up(&self, node: &Node) -> bool {
        node.name == self.me || node.is_up(self.down_after)
    }

    /// Where `d` runs. Cheap for this node's deployments (the hot path): no lock is taken.
    pub fn locate(&self, d: &Deployment) -> Location {
        let Some(node) = &d.node else { return Location::Here };
        if *node == self.me {
            return Location::Here;
        }
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        match known.iter().find(|n| n.name == *node) {
            Some(n) if n.is_up(self.down_after) => Location::There { node: node.clone(), url: n.url.clone() },
            _ => Location::Down { node: node.clone() },
        }
    }

    /// Whether the node named `name` is up (this one always is).
    pub fn is_up(&self, name: &str) -> bool {
        if name.is_empty() || name == self.me.as_str() {
            return true;
        }
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.iter().any(|n| n.name.as_str() == name && n.is_up(self.down_after))
    }

    /// Whether `d`'s node is up (its state can be believed).
    pub fn is_known(&self, d: &Deployment) -> bool {
        !matches!(self.locate(d), Location::Down { .. })
    }

    /// The client that relays requests to other nodes.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The message for a deployment whose node is down.
    pub fn down_message(&self, deployment: &Deployment, node: &NodeName) -> String {
        format!(
            "deployment '{}' runs on node '{node}', which is down (no heartbeat for {} s); its state is unknown \
             until the node is back, or move it: hangar deploy {} --move-to NODE",
            deployment.name,
            self.down_after.as_secs(),
            deployment.name
        )
    }
}
