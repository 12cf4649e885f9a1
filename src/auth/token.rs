//! API token secrets: `hgr_` and 43 base64url characters (32 random bytes). Only their
//! sha256 is stored; the first 12 characters are kept to find and to show them.

use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};

pub const PREFIX: &str = "hgr_";
const SECRET_CHARS: usize = 43;
const SHOWN_CHARS: usize = 12;

/// A token as presented by a client: well-formed, not yet known to be valid.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token, not even in a debug log.
        write!(f, "Secret({}…)", self.prefix())
    }
}

impl Secret {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Accepts `hgr_` followed by at least 43 base64url characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(PREFIX)?;
        let well_formed = body.len() >= SECRET_CHARS
            && body.len() <= 256
            && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// The part that may be shown and stored in clear: `hgr_` and 8 characters.
    pub fn prefix(&self) -> &str {
        &self.0[..SHOWN_CHARS]
    }

    /// sha256 of the whole token, as stored.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The token itself, to hand to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Parses a lifetime such as `90s`, `15m`, `12h`, `30d` or `2w` into seconds.
pub fn parse_lifetime(raw: &str) -> Result<u64, String> {
    let invalid = || format!("invalid lifetime {raw:?}: use a number and s, m, h, d or w, such as 30d");
    let raw = raw.trim();
    let unit = raw.chars().last().ok_or_else(invalid)?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(invalid()),
    };
    let n: u64 = raw[..raw.len() - 1].parse().map_err(|_| invalid())?;
    if n == 0 {
        return Err(invalid());
    }
    n.checked_mul(factor)
        .filter(|s| *s <= 10 * 365 * 86_400)
        .ok_or_else(|| format!("lifetime {raw:?} is over 10 years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hide_their_secret_in_debug() {
        let secret = Secret::generate();
        assert_eq!(secret.expose().len(), 4 + 43);
        let parsed = Secret::parse(secret.expose()).expect("parses");
        assert_eq!(parsed.hash(), secret.hash());
        assert_eq!(secret.prefix().len(), 12);
        assert!(!format!("{secret:?}").contains(&secret.expose()[12..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "hgr_",
            "hgr_short",
            "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &format!("hgr_{}!", "a".repeat(43)),
        ] {
            assert!(Secret::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn lifetimes_parse() {
        assert_eq!(parse_lifetime("30d"), Ok(30 * 86_400));
        assert_eq!(parse_lifetime("90s"), Ok(90));
        assert!(parse_lifetime("30").is_err());
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("99999w").is_err());
    }
}
