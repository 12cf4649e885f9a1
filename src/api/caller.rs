//! The `Caller` extractor: authenticates `Authorization: Bearer hgr_…` with the app's
//! `Authenticator`. Without credentials, a request is refused with 401, unless it only reads
//! and `anonymous_read` is on.

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::{Authenticator, Caller};
use crate::config::Settings;
use crate::error::ApiError;

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let anonymous_read = req.app_data::<web::Data<Settings>>().is_some_and(|s| s.anonymous_read);
        let reads_only = matches!(*req.method(), Method::GET | Method::HEAD);
        let remote_addr = req.peer_addr().map(|a| a.ip().to_string());
        let presented = req.headers().get(header::AUTHORIZATION).map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_owned())
        });
        Box::pin(async move {
            let authenticator =
                authenticator.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no Authenticator registered")))?;
            match presented {
                None if anonymous_read && reads_only => Ok(Caller::anonymous(remote_addr)),
                None => Err(ApiError::Unauthorized(
                    "this needs credentials: send Authorization: Bearer hgr_… (create a token with POST /api/v1/login)"
                        .into(),
                )),
                Some(None) => Err(ApiError::Unauthorized("the Authorization header must be 'Bearer hgr_…'".into())),
                Some(Some(token)) => Ok(authenticator.authenticate(&token, remote_addr).await?),
            }
        })
    }
}
