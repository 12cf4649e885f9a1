//! Globs over names: `*` matches any run of characters (`/` included), `?` one character.
//! Used for the models a token is limited to (`team-a/*`) and for protected aliases
//! (`prod*`). The same syntax as SQLite's GLOB for these two wildcards, so lists can be
//! filtered in SQL too.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {0:?}: use 1-128 characters of a name with '*' or '?' as wildcards")]
pub struct GlobError(String);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Glob(String);

impl Glob {
    /// A glob may hold what names hold plus the two wildcards; `[` is refused so SQLite's
    /// GLOB reads it exactly as we do.
    pub fn parse(raw: &str) -> Result<Self, GlobError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/*?".contains(c);
        if raw.is_empty() || raw.len() > 128 || !raw.chars().all(allowed) {
            return Err(GlobError(raw.chars().take(80).collect()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        matches(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative wildcard match with backtracking to the last `*`: linear in practice, and no
/// recursion for a hostile pattern to blow up.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_documented() {
        let cases = [
            ("team-a/*", "team-a/x", true),
            ("team-a/*", "team-b/x", false),
            ("team-a/*", "team-a", false),
            ("prod*", "prod", true),
            ("prod*", "production-eu", true),
            ("prod*", "preprod", false),
            ("*", "anything/at/all", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*x*y", "axbxcy", true),
            ("llama", "llama", true),
            ("llama", "llama2", false),
        ];
        for (glob, name, expected) in cases {
            assert_eq!(Glob::parse(glob).expect("glob").matches(name), expected, "{glob} ~ {name}");
        }
    }

    #[test]
    fn brackets_and_empty_globs_are_refused() {
        for bad in ["", "a[bc]", "a b", &"a".repeat(200)] {
            assert!(Glob::parse(bad).is_err(), "{bad}");
        }
    }
}
