//! Upload tickets: what authenticates the URLs a Git LFS batch answer hands out. The client
//! sends an LFS object's bytes (`PUT`), its parts and the multipart completion without any
//! credential of its own — `huggingface_hub` sends no header there, as it would not to S3 —
//! so the URL carries the right to send them: which model, which object (oid and size),
//! which upload session, who asked and until when, signed with HMAC-SHA256.
//!
//! The key is drawn at random once per process and never stored: a restart voids the
//! tickets handed out before it, and the client asks the batch endpoint again. A ticket lets
//! its holder send only bytes whose sha256 is its oid, so one that leaks cannot store
//! anything else.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{Caller, now_unix};
use crate::catalog::events::Actor;

/// The signing key, drawn once per process.
static KEY: LazyLock<[u8; 32]> = LazyLock::new(|| {
    use rand_core::{OsRng, RngCore as _};
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
});

/// What a ticket allows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ticket {
    /// The model the object is sent for.
    pub model: String,
    /// The object's sha256, hex.
    pub oid: String,
    pub size: u64,
    /// The upload session of a multipart transfer.
    pub session: Option<String>,
    /// Who asked for the upload, for the audit log.
    pub user_id: Option<i64>,
    pub user: Option<String>,
    pub token_id: Option<i64>,
    /// Unix seconds after which the ticket is refused.
    pub expires: i64,
}

impl Ticket {
    pub fn new(caller: &Caller, model: &str, oid: &str, size: u64, session: Option<String>, ttl_secs: u64) -> Self {
        let actor = caller.actor();
        Self {
            model: model.to_owned(),
            oid: oid.to_owned(),
            size,
            session,
            user_id: actor.user_id,
            user: actor.user,
            token_id: actor.token_id,
            expires: now_unix().saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX)),
        }
    }

    /// The audit log's actor: who asked for the upload, from the address that sends it.
    pub fn actor(&self, remote_addr: Option<String>) -> Actor {
        Actor { user_id: self.user_id, user: self.user.clone(), token_id: self.token_id, remote_addr }
    }

    /// The ticket as a URL-safe string: base64url of its JSON, `.`, base64url of the MAC.
    pub fn seal(&self) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac(body.as_bytes()).finalize().into_bytes()))
    }

    /// The ticket `raw` stands for, if this process signed it and it has not expired.
    pub fn open(raw: &str) -> Result<Self, &'static str> {
        const FORGED: &str =
            "this upload URL is not valid (it may come from before a restart); ask the batch endpoint again";
        let (body, tag) = raw.split_once('.').ok_or(FORGED)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| FORGED)?;
        mac(body.as_bytes()).verify_slice(&tag).map_err(|_| FORGED)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| FORGED)?;
        let ticket: Self = serde_json::from_slice(&json).map_err(|_| FORGED)?;
        if ticket.expires < now_unix() {
            return Err("this upload URL has expired; ask the batch endpoint again");
        }
        Ok(ticket)
    }
}

fn mac(body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_slice()).expect("HMAC takes a key of any length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            model: "team-a/m".into(),
            oid: "ab".repeat(32),
            size: 3,
            session: None,
            user_id: Some(1),
            user: Some("admin".into()),
            token_id: None,
            expires: now_unix() + 60,
        }
    }

    #[test]
    fn a_sealed_ticket_opens_to_itself() {
        let sealed = ticket().seal();
        assert_eq!(Ticket::open(&sealed), Ok(ticket()));
    }

    #[test]
    fn a_changed_or_expired_ticket_is_refused() {
        let sealed = ticket().seal();
        let (body, tag) = sealed.split_once('.').expect("two parts");
        let mut other = ticket();
        other.size = 4;
        let forged = format!("{}.{tag}", other.seal().split_once('.').expect("two parts").0);
        assert!(Ticket::open(&forged).is_err());
        assert!(Ticket::open(body).is_err());
        let expired = Ticket { expires: now_unix() - 1, ..ticket() }.seal();
        assert!(Ticket::open(&expired).expect_err("expired").contains("expired"));
    }
}
