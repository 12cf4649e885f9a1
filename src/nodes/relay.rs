//! Relaying a request to the node that runs its deployment: the same method, path, query,
//! body and credentials (the other node authenticates them against the shared catalog and
//! applies its own rules, limits and accounting), the answer streamed back as it comes. A
//! relayed request is marked, so a node that does not run the deployment either (it moved
//! meanwhile) answers instead of relaying again: no loops.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt as _;

use crate::domain::NodeName;

/// The header a relayed request carries: the node it came through.
pub const RELAYED_BY: &str = "x-hangar-relayed-by";

/// Headers a proxy must not pass on (RFC 9110 §7.6.1), and the length, which the body sets:
/// for relays to other nodes and to model servers alike.
const NOT_PASSED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Whether a proxy passes header `name` (lowercase, as `http` keeps names) on.
pub fn passed_on(name: &str) -> bool {
    !NOT_PASSED.contains(&name)
}

/// The client other nodes are reached with.
#[derive(Clone)]
pub struct Relay {
    client: reqwest::Client,
    me: String,
}

impl Relay {
    /// `read_timeout`: the other node sending nothing for this long ends the request, as
    /// a model server's silence does in the gateway.
    pub fn new(me: &NodeName, read_timeout: Duration) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(read_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy()
            .build()?;
        Ok(Self { client, me: me.to_string() })
    }

    /// Whether `req` was relayed here by another node.
    pub fn relayed(req: &HttpRequest) -> bool {
        req.headers().contains_key(RELAYED_BY)
    }

    /// Sends `req` (with `body`) to the node at `node_url` and streams its answer back.
    pub async fn forward(
        &self,
        req: &HttpRequest,
        node_url: &str,
        body: bytes::Bytes,
    ) -> Result<HttpResponse, reqwest::Error> {
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
        let url = format!("{node_url}{}", req.uri().path_and_query().map_or("/", |p| p.as_str()));
        let mut out = self.client.request(method, &url).body(body).header(RELAYED_BY, &self.me);
        for (name, value) in req.headers() {
            if passed_on(name.as_str()) {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        let response = out.send().await?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut reply = HttpResponse::build(status);
        for (name, value) in response.headers() {
            if passed_on(name.as_str()) {
                reply.append_header((name.as_str(), value.as_bytes()));
            }
        }
        let length = response.content_length();
        let node = node_url.to_owned();
        let stream = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| {
                tracing::warn!(%node, error = %e, "a relayed answer broke off");
                actix_web::error::ErrorBadGateway("the node that runs the deployment stopped answering")
            })
        });
        Ok(match length {
            Some(length) => reply.body(actix_web::body::SizedStream::new(length, stream)),
            None => reply.streaming(stream),
        })
    }
}
