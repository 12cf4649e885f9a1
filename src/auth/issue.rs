//! Issuing API tokens: names, lifetimes, and storing a new token with its secret, which is
//! returned once, here, and never stored. The capping rules live in `ops::tokens`.

use crate::catalog::Db;

use super::now_unix;
use super::token::{Secret, parse_lifetime};
use crate::catalog::tokens::{NewToken, Token};
use crate::catalog::{self, Actor, CatalogError};
use crate::domain::{FreeText, Glob, Lines, Role, UserName};

const MAX_TOKEN_NAME: usize = 100;

/// What someone asks for.
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    pub name: String,
    /// Defaults to the creator's role.
    pub role: Option<String>,
    /// `30d`, `12h`, …; none: never expires.
    pub expires_in: Option<String>,
    pub models: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The token's name: 1-100 bytes of `FreeText` on one line.
pub fn token_name(name: &str) -> Result<&str, IssueError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_TOKEN_NAME {
        return Err(IssueError::Invalid(format!("token name must be 1-{MAX_TOKEN_NAME} bytes of printable text")));
    }
    FreeText::parse("token name", name, Lines::One, MAX_TOKEN_NAME).map_err(|e| IssueError::Invalid(e.to_string()))?;
    Ok(name)
}

/// Unix seconds a lifetime from now.
pub fn expiry(expires_in: Option<&str>) -> Result<Option<i64>, IssueError> {
    expires_in
        .map(|raw| {
            let secs = parse_lifetime(raw).map_err(IssueError::Invalid)?;
            Ok(now_unix().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)))
        })
        .transpose()
}

/// Stores a new token for `user` and returns it with its secret.
pub async fn issue(
    pool: &Db,
    actor: &Actor,
    user: &UserName,
    name: &str,
    role: Role,
    models: Option<&[Glob]>,
    expires_at: Option<i64>,
) -> Result<(Token, Secret), IssueError> {
    let secret = Secret::generate();
    let new = NewToken { user, name, prefix: secret.prefix(), secret_hash: &secret.hash(), role, models, expires_at };
    let token = catalog::tokens::create(pool, actor, new).await?;
    Ok((token, secret))
}
