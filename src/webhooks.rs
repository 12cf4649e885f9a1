//! Webhook delivery: a background loop that follows the events table (through
//! `catalog::webhooks::fan_out`, whose cursor is persisted, so a restart neither loses nor
//! repeats an event) and POSTs each delivery to its receiver, signed with HMAC-SHA256 of
//! the exact body, retrying failures with exponential backoff up to a bounded number of
//! attempts. It never runs inside a request, and it sends one delivery at a time per
//! webhook, so a receiver that is slow or down holds up only its own deliveries.
//!
//! Unless `webhook_allow_private` is set, a delivery goes only to public addresses: the
//! receiver's host is resolved here, every address it resolves to is checked, and the
//! connection is made to those checked addresses, so a name that resolves elsewhere by the
//! time of a delivery (DNS rebinding) reaches nothing local.
//!
//! An `https://` receiver's certificate is checked against the system's roots plus the CA of
//! the `ca_cert` setting, if any; one that does not verify fails the attempt with an error
//! naming the problem (`UnknownIssuer`, …) and the setting that fixes it.
//!
//! Delivery is at least once: a delivery in flight when Hangar stops is sent again after
//! the restart, with the same `X-Hangar-Delivery` id for the receiver to deduplicate.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::catalog::Db;
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand_core::{OsRng, RngCore as _};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::CatalogError;
use crate::catalog::webhooks::{self, AttemptOutcome, DeliveryJob};
use crate::domain::{WebhookSecret, WebhookUrl, check_address};

/// `sha256=` and the hex HMAC-SHA256 of the body, keyed with the webhook's secret.
pub const SIGNATURE_HEADER: &str = "X-Hangar-Signature";
/// The event's action (`version.published`, …, or `ping`).
pub const EVENT_HEADER: &str = "X-Hangar-Event";
/// The delivery's id, the same on every attempt.
pub const DELIVERY_HEADER: &str = "X-Hangar-Delivery";
/// Which attempt this is, from 1.
pub const ATTEMPT_HEADER: &str = "X-Hangar-Attempt";

/// How often the loop looks for new events and due retries.
const POLL: Duration = Duration::from_millis(200);
/// Events turned into deliveries per transaction.
const FAN_OUT_BATCH: u32 = 200;
/// Attempts in flight at once, over all webhooks.
const MAX_IN_FLIGHT: usize = 16;
/// However many attempts are allowed, no wait between two is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How deliveries are retried.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub backoff: Duration,
    /// How long a receiver has to connect and answer.
    pub timeout: Duration,
    /// Whether receivers may be on loopback, link-local or private addresses.
    pub allow_private: bool,
    /// CAs trusted besides the system's roots (the `ca_cert` setting).
    pub extra_roots: Vec<reqwest::Certificate>,
}

pub struct Deliverer {
    pool: Db,
    client: reqwest::Client,
    settings: DeliverySettings,
    /// Webhooks with an attempt in flight.
    busy: Arc<Mutex<HashSet<i64>>>,
    slots: Arc<Semaphore>,
}

impl Deliverer {
    pub fn new(pool: Db, settings: DeliverySettings) -> anyhow::Result<Arc<Self>> {
        let mut client = reqwest::Client::builder();
        if !settings.allow_private {
            client = client.dns_resolver(PublicOnly);
        }
        // Merged into the system's roots rather than replacing them: the usual need is one
        // in-house receiver behind a private CA while public receivers keep working. It is the
        // CLI's `HANGAR_CA_CERT` under the same name, so one file serves both sides of a box;
        // the alternatives were worse: `SSL_CERT_FILE` replaces the system's roots instead
        // of adding to them, and a CA per webhook would put certificates into the API.
        if !settings.extra_roots.is_empty() {
            client = client.tls_certs_merge(settings.extra_roots.clone());
        }
        let client = client
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect would send the signed body somewhere nobody registered.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hangar/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Self {
            pool,
            client,
            settings,
            busy: Arc::default(),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }))
    }

    /// Delivers until the process ends. A database error is logged and retried next tick.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.step().await {
                tracing::warn!(error = ?e, "webhook delivery step failed; will retry");
            }
        }
    }

    /// Makes deliveries of new events, then starts the attempts that are due.
    async fn step(self: &Arc<Self>) -> Result<(), CatalogError> {
        while webhooks::fan_out(&self.pool, FAN_OUT_BATCH).await? == FAN_OUT_BATCH as usize {}
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let busy: Vec<i64> = self.busy.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect();
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        for job in webhooks::due(&self.pool, &busy, limit).await? {
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else { break };
            let busy = Busy::mark(Arc::clone(&self.busy), job.webhook_id);
            tokio::spawn(Arc::clone(self).attempt(job, slot, busy));
        }
        Ok(())
    }

    async fn attempt(self: Arc<Self>, job: DeliveryJob, _slot: OwnedSemaphorePermit, _busy: Busy) {
        let attempt = job.attempts + 1;
        let outcome = judge(self.send(&job, attempt).await, attempt, &self.settings);
        match &outcome {
            AttemptOutcome::Delivered { status } => {
                tracing::info!(delivery = %job.uuid, webhook = job.webhook_id, attempt, status, "webhook delivered");
            }
            AttemptOutcome::Retry { error, after, .. } => {
                tracing::info!(delivery = %job.uuid, webhook = job.webhook_id, attempt, %error, ?after, "webhook delivery failed; will retry");
            }
            AttemptOutcome::Failed { error, .. } => {
                tracing::warn!(delivery = %job.uuid, webhook = job.webhook_id, attempt, %error, "webhook delivery failed for good");
            }
        }
        if let Err(e) = webhooks::finish_attempt(&self.pool, job.id, attempt, &outcome).await {
            // The delivery stays due as it was, so it is attempted again: at least once.
            tracing::warn!(error = ?e, delivery = %job.uuid, "cannot record a webhook attempt");
        }
    }

    /// POSTs the delivery: the status the receiver answered, or why there was no answer.
    async fn send(&self, job: &DeliveryJob, attempt: u32) -> Result<u16, String> {
        // A host written as an address is not resolved, so not seen by `PublicOnly`.
        let url = WebhookUrl::parse(&job.url).map_err(|e| e.to_string())?;
        url.check_destination(self.settings.allow_private).map_err(|e| e.to_string())?;
        let response = self
            .client
            .post(&job.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&job.secret, job.body.as_bytes()))
            .header(EVENT_HEADER, &job.action)
            .header(DELIVERY_HEADER, &job.uuid)
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(job.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e, self.settings.timeout))?;
        Ok(response.status().as_u16())
    }
}

/// Resolves receivers' host names to public addresses only: if any address a name resolves
/// to may not be reached, the name is refused as a whole.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &addresses {
                check_address(address.ip(), false)?;
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// Marks a webhook busy while one of its attempts is in flight; unmarks it when dropped,
/// even if the attempt's task ends early.
struct Busy {
    set: Arc<Mutex<HashSet<i64>>>,
    webhook: i64,
}

impl Busy {
    fn mark(set: Arc<Mutex<HashSet<i64>>>, webhook: i64) -> Self {
        set.lock().unwrap_or_else(PoisonError::into_inner).insert(webhook);
        Self { set, webhook }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.webhook);
    }
}

/// What attempt number `attempt` amounts to: delivered on a 2xx; otherwise retried after
/// the backoff, unless it was the last attempt allowed.
fn judge(sent: Result<u16, String>, attempt: u32, settings: &DeliverySettings) -> AttemptOutcome {
    let (status, error) = match sent {
        Ok(status @ 200..=299) => return AttemptOutcome::Delivered { status },
        Ok(status) => {
            let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
            (Some(status), format!("the receiver answered {status} {reason}").trim_end().to_owned())
        }
        Err(error) => (None, error),
    };
    if attempt >= settings.max_attempts {
        AttemptOutcome::Failed { status, error }
    } else {
        AttemptOutcome::Retry { status, error, after: backoff(settings.backoff, attempt) }
    }
}

/// The wait after `failed` attempts: `base`, doubling per further failure, at most an hour.
fn backoff(base: Duration, failed: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Why a request got no answer, in a line for the delivery's record.
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    if let Some(problem) = crate::tls::certificate_problem(err) {
        return format!(
            "the receiver's TLS certificate is not trusted ({problem}); if a private CA signed it, \
             give Hangar that CA with ca_cert / HANGAR_CA_CERT"
        );
    }
    let mut text = if err.is_connect() { "cannot connect".to_owned() } else { "request failed".to_owned() };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` keyed with `secret`, as sent in `X-Hangar-Signature`.
pub fn sign(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh secret for a webhook registered without one: 32 random bytes, hex.
pub fn generate_secret() -> WebhookSecret {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    WebhookSecret::parse(&hex::encode(bytes)).expect("64 hex characters are a valid secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_attempts: u32) -> DeliverySettings {
        DeliverySettings {
            max_attempts,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            allow_private: false,
            extra_roots: Vec::new(),
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // As `openssl dgst -sha256 -hmac it-is-a-secret-16+` computes it.
        let secret = WebhookSecret::parse("it-is-a-secret-16+").expect("secret");
        assert_eq!(
            sign(&secret, br#"{"id":1,"action":"model.created"}"#),
            "sha256=0203301d5994867004b4e63cce85e84e0cd8729e71e2ada3298e9fbc57739b08"
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let base = Duration::from_secs(1);
        let waits: Vec<u64> = (1..=5).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn attempts_are_retried_until_the_last_one_allowed() {
        assert_eq!(judge(Ok(204), 1, &settings(6)), AttemptOutcome::Delivered { status: 204 });
        assert_eq!(
            judge(Ok(500), 2, &settings(6)),
            AttemptOutcome::Retry {
                status: Some(500),
                error: "the receiver answered 500 Internal Server Error".into(),
                after: Duration::from_secs(2)
            }
        );
        assert_eq!(
            judge(Err("cannot connect".into()), 6, &settings(6)),
            AttemptOutcome::Failed { status: None, error: "cannot connect".into() }
        );
        assert!(matches!(judge(Ok(302), 1, &settings(6)), AttemptOutcome::Retry { status: Some(302), .. }));
    }

    #[test]
    fn generated_secrets_are_fresh() {
        assert_ne!(generate_secret().expose(), generate_secret().expose());
    }
}
