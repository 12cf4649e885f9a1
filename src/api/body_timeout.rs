//! The body chunk timeout: a request body that stops arriving (a client that promised more
//! bytes than it sends, and stays connected) is cut after a while instead of holding a worker
//! and its staging file forever. The wait is between chunks, so a slow but steady upload of
//! any size is never cut; time the handler spends elsewhere (the disk) does not count.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use crate::error::ApiError;

/// Feeds the handler the request body through the timeout. The handler sees the stall as a
/// failed body and gives up (its staging file goes with it); the answer is then a 408,
/// whatever the handler made of the failure.
pub async fn cut_stalled_bodies(
    timeout: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if matches!(req.parts_mut().1, Payload::None) {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    }
    let stalled = Rc::new(Cell::new(false));
    let body = std::mem::replace(req.parts_mut().1, Payload::None);
    let flag = Rc::clone(&stalled);
    let timed = futures_util::stream::unfold(Some(body), move |body| {
        let flag = Rc::clone(&flag);
        async move {
            let mut body = body?;
            match tokio::time::timeout(timeout, body.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(body))),
                Ok(None) => None,
                Err(_) => {
                    flag.set(true);
                    let stall = io::Error::new(io::ErrorKind::TimedOut, "the request body stopped arriving");
                    Some((Err(PayloadError::Io(stall)), None))
                }
            }
        }
    });
    // Fused: some readers (multipart) poll again after the end.
    let timed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(timed.fuse());
    req.set_payload(Payload::from(timed));
    let response = next.call(req).await?;
    if stalled.get() {
        let error = ApiError::RequestTimeout(format!(
            "no part of the request body arrived for {} s; send it without pausing that long",
            timeout.as_secs()
        ));
        return Ok(response.error_response(error).map_into_boxed_body());
    }
    Ok(response.map_into_boxed_body())
}
