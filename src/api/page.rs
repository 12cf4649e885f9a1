//! Pagination parameters, and the envelopes of list answers: a page, or all the items.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// `?limit=&cursor=`, plus `q=` where the list is searchable.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Words to look for in names and descriptions.
    pub q: Option<String>,
    /// Items per page: 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n @ 1..=MAX_LIMIT) => Ok(n),
            Some(n) => Err(ApiError::BadRequest(format!("limit={n} is out of range; use 1 to {MAX_LIMIT}"))),
        }
    }

    /// The catalog's cursor inside the opaque one we handed out.
    pub fn cursor(&self) -> Result<Option<String>, ApiError> {
        let Some(raw) = &self.cursor else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("cursor is not one this server issued; start again without it".into()))
    }
}

/// A page of items and the cursor for the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A whole list, unpaged.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Items<T> {
    pub fn new<U>(items: impl IntoIterator<Item = U>, view: impl FnMut(U) -> T) -> Self {
        Self { items: items.into_iter().map(view).collect() }
    }
}

impl<T> PageView<T> {
    pub fn new<U>(page: crate::catalog::Page<U>, view: impl FnMut(U) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(view).collect(),
            next_cursor: page.next.map(|c| URL_SAFE_NO_PAD.encode(c)),
        }
    }
}
