//! Roles, ordered: what a viewer may do, a maintainer may too, and an admin may do all.

use std::fmt;

/// What a user or token may do: a viewer reads, downloads and infers; a maintainer also creates,
/// uploads, publishes, moves aliases and deploys; an admin also manages users, runtimes and deletes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read, download, infer.
    Viewer,
    /// And create, upload, publish, alias, deploy.
    Maintainer,
    /// And users, runtimes, deletes, protected aliases.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid role {0:?}: use viewer, maintainer or admin")]
pub struct RoleError(String);

impl Role {
    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        match raw {
            "viewer" => Ok(Self::Viewer),
            "maintainer" => Ok(Self::Maintainer),
            "admin" => Ok(Self::Admin),
            other => Err(RoleError(other.chars().take(40).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Maintainer => "maintainer",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Maintainer && Role::Maintainer < Role::Admin);
        for role in [Role::Viewer, Role::Maintainer, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
    }
}
