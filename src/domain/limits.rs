//! Fair-use limits on the gateway: who they bind (a user, or one token) and how much
//! (requests per minute, tokens per day, requests at once). Parsed here, so a bad limit is a
//! 400 saying why and nothing stored.

use std::fmt;

use super::names::{NameError, UserName};

/// Whom a limit binds: every token of a user together, or one token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(UserName),
    Token(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("limit subject {0:?} is not user:NAME or token:ID")]
    Subject(String),
    #[error(transparent)]
    User(#[from] NameError),
    #[error("{0} must be a whole number of at least 1 (leave it out for no limit)")]
    Value(&'static str),
    #[error("a limit needs at least one of requests_per_minute, tokens_per_day, concurrent")]
    Empty,
}

impl Subject {
    pub fn parse(raw: &str) -> Result<Self, LimitError> {
        match raw.split_once(':') {
            Some(("user", name)) => Ok(Self::User(UserName::parse(name)?)),
            Some(("token", id)) => id
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .map(Self::Token)
                .ok_or_else(|| LimitError::Subject(raw.chars().take(80).collect())),
            _ => Err(LimitError::Subject(raw.chars().take(80).collect())),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(name) => write!(f, "user:{name}"),
            Self::Token(id) => write!(f, "token:{id}"),
        }
    }
}

/// How much a subject may use; `None`: no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per calendar minute (UTC).
    pub requests_per_minute: Option<u64>,
    /// Prompt and completion tokens per calendar day (UTC), as the servers report them.
    pub tokens_per_day: Option<u64>,
    /// Requests in flight at once.
    pub concurrent: Option<u64>,
}

impl Limits {
    /// Checks a limit as given: each value at least 1, and at least one set.
    pub fn checked(self) -> Result<Self, LimitError> {
        for (name, value) in [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_day", self.tokens_per_day),
            ("concurrent", self.concurrent),
        ] {
            if value == Some(0) || value.is_some_and(|v| i64::try_from(v).is_err()) {
                return Err(LimitError::Value(name));
            }
        }
        if self == Self::default() {
            return Err(LimitError::Empty);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_limits_parse_and_bad_ones_say_why() {
        assert_eq!(Subject::parse("token:12"), Ok(Subject::Token(12)));
        assert_eq!(Subject::parse("user:vera").map(|s| s.to_string()), Ok("user:vera".to_owned()));
        for bad in ["vera", "token:x", "token:-1", "group:a", "user:"] {
            assert!(Subject::parse(bad).is_err(), "{bad}");
        }
        assert!(Limits { concurrent: Some(0), ..Limits::default() }.checked().is_err());
        assert_eq!(Limits::default().checked(), Err(LimitError::Empty));
        assert!(Limits { requests_per_minute: Some(10), ..Limits::default() }.checked().is_ok());
    }
}
