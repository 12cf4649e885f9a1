//! Upload tickets: what authenticates the URLs a Git LFS batch answer hands out. The client
//! sends an LFS object's bytes (`PUT`), its parts and the multipart completion without any
//! credential of its own — `huggingface_hub` sends no header there, as it would not to S3 —
//! so the URL carries the right to send them: which model, which object (oid and size),
//! which upload session, who asked and until when, signed with HMAC-SHA256.
//!
//! The key is drawn at random at first start and kept in the data dir (`hf-ticket.key`,
//! readable by its owner only), so tickets outlive a restart: a client in the middle of a
//! multipart upload goes on sending the parts it has left (the parts already sent are kept
//! on disk by the upload session), instead of failing on every URL it was given. A ticket
//! lets its holder send only bytes whose sha256 is its oid, so one that leaks cannot store
//! anything else.

use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{Caller, now_unix};
use crate::catalog::events::Actor;

/// The signing key.
pub struct TicketKey([u8; 32]);

impl TicketKey {
    const FILE: &str = "hf-ticket.key";

    /// The data dir's key, made (mode 0600) if there is none yet.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(Self::FILE);
        let mut key = [0u8; 32];
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                file.read_exact(&mut key)
                    .map_err(|e| io::Error::new(e.kind(), format!("{} is not a 32-byte key: {e}", path.display())))?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let new = Self::random();
                let mut file = std::fs::File::options().write(true).create_new(true).mode(0o600).open(&path)?;
                file.write_all(&new.0)?;
                file.sync_all()?;
                Ok(new)
            }
            Err(e) => Err(e),
        }
    }

    fn random() -> Self {
        use rand_core::{OsRng, RngCore as _};
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(body);
        mac
    }
}

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
    pub fn seal(&self, key: &TicketKey) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(key.mac(body.as_bytes()).finalize().into_bytes()))
    }

    /// The ticket `raw` stands for, if `key` signed it and it has not expired.
    pub fn open(raw: &str, key: &TicketKey) -> Result<Self, &'static str> {
        const FORGED: &str = "this upload URL is not valid; ask the batch endpoint again";
        let (body, tag) = raw.split_once('.').ok_or(FORGED)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| FORGED)?;
        key.mac(body.as_bytes()).verify_slice(&tag).map_err(|_| FORGED)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| FORGED)?;
        let ticket: Self = serde_json::from_slice(&json).map_err(|_| FORGED)?;
        if ticket.expires < now_unix() {
            return Err("this upload URL has expired; ask the batch endpoint again");
        }
        Ok(ticket)
    }
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
        let (key, ticket) = (TicketKey::random(), ticket());
        assert_eq!(Ticket::open(&ticket.seal(&key), &key), Ok(ticket));
    }

    #[test]
    fn a_changed_or_expired_ticket_is_refused() {
        let key = TicketKey::random();
        let sealed = ticket().seal(&key);
        let (body, tag) = sealed.split_once('.').expect("two parts");
        let mut other = ticket();
        other.size = 4;
        let forged = format!("{}.{tag}", other.seal(&key).split_once('.').expect("two parts").0);
        assert!(Ticket::open(&forged, &key).is_err());
        assert!(Ticket::open(body, &key).is_err());
        let expired = Ticket { expires: now_unix() - 1, ..ticket() }.seal(&key);
        assert!(Ticket::open(&expired, &key).expect_err("expired").contains("expired"));
    }

    #[test]
    fn the_key_outlives_a_restart_and_is_the_data_dir_s_own() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, other) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let ticket = ticket();
        let sealed = ticket.seal(&TicketKey::load_or_create(dir.path()).expect("made"));
        let again = TicketKey::load_or_create(dir.path()).expect("read back");
        assert_eq!(Ticket::open(&sealed, &again), Ok(ticket), "a ticket from before the restart still opens");
        let mode = std::fs::metadata(dir.path().join(TicketKey::FILE)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let elsewhere = TicketKey::load_or_create(other.path()).expect("made");
        assert!(Ticket::open(&sealed, &elsewhere).is_err(), "another data dir's key does not open it");
        std::fs::write(other.path().join(TicketKey::FILE), b"short").expect("write");
        let err = TicketKey::load_or_create(other.path()).err().expect("a short key is refused");
        assert!(err.to_string().contains("not a 32-byte key"), "{err}");
    }
}
