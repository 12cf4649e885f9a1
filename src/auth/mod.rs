//! Who is calling and what they may do: passwords (argon2id), API tokens (`hgr_…`, stored
//! as sha256), the authenticated `Caller` and its role and model checks, the login rate
//! limiter, and first-start bootstrap. Nothing here knows HTTP: `api/caller.rs` extracts a
//! `Caller` from a request with this module's `Authenticator`.

mod authenticator;
mod bootstrap;
pub mod issue;
mod limiter;
pub mod login;
pub mod password;
pub mod session;
pub mod token;

pub use authenticator::Authenticator;
pub(crate) use authenticator::now_unix;
pub use bootstrap::{Bootstrapped, bootstrap};
pub use limiter::LoginLimiter;

use crate::catalog::Actor;
use crate::domain::{Glob, ModelName, Role, UserName};

/// Why a caller may not do what they asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable credentials (401): missing, malformed, unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// Known caller, not allowed (403); the message says what is needed.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins (429).
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The credentials could not be checked: the catalog's database did not answer (503).
    /// Not a 401, which would tell a client to throw away a token that may be good.
    #[error("{0}")]
    Unavailable(String),
}

/// The authenticated party of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Option<i64>,
    /// `None` for an anonymous reader (`anonymous_read = true`).
    pub user: Option<UserName>,
    /// The token's role, capped by its user's current role.
    pub role: Role,
    pub token_id: Option<i64>,
    /// Model-name globs the token is limited to; `None`: every model.
    pub models: Option<Vec<Glob>>,
    /// When the token stops working (Unix seconds); `None`: never, or not a token.
    pub expires_at: Option<i64>,
    pub remote_addr: Option<String>,
}

impl Caller {
    /// A caller with no credentials, allowed to read because `anonymous_read` is on.
    pub fn anonymous(remote_addr: Option<String>) -> Self {
        Self {
            user_id: None,
            user: None,
            role: Role::Viewer,
            token_id: None,
            models: None,
            expires_at: None,
            remote_addr,
        }
    }

    /// The user behind the call; anonymous callers have none.
    pub fn user(&self) -> Result<&UserName, AuthError> {
        self.user.as_ref().ok_or_else(|| AuthError::Unauthenticated("sign in or send a token for this".into()))
    }

    /// At least `role`, on any model.
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.role >= role {
            return Ok(());
        }
        match &self.user {
            None => Err(AuthError::Unauthenticated(format!("this needs the {role} role; send a token that has it"))),
            Some(user) => Err(AuthError::Forbidden(format!(
                "this needs the {role} role; {} has {}",
                match self.token_id {
                    Some(id) => format!("token {id} of '{user}'"),
                    None => format!("'{user}'"),
                },
                self.role
            ))),
        }
    }

    /// At least `role`, and `model` within the token's globs.
    pub fn require_on(&self, role: Role, model: &ModelName) -> Result<(), AuthError> {
        self.require(role)?;
        match &self.models {
            Some(globs) if !globs.iter().any(|g| g.matches(model.as_str())) => Err(AuthError::Forbidden(format!(
                "this token is limited to models {}; it cannot touch '{model}'",
                globs.iter().map(Glob::as_str).collect::<Vec<_>>().join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// The admin role through a credential without model globs: what instance-wide
    /// operations need (users, other users' tokens, runtimes, webhooks, settings, GC), since
    /// they reach every model. `what` names the operation in the refusal.
    pub fn require_instance_admin(&self, what: &str) -> Result<(), AuthError> {
        self.require(Role::Admin)?;
        self.require_unscoped(what)
    }

    /// A credential without model globs: what reading totals over every model needs
    /// (`/metrics`). `what` names the operation in the refusal.
    pub fn require_unscoped(&self, what: &str) -> Result<(), AuthError> {
        match &self.models {
            None => Ok(()),
            Some(_) => Err(AuthError::Forbidden(format!(
                "a token limited to some models cannot {what}, which reaches every model; \
                 use a token without model globs"
            ))),
        }
    }

    /// Whether this caller may see what concerns the whole instance: events of no model
    /// (users, tokens, runtimes), other users' tokens.
    pub fn is_instance_admin(&self) -> bool {
        self.role >= Role::Admin && self.models.is_none()
    }

    /// Who to record in the audit log for this call.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id,
            user: Some(self.user.as_ref().map_or_else(|| "anonymous".to_owned(), ToString::to_string)),
            token_id: self.token_id,
            remote_addr: self.remote_addr.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, models: Option<&[&str]>) -> Caller {
        Caller {
            user_id: Some(1),
            user: Some(UserName::parse("ci").expect("name")),
            role,
            token_id: Some(7),
            models: models.map(|m| m.iter().map(|g| Glob::parse(g).expect("glob")).collect()),
            expires_at: None,
            remote_addr: None,
        }
    }

    #[test]
    fn roles_are_checked_and_the_refusal_names_what_is_needed() {
        assert!(caller(Role::Maintainer, None).require(Role::Viewer).is_ok());
        let err = caller(Role::Viewer, None).require(Role::Maintainer).expect_err("too little");
        assert_eq!(err, AuthError::Forbidden("this needs the maintainer role; token 7 of 'ci' has viewer".into()));
        let anonymous = Caller::anonymous(None).require(Role::Maintainer).expect_err("anonymous");
        assert!(matches!(anonymous, AuthError::Unauthenticated(_)));
    }

    #[test]
    fn model_globs_limit_a_token() {
        let ci = caller(Role::Maintainer, Some(&["team-a/*"]));
        let a = ModelName::parse("team-a/x").expect("name");
        let b = ModelName::parse("team-b/x").expect("name");
        assert!(ci.require_on(Role::Maintainer, &a).is_ok());
        let err = ci.require_on(Role::Viewer, &b).expect_err("outside");
        assert!(err.to_string().contains("limited to models team-a/*; it cannot touch 'team-b/x'"), "{err}");
    }

    #[test]
    fn instance_wide_operations_need_an_admin_without_model_globs() {
        assert!(caller(Role::Admin, None).require_instance_admin("manage users").is_ok());
        let scoped = caller(Role::Admin, Some(&["team-a/*"])).require_instance_admin("manage users");
        let err = scoped.expect_err("scoped");
        assert!(matches!(&err, AuthError::Forbidden(m) if m.contains("cannot manage users")), "{err}");
        let maintainer = caller(Role::Maintainer, None).require_instance_admin("manage users");
        assert!(matches!(maintainer, Err(AuthError::Forbidden(_))));
    }
}
