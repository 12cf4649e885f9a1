//! Connections to model servers: HTTP/1.1 on hyper's connection API, kept alive per server
//! worker. A connection is driven by a task on the worker that opened it and is handed back
//! to that worker's pool when its answer has been read to the end, so a request never waits
//! on another thread. (The general client this replaced added a shared pool, URL parsing and
//! a request builder per request: the largest share of the gateway's own CPU after the two
//! HTTP stacks themselves; benches/README.md, issue 14.)

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::Body as _;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http;
use hyper_util::rt::TokioIo;

/// The pool of one worker: idle connections by model server address.
type Idle = Arc<Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>>;

/// Idle connections kept per model server address and worker.
const IDLE_PER_ADDRESS: usize = 64;

/// Why a request to a model server failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("no byte from {address} for {secs} s", secs = .after.as_secs())]
    Timeout { address: String, after: Duration },
    #[error("{address} broke the exchange: {source}")]
    Http { address: String, source: hyper::Error },
}

impl UpstreamError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// One worker's connections to model servers.
#[derive(Clone)]
pub struct Upstream {
    idle: Idle,
    connect_timeout: Duration,
    read_timeout: Duration,
}

/// An answer's head, and its body as a stream that gives its connection back at the end.
pub struct Answer {
    pub head: http::response::Parts,
    pub body: Body,
}

impl Upstream {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        Self { idle: Arc::default(), connect_timeout, read_timeout }
    }

    /// Sends `request` to the server at `address` (`host:port`) and waits for its head.
    pub async fn send(&self, address: &str, request: http::Request<Full<Bytes>>) -> Result<Answer, UpstreamError> {
        let (mut sender, reused) = match self.checkout(address) {
            Some(sender) => (sender, true),
            None => (self.connect(address).await?, false),
        };
        // A kept connection the server closed meanwhile fails before any answer: the request
        // went nowhere, and goes once more on a new connection (its body is in memory).
        let retry = reused.then(|| clone_request(&request));
        let sent = self.head(&mut sender, address, request).await;
        let (sender, head) = match (sent, retry) {
            (Err(UpstreamError::Http { source, .. }), Some(again)) if source.is_canceled() || source.is_closed() => {
                let mut fresh = self.connect(address).await?;
                let head = self.head(&mut fresh, address, again).await?;
                (fresh, head)
            }
            (sent, _) => (sender, sent?),
        };
        let (head, incoming) = head.into_parts();
        let body = Body {
            incoming,
            idle: Box::pin(tokio::time::sleep(self.read_timeout)),
            read_timeout: self.read_timeout,
            give_back: Some((sender, address.to_owned(), Arc::clone(&self.idle))),
        };
        Ok(Answer { head, body })
    }

    async fn head(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        address: &str,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, UpstreamError> {
        let http = |source| UpstreamError::Http { address: address.to_owned(), source };
        match tokio::time::timeout(self.read_timeout, sender.send_request(request)).await {
            Ok(answered) => answered.map_err(http),
            Err(_) => Err(UpstreamError::Timeout { address: address.to_owned(), after: self.read_timeout }),
        }
    }

    fn checkout(&self, address: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = idle.get_mut(address)?;
        while let Some(sender) = kept.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self, address: &str) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
        let failed = |source| UpstreamError::Connect { address: address.to_owned(), source };
        let stream = match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(connected) => connected.map_err(failed)?,
            Err(_) => return Err(UpstreamError::Timeout { address: address.to_owned(), after: self.connect_timeout }),
        };
        // Small writes go out at once (as on the client side of the gateway).
        stream.set_nodelay(true).map_err(failed)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| UpstreamError::Http { address: address.to_owned(), source })?;
        // Driven on this worker's thread: the connection's I/O never crosses threads.
        actix_web::rt::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a model server connection ended with an error");
            }
        });
        Ok(sender)
    }
}

fn clone_request(request: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// An answer's body: its data chunks as they come, an error when the server sends nothing
/// for the read timeout, and its connection back in the pool once it has ended.
pub struct Body {
    incoming: hyper::body::Incoming,
    idle: Pin<Box<tokio::time::Sleep>>,
    read_timeout: Duration,
    give_back: Option<(SendRequest<Full<Bytes>>, String, Idle)>,
}

impl Body {
    /// Its length, when the server said it (a `Content-Length`).
    pub fn exact_len(&self) -> Option<u64> {
        self.incoming.size_hint().exact()
    }

    fn ended(&mut self) {
        let Some((sender, address, idle)) = self.give_back.take() else { return };
        let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = idle.entry(address).or_default();
        if kept.len() < IDLE_PER_ADDRESS && !sender.is_closed() {
            kept.push(sender);
        }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.read_timeout;
                    this.idle.as_mut().reset(deadline);
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(source))) => {
                    let address = this.give_back.take().map(|(_, a, _)| a).unwrap_or_default();
                    return Poll::Ready(Some(Err(UpstreamError::Http { address, source })));
                }
                Poll::Ready(None) => {
                    this.ended();
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if std::future::Future::poll(this.idle.as_mut(), cx).is_ready() {
                        let address = this.give_back.take().map(|(_, a, _)| a).unwrap_or_default();
                        return Poll::Ready(Some(Err(UpstreamError::Timeout { address, after: this.read_timeout })));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
