//! `sha256:<hex>` digests: the name of every blob, and what clients send to have their
//! bytes verified (`?digest=` or RFC 9530's `Content-Digest`).

use std::fmt;

use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
    Malformed(String),
    #[error("invalid Content-Digest header: expected sha-256=:<base64 of 32 bytes>:")]
    MalformedContentDigest,
}

/// A sha256 digest. Shown as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses `sha256:<hex>`, the form used everywhere in the API.
    pub fn parse(raw: &str) -> Result<Self, DigestError> {
        let malformed = || DigestError::Malformed(raw.chars().take(80).collect());
        let hex_part = raw.strip_prefix("sha256:").ok_or_else(malformed)?;
        Self::parse_hex(hex_part).ok_or_else(malformed)
    }

    /// Parses bare lowercase hex, as in blob paths.
    pub fn parse_hex(hex_part: &str) -> Option<Self> {
        if hex_part.len() != 64 || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// Parses an RFC 9530 `Content-Digest` header. Only `sha-256` is ours to check; a header
    /// that lists other algorithms alongside it is fine, one without it is `Ok(None)`.
    pub fn from_content_digest(header: &str) -> Result<Option<Self>, DigestError> {
        for member in header.split(',') {
            let Some((algorithm, value)) = member.trim().split_once('=') else {
                return Err(DigestError::MalformedContentDigest);
            };
            if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
                continue;
            }
            let encoded = value
                .trim()
                .strip_prefix(':')
                .and_then(|v| v.strip_suffix(':'))
                .ok_or(DigestError::MalformedContentDigest)?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| DigestError::MalformedContentDigest)?;
            let bytes: [u8; 32] = decoded.try_into().map_err(|_| DigestError::MalformedContentDigest)?;
            return Ok(Some(Self(bytes)));
        }
        Ok(None)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_the_api_form() {
        let d = Digest::parse(&format!("sha256:{EMPTY}")).expect("valid");
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
    }

    #[test]
    fn refuses_malformed_digests() {
        for bad in ["", EMPTY, "sha256:", "sha256:abc", "md5:00", &format!("sha256:{}", EMPTY.to_uppercase())] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_rfc_9530_content_digest() {
        let header = "sha-512=:AAAA:, sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";
        let d = Digest::from_content_digest(header).expect("valid").expect("has sha-256");
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(Digest::from_content_digest("sha-512=:AAAA:"), Ok(None));
        assert!(Digest::from_content_digest("sha-256=:nope:").is_err());
        assert!(Digest::from_content_digest("sha-256=47DEQpj8").is_err());
    }
}
