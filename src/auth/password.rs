//! Passwords: argon2id hashes in PHC format, computed off the async threads (each takes
//! tens of milliseconds of CPU on purpose).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};

pub const MIN_LENGTH: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is too short: use at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password is too long: use at most 1024 bytes")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks the length rules a person must meet.
pub fn check_strength(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if password.len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// A random password for bootstrap and resets: 24 URL-safe characters (144 bits).
pub fn generate() -> String {
    let mut bytes = [0u8; 18];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hashes `password` with argon2id and a random salt.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// `hash` on the calling thread.
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC `hash`.
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash("correct horse battery".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), hash.clone()).await);
        assert!(!verify("wrong horse battery".into(), hash).await);
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        assert!(check_strength(&generate()).is_ok());
        assert!(check_strength("short").is_err());
    }
}
