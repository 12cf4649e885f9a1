//! The OpenAPI schemas of the string types: each one's grammar as a pattern, with an example
//! (the examples name the same model, version and file, so a generated request can hit data
//! that exists). A pattern cannot say everything a parser checks (reserved words, `..`
//! segments, lengths in bytes): the description says the rest, and the parser stays the
//! authority.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::{AliasName, DeploymentName, Digest, Glob, ModelName, NodeName, RelPath, UserName, VersionName};

/// One lowercase name segment: models (each side of `team/name`), users, deployments.
const SEGMENT: &str = "[a-z0-9][a-z0-9._-]{0,62}";

struct StringSchema {
    pattern: String,
    description: &'static str,
    examples: &'static [&'static str],
    max_length: Option<usize>,
}

impl StringSchema {
    fn build(self) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(self.pattern))
            .max_length(self.max_length)
            .description(Some(self.description))
            .examples(self.examples.iter().copied())
            .into()
    }
}

macro_rules! string_schema {
    ($($ty:ty => $schema:expr;)*) => {$(
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema.build()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    )*};
}

string_schema! {
    ModelName => StringSchema {
        pattern: format!("^{SEGMENT}(/{SEGMENT})?$"),
        description: "A model: `name` or `team/name`, each part 1-63 lowercase letters, digits, `.`, `_` or `-`, \
                      starting with a letter or digit; `versions` and `aliases` are reserved. In a URL the `/` \
                      may be sent as `%2F`.",
        examples: &["demo", "team-a/demo"],
        max_length: Some(127),
    };
    VersionName => StringSchema {
        pattern: "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$".to_owned(),
        description: "A version of a model (`1`, `1.3.0`, `2026-11-28`): 1-64 letters, digits, `.`, `_`, `+` or \
                      `-`, starting with a letter or digit.",
        examples: &["1"],
        max_length: Some(64),
    };
    AliasName => StringSchema {
        pattern: "^[a-z][a-z0-9._-]{0,62}$".to_owned(),
        description: "An alias of a model (`prod`, `staging`): 1-63 lowercase letters, digits, `.`, `_` or `-`, \
                      starting with a letter, so never mistaken for a version number.",
        examples: &["prod"],
        max_length: Some(63),
    };
    UserName => StringSchema {
        pattern: format!("^{SEGMENT}$"),
        description: "A user's login name: 1-63 lowercase letters, digits, `.`, `_` or `-`, starting with a \
                      letter or digit.",
        examples: &["vera"],
        max_length: Some(63),
    };
    DeploymentName => StringSchema {
        pattern: format!("^{SEGMENT}$"),
        description: "A deployment: its route name in the gateway and its container's name (`hangar-<name>`); \
                      1-63 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit.",
        examples: &["demo"],
        max_length: Some(63),
    };
    NodeName => StringSchema {
        pattern: format!("^{SEGMENT}$"),
        description: "A node: one Hangar server with its own Docker engine and GPUs, named in its settings; \
                      1-63 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit.",
        examples: &["spark-1"],
        max_length: Some(63),
    };
    RelPath => StringSchema {
        pattern: r"^[^/\\\u0000-\u001f\u007f-\u009f]+(/[^/\\\u0000-\u001f\u007f-\u009f]+){0,15}$".to_owned(),
        description: "A file's path inside a version: relative, `/`-separated, at most 512 bytes and 16 \
                      segments; no `.` or `..` segment, no `\\`, no control character.",
        examples: &["weights.bin", "notes/a.txt"],
        max_length: Some(512),
    };
    Glob => StringSchema {
        pattern: r"^[A-Za-z0-9._/*?-]{1,128}$".to_owned(),
        description: "A glob over names: `*` matches any run of characters (`/` included), `?` one character.",
        examples: &["team-a/*"],
        max_length: Some(128),
    };
}

impl utoipa::PartialSchema for Digest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^sha256:[0-9a-f]{64}$"))
            .description(Some("A sha256 digest: `sha256:` and 64 lowercase hex digits; the name of a blob."))
            .examples(["sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"])
            .into()
    }
}

impl utoipa::ToSchema for Digest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Digest")
    }
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    /// Each schema's examples are values its own parser accepts.
    #[test]
    fn every_example_parses() {
        let examples = |schema: RefOr<Schema>| -> Vec<String> {
            let json = serde_json::to_value(schema).expect("json");
            let examples = json["examples"].as_array().expect("examples").iter();
            examples.map(|e| e.as_str().expect("a string").to_owned()).collect()
        };
        let all = |schema: RefOr<Schema>, parses: &dyn Fn(&str) -> bool| {
            examples(schema).iter().for_each(|e| assert!(parses(e), "{e}"));
        };
        all(ModelName::schema(), &|e| ModelName::parse(e).is_ok());
        all(VersionName::schema(), &|e| VersionName::parse(e).is_ok());
        all(AliasName::schema(), &|e| AliasName::parse(e).is_ok());
        all(UserName::schema(), &|e| UserName::parse(e).is_ok());
        all(DeploymentName::schema(), &|e| DeploymentName::parse(e).is_ok());
        all(RelPath::schema(), &|e| RelPath::parse(e).is_ok());
        all(Glob::schema(), &|e| Glob::parse(e).is_ok());
        all(Digest::schema(), &|e| Digest::parse(e).is_ok());
    }
}
