//! The `Caller` extractor for the API and the gateway: `Authorization: Bearer hgr_…`, or
//! the dashboard's session cookie, which on unsafe methods must come with the session's
//! CSRF token in `X-CSRF-Token`. Without credentials, a request is refused with 401,
//! unless it only reads and `anonymous_read` is on.

use crate::catalog::Db;
use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::{Authenticator, Caller, session};
use crate::config::Settings;
use crate::error::ApiError;

pub const CSRF_HEADER: &str = "x-csrf-token";

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let pool = req.app_data::<web::Data<Db>>().cloned();
        let anonymous_read = req.app_data::<web::Data<Settings>>().is_some_and(|s| s.anonymous_read);
        let reads_only = matches!(*req.method(), Method::GET | Method::HEAD);
        let remote_addr = crate::forwarded::client_origin(req).addr_string();
        let presented = req.headers().get(header::AUTHORIZATION).map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_owned())
        });
        let cookie = req.cookie(session::COOKIE).map(|c| c.value().to_owned());
        let csrf = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Box::pin(async move {
            let caller: Result<Caller, ApiError> = async move {
                let missing = || ApiError::internal(anyhow::anyhow!("the app has no Authenticator or pool registered"));
                let authenticator = authenticator.ok_or_else(missing)?;
                match (presented, cookie) {
                (Some(Some(token)), _) => Ok(authenticator.authenticate(&token, remote_addr).await?),
                (Some(None), _) => {
                    Err(ApiError::Unauthorized("the Authorization header must be 'Bearer hgr_…'".into()))
                }
                (None, Some(cookie)) => {
                    let pool = pool.ok_or_else(missing)?;
                    match session::resume(&pool, &cookie, remote_addr.clone()).await? {
                        Some((caller, expected)) if reads_only || session::csrf_matches(&expected, csrf.as_deref()) => {
                            Ok(caller)
                        }
                        Some(_) => Err(ApiError::Forbidden(
                            "a browser request that changes something needs the page's CSRF token in X-CSRF-Token"
                                .into(),
                        )),
                        None if anonymous_read && reads_only => Ok(Caller::anonymous(remote_addr)),
                        None => Err(ApiError::Unauthorized("the session has expired; sign in again".into())),
                    }
                }
                (None, None) if anonymous_read && reads_only => Ok(Caller::anonymous(remote_addr)),
                (None, None) => Err(ApiError::Unauthorized(
                    "this needs credentials: send Authorization: Bearer hgr_… (create a token with POST /api/v1/login)"
                        .into(),
                )),
            }
            }
            .await;
            if let Ok(caller) = &caller {
                crate::request_id::note_caller(caller);
            }
            caller
        })
    }
}
