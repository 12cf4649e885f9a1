//! Names of models, versions and aliases, with the grammar of DESIGN.md's Concepts.

use std::fmt;

/// Why a name was refused; the message says what a valid name looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {shown:?}: {reason}")]
pub struct NameError {
    kind: &'static str,
    shown: String,
    reason: String,
}

impl NameError {
    fn new(kind: &'static str, raw: &str, reason: impl Into<String>) -> Self {
        // Echo at most 80 characters back so a 10 kB name does not become a 10 kB error.
        let shown: String = raw.chars().take(80).collect();
        Self { kind, shown, reason: reason.into() }
    }
}

/// Sub-resource words that follow a model name in URLs; a model segment may not be one,
/// or `/models/team/versions` would be ambiguous.
const RESERVED_SEGMENTS: [&str; 2] = ["versions", "aliases"];

/// `[a-z0-9][a-z0-9._-]{0,62}`, optionally prefixed by a team: `team/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ModelName(String);

impl ModelName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let err = |reason: &str| NameError::new("model", raw, reason);
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > 2 {
            return Err(err("use at most one '/', as in team/name"));
        }
        for segment in &segments {
            check_segment(segment).map_err(|reason| err(&reason))?;
            if RESERVED_SEGMENTS.contains(segment) {
                return Err(err(&format!("'{segment}' is reserved by the API")));
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The team part of `team/name`, if any.
    pub fn team(&self) -> Option<&str> {
        self.0.split_once('/').map(|(team, _)| team)
    }
}

fn check_segment(segment: &str) -> Result<(), String> {
    const RULE: &str = "use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";
    let mut chars = segment.chars();
    match chars.next() {
        None => return Err(format!("a name part is empty; {RULE}")),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return Err(format!("it starts with {c:?}; {RULE}"));
        }
        Some(_) => {}
    }
    if segment.len() > 63 {
        return Err(format!("it is {} characters long; {RULE}", segment.len()));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))) {
        return Err(format!("it contains {c:?}; {RULE}"));
    }
    Ok(())
}

/// A version of a model: `[A-Za-z0-9][A-Za-z0-9._+-]{0,63}` (`1`, `1.3.0`, `2026-11-28`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct VersionName(String);

impl VersionName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        const RULE: &str = "use 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit";
        let err = |reason: String| NameError::new("version", raw, reason);
        let mut chars = raw.chars();
        match chars.next() {
            None => return Err(err(format!("it is empty; {RULE}"))),
            Some(c) if !c.is_ascii_alphanumeric() => {
                return Err(err(format!("it starts with {c:?}; {RULE}")));
            }
            Some(_) => {}
        }
        if raw.len() > 64 {
            return Err(err(format!("it is {} characters long; {RULE}", raw.len())));
        }
        if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || "._+-".contains(*c))) {
            return Err(err(format!("it contains {c:?}; {RULE}")));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The version that follows `n` when a client leaves the name out.
    pub fn numbered(n: i64) -> Self {
        Self(n.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An alias of a model (`prod`, `staging`, `champion`): starts with a lowercase letter, so it
/// can never be mistaken for a version number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AliasName(String);

impl AliasName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        const RULE: &str = "use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter";
        let err = |reason: String| NameError::new("alias", raw, reason);
        match raw.chars().next() {
            None => return Err(err(format!("it is empty; {RULE}"))),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(err(format!("it starts with {c:?}; {RULE}")));
            }
            Some(_) => {}
        }
        check_segment(raw).map_err(|_| err(RULE.to_owned()))?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's login name: one segment of a model name's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check_segment(raw).map_err(|reason| NameError::new("user", raw, reason))?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A deployment's name: the route name in the gateway, the `{served_name}` a runtime is
/// told, and the container's name (`hangar-<name>`), so one segment of a model name's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DeploymentName(String);

impl DeploymentName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check_segment(raw).map_err(|reason| NameError::new("deployment", raw, reason))?;
        Ok(Self(raw.to_owned()))
    }

    /// The default name for a deployment of `model`: its name with `/` as `-`.
    pub fn for_model(model: &ModelName) -> Result<Self, NameError> {
        Self::parse(&model.as_str().replace('/', "-"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A node: one Hangar server with its own Docker engine and GPUs, sharing the catalog with
/// the others. Named in its settings (`node`); deployments carry the name of the node that
/// runs them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check_segment(raw).map_err(|reason| NameError::new("node", raw, reason))?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_as_str {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_as_str!(ModelName, VersionName, AliasName, UserName, DeploymentName, NodeName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_that_parse() {
        for ok in ["llama", "llama-3.1-8b", "team-a/llama", "0x", "a_b", &"a".repeat(63)] {
            assert!(ModelName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn model_names_that_are_refused_say_why() {
        let cases = [
            ("Llama", "starts with 'L'"),
            ("has space", "contains ' '"),
            ("", "empty"),
            ("..", "starts with '.'"),
            ("-x", "starts with '-'"),
            ("a/b/c", "at most one '/'"),
            ("a/", "empty"),
            ("/a", "empty"),
            ("team/versions", "reserved"),
            ("a\0b", "contains '\\0'"),
        ];
        for (bad, why) in cases {
            let err = ModelName::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = "a".repeat(200);
        let err = ModelName::parse(&long).expect_err("200 chars").to_string();
        assert!(err.contains("200 characters long"), "{err}");
        assert!(err.len() < 300, "the error does not echo the whole name");
    }

    #[test]
    fn version_names() {
        for ok in ["1", "1.3.0", "2026-11-28", "v2+cuda", "RC1"] {
            assert!(VersionName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".1", "-1", "1/2", "a b", &"1".repeat(65)] {
            assert!(VersionName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alias_names_start_with_a_letter() {
        for ok in ["prod", "staging", "champion", "prod-eu.2"] {
            assert!(AliasName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1", "Prod", "-x", "a/b", "a b"] {
            assert!(AliasName::parse(bad).is_err(), "{bad}");
        }
    }
}
