//! A request id for every request: made here (an id a client sends is not taken, so a log
//! line can always be trusted to name one request), set on the tracing span the request is
//! handled in, sent back as `X-Request-Id`, and put in every problem body, so that a person
//! holding an error answer can find its whole story in the server's log.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument as _;

/// The response header that carries the id.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The middleware: gives the request its id for the time it is handled.
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    // Handlers' and extractors' errors are responses by now, made in scope. An error still
    // unanswered here is answered by actix later, without an id.
    let mut response = CURRENT.scope(id.clone(), next.call(req)).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}
