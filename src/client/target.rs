//! `model`, `model:version` and `model@alias` on the command line: [`ModelRef`] parses the
//! syntax; this adds what a bare model means to the client (its newest version).

use std::fmt;

use super::error::ClientError;
use crate::domain::{self, AliasName, ModelName, ModelRef, VersionName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest published version.
    Latest,
    Version(VersionName),
    Alias(AliasName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub model: ModelName,
    pub selector: Selector,
}

impl Target {
    /// Parsed by [`ModelRef`], the one parser of this syntax; a bare model means its newest version.
    pub fn parse(raw: &str) -> Result<Self, ClientError> {
        let ModelRef { model, target } =
            ModelRef::parse(raw).map_err(|e| ClientError::Usage(format!("'{raw}': {e}")))?;
        let selector = match target {
            None => Selector::Latest,
            Some(domain::Target::Version(v)) => Selector::Version(v),
            Some(domain::Target::Alias(a)) => Selector::Alias(a),
        };
        Ok(Self { model, selector })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Latest => write!(f, "{}", self.model),
            Selector::Version(v) => write!(f, "{}:{v}", self.model),
            Selector::Alias(a) => write!(f, "{}@{a}", self.model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_at_the_first_colon_or_at_sign() {
        let t = Target::parse("team/m:1.2+cu").expect("version");
        assert_eq!(
            (t.model.as_str(), t.selector),
            ("team/m", Selector::Version(VersionName::parse("1.2+cu").expect("v")))
        );
        let t = Target::parse("m@prod").expect("alias");
        assert_eq!(t.selector, Selector::Alias(AliasName::parse("prod").expect("a")));
        assert_eq!(Target::parse("m").expect("latest").selector, Selector::Latest);
        for round in ["m", "team/m:3", "m@staging"] {
            assert_eq!(Target::parse(round).expect(round).to_string(), round);
        }
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for bad in ["", "M", "m:", "m@", "m@1", "m:1@prod", "m@prod:1", "a/b/c", ":1"] {
            assert!(matches!(Target::parse(bad), Err(ClientError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn a_usage_error_quotes_the_target_it_refuses() {
        let Err(ClientError::Usage(message)) = Target::parse("m@1prod") else { panic!("m@1prod parsed") };
        assert!(message.starts_with("'m@1prod': "), "{message}");
    }
}
