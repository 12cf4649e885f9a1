//! A request id for every request, and its access log line. The id is made here (an id a
//! client sends is not taken, so a log line can always be trusted to name one request), set
//! on the tracing span the request is handled in, sent back as `X-Request-Id`, and put in
//! every problem body, so that a person holding an error answer can find its whole story in
//! the server's log. When the answer's head is ready, one `hangar::access` line records the
//! id, the caller (noted by the credential extractors), the route template, the status and
//! the time taken: fields a JSON log shipper indexes as they are. The same figures feed the
//! server's own metrics (`metrics::HttpMetrics`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument as _;

use crate::auth::Caller;
use crate::metrics::HttpMetrics;

/// The response header that carries the id.
pub const HEADER: &str = "x-request-id";

/// What the task handling a request knows about it.
struct Current {
    id: String,
    /// The caller's user name (`anonymous` for an anonymous reader) and token id.
    caller: RefCell<Option<(String, Option<i64>)>>,
}

tokio::task_local! {
    static CURRENT: Rc<Current>;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|c| c.id.clone()).ok()
}

/// Records who the request turned out to be from, for its access line.
pub fn note_caller(caller: &Caller) {
    let user = caller.user.as_ref().map_or_else(|| "anonymous".to_owned(), ToString::to_string);
    let _ = CURRENT.try_with(|c| *c.caller.borrow_mut() = Some((user, caller.token_id)));
}

/// The middleware: gives the request its id for the time it is handled, then logs it.
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    if let Some(metrics) = &metrics {
        metrics.started();
    }
    let current = Rc::new(Current { id: uuid::Uuid::new_v4().simple().to_string(), caller: RefCell::new(None) });
    let method = req.method().clone();
    let path = req.path().to_owned();
    let span = tracing::info_span!("request", request_id = %current.id, method = %method, path = %path);
    // Handlers' and extractors' errors are responses by now, made in scope. An error still
    // unanswered here is answered by actix later, without an id.
    let answered = CURRENT.scope(current.clone(), next.call(req)).instrument(span).await;
    let (status, route) = match &answered {
        Ok(response) => (response.status(), response.request().match_pattern().map(|p| template(&p))),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let took = started.elapsed();
    let route = route.as_deref().unwrap_or("-");
    if let Some(metrics) = &metrics {
        metrics.done(route, method.as_str(), status.as_u16(), took);
    }
    let caller = current.caller.borrow();
    tracing::info!(
        target: "hangar::access",
        request_id = %current.id,
        method = %method,
        path = %path,
        route,
        status = status.as_u16(),
        duration_ms = took.as_secs_f64() * 1e3,
        user = caller.as_ref().map_or("-", |(user, _)| user.as_str()),
        token_id = caller.as_ref().and_then(|(_, token)| *token),
        "request",
    );
    drop(caller);
    let mut response = answered?;
    if let Ok(value) = HeaderValue::from_str(&current.id) {
        response.headers_mut().insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}

/// A route pattern as people write it: `/models/{model}`, without the segment's regex
/// (`{model:[^/]+(?:/[^/]+)?}`), which may itself hold braces.
fn template(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut depth = 0usize;
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push(c);
                }
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    in_regex = false;
                    out.push(c);
                }
            }
            ':' if depth == 1 => in_regex = true,
            _ if depth == 0 || !in_regex && depth == 1 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn a_route_template_drops_each_segments_regex() {
        assert_eq!(
            template("/api/v1/models/{model:[^/]+(?:/[^/]+)?}/versions/{version}"),
            "/api/v1/models/{model}/versions/{version}"
        );
        assert_eq!(template("/x/{id:[0-9]{1,3}}/y"), "/x/{id}/y");
        assert_eq!(template("/healthz"), "/healthz");
    }
}
