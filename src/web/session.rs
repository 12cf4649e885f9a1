//! The `WebCaller` extractor: the signed-in user of a dashboard request, from the session
//! cookie, with the session's CSRF token for the page's forms. Forms send the token back as
//! a field, checked by `check_csrf`.

use crate::catalog::Db;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::WebError;
use crate::auth::{Caller, session};
use crate::domain::Role;

pub struct WebCaller {
    pub caller: Caller,
    pub csrf: String,
}

/// What the frame of every signed-in page shows: who is signed in, the CSRF token its
/// forms send (sign out included), and whether the admin-only links belong in the nav.
pub struct Frame {
    pub user: String,
    pub csrf: String,
    pub admin: bool,
}

impl WebCaller {
    /// Refuses a form that did not come from one of our pages.
    pub fn check_csrf(&self, presented: &str) -> Result<(), WebError> {
        if session::csrf_matches(&self.csrf, Some(presented)) {
            Ok(())
        } else {
            Err(WebError::forbidden(
                "this form was not sent from a Hangar page (its CSRF token is missing or stale); reload the page and try again",
            ))
        }
    }

    pub fn frame(&self) -> Frame {
        Frame {
            user: self.caller.user.as_ref().map(ToString::to_string).unwrap_or_default(),
            csrf: self.csrf.clone(),
            admin: self.caller.role >= Role::Admin,
        }
    }
}

impl FromRequest for WebCaller {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pool = req.app_data::<web::Data<Db>>().cloned();
        let cookie = req.cookie(session::COOKIE).map(|c| c.value().to_owned());
        let remote_addr = crate::forwarded::client_origin(req).addr_string();
        let next = req.uri().path_and_query().map_or_else(|| "/".to_owned(), ToString::to_string);
        Box::pin(async move {
            let (Some(pool), Some(cookie)) = (pool, cookie) else { return Err(WebError::SignIn { next }) };
            match session::resume(&pool, &cookie, remote_addr).await? {
                Some((caller, csrf)) => {
                    crate::request_id::note_caller(&caller);
                    Ok(Self { caller, csrf })
                }
                None => Err(WebError::SignIn { next }),
            }
        })
    }
}
