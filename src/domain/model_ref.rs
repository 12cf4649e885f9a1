//! `model`, `model@alias` or `model:version`: how people and clients name a model and,
//! optionally, one of its versions. Parsed here once for every front end.

use std::fmt;

use super::names::{AliasName, ModelName, NameError, VersionName};

/// Which version of a model: a pinned one, or whatever an alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version(VersionName),
    Alias(AliasName),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, ":{v}"),
            Self::Alias(a) => write!(f, "@{a}"),
        }
    }
}

/// A model, and the version it names if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub model: ModelName,
    pub target: Option<Target>,
}

impl ModelRef {
    /// Splits at the first `@` (an alias follows) or `:` (a version follows); neither can
    /// appear in a model name.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let (model, target) = match raw.find(['@', ':']) {
            None => (raw, None),
            Some(at) => {
                let rest = &raw[at + 1..];
                let target = if raw[at..].starts_with('@') {
                    Target::Alias(AliasName::parse(rest)?)
                } else {
                    Target::Version(VersionName::parse(rest)?)
                };
                (&raw[..at], Some(target))
            }
        };
        Ok(Self { model: ModelName::parse(model)?, target })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(target) => write!(f, "{}{target}", self.model),
            None => write!(f, "{}", self.model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_an_alias_or_a_version_parse_and_print_back() {
        for raw in ["team/m", "team/m@prod", "m:1.2.0+cu121", "m:2026-11-28"] {
            assert_eq!(ModelRef::parse(raw).expect(raw).to_string(), raw);
        }
        let pinned = ModelRef::parse("m:3").expect("pinned");
        assert_eq!(pinned.target, Some(Target::Version(VersionName::parse("3").expect("version"))));
        let follows = ModelRef::parse("team/m@staging").expect("alias");
        assert_eq!(follows.model.as_str(), "team/m");
        assert_eq!(follows.target, Some(Target::Alias(AliasName::parse("staging").expect("alias"))));
    }

    #[test]
    fn malformed_references_are_refused() {
        for raw in ["", "m@", "m:", "@prod", ":1", "m@1prod", "m@prod:1", "m:1@prod", "M@prod"] {
            assert!(ModelRef::parse(raw).is_err(), "{raw:?} parsed");
        }
    }
}
