//! A file's path inside a version: the only thing a client names that becomes a path on
//! our disk (in `snapshots/`), so it is parsed strictly.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid file path {shown:?}: {reason}")]
pub struct RelPathError {
    shown: String,
    reason: &'static str,
}

/// A relative path: UTF-8 without U+FFFD, `/`-separated, no `.` or `..` segment, no leading `/`, no empty
/// segment, no `\` or NUL or other control character, ≤ 512 bytes, ≤ 16 segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RelPath(String);

pub const MAX_PATH_BYTES: usize = 512;
pub const MAX_SEGMENTS: usize = 16;

impl RelPath {
    pub fn parse(raw: &str) -> Result<Self, RelPathError> {
        let err = |reason| RelPathError { shown: raw.chars().take(80).collect(), reason };
        if raw.is_empty() {
            return Err(err("it is empty"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(err("it is longer than 512 bytes"));
        }
        if raw.starts_with('/') {
            return Err(err("it starts with '/'; paths are relative to the version"));
        }
        if raw.contains('\\') {
            return Err(err("it contains '\\'; separate folders with '/'"));
        }
        // The router decodes `%XX` escapes that are not UTF-8 lossily, as U+FFFD: refusing it
        // keeps two different byte strings from landing on one name.
        if raw.contains(char::REPLACEMENT_CHARACTER) {
            return Err(err("it is not valid UTF-8 (or contains U+FFFD)"));
        }
        if raw.chars().any(char::is_control) {
            return Err(err("it contains a NUL or another control character"));
        }
        let mut segments = 0;
        for segment in raw.split('/') {
            segments += 1;
            match segment {
                "" => return Err(err("it has an empty segment ('//' or a trailing '/')")),
                "." | ".." => return Err(err("it has a '.' or '..' segment")),
                _ => {}
            }
        }
        if segments > MAX_SEGMENTS {
            return Err(err("it has more than 16 segments"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_model_paths() {
        for ok in ["model.safetensors", "tokenizer/vocab.json", "a/b/c/d.gguf", "README.md", "名前.bin", "x..y"] {
            assert!(RelPath::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_every_escape() {
        let long = "a".repeat(600);
        let deep = vec!["a"; 40].join("/");
        let cases = [
            ("../x", "'..'"),
            ("a/../../b", "'..'"),
            ("/etc/passwd", "starts with '/'"),
            ("a\\b", "'\\'"),
            ("a\0b", "NUL"),
            (long.as_str(), "512 bytes"),
            (deep.as_str(), "16 segments"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("./a", "'.'"),
            ("", "empty"),
            ("a\u{FFFD}\u{FFFD}", "UTF-8"),
        ];
        for (bad, why) in cases {
            let err = RelPath::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
