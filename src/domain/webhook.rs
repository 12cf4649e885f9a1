//! What a webhook is made of: the receiver's URL, the event actions it subscribes to, the
//! secret its deliveries are signed with, and the states of a delivery. `EVENT_ACTIONS`
//! is every action the audit log records, the one list subscriptions are checked against.

use std::fmt;

/// Every action the audit log records, sorted. `catalog::events::record` refuses (in debug
/// builds) an action missing here, so a new kind of event cannot be left unsubscribable.
pub const EVENT_ACTIONS: &[&str] = &[
    "alias.deleted",
    "alias.moved",
    "deployment.created",
    "deployment.deleted",
    "deployment.failed",
    "deployment.launched",
    "deployment.pending",
    "deployment.rolled_out",
    "deployment.rollout_failed",
    "deployment.running",
    "deployment.start",
    "deployment.starting",
    "deployment.stop",
    "deployment.stopped",
    "deployment.stopping",
    "file.deleted",
    "file.linked",
    "file.uploaded",
    "model.created",
    "model.deleted",
    "model.updated",
    "runtime.deleted",
    "runtime.saved",
    "token.created",
    "token.revoked",
    "user.created",
    "user.password_reset",
    "user.updated",
    "version.created",
    "version.deleted",
    "version.published",
    "version.updated",
    "webhook.created",
    "webhook.deleted",
    "webhook.updated",
];

/// Subscribes to every action, present and future.
pub const ALL_EVENTS: &str = "*";

const MAX_URL_BYTES: usize = 2048;
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid webhook url {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("give at least one event type, or \"*\" for all of them")]
    NoEvents,
    #[error("unknown event type {given:?}; use \"*\" or any of: {}", EVENT_ACTIONS.join(", "))]
    UnknownEvent { given: String },
    #[error(
        "the webhook secret must be {}-{} visible ASCII characters (no spaces); leave it out to have one generated",
        SECRET_CHARS.start(),
        SECRET_CHARS.end()
    )]
    Secret,
    #[error("invalid delivery status {0:?}: use pending, delivered or failed")]
    Status(String),
}

/// Where deliveries are POSTed: an absolute `http://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let refuse = |why: &str| WebhookError::Url { url: raw.chars().take(100).collect(), why: why.to_owned() };
        if raw.len() > MAX_URL_BYTES {
            return Err(refuse(&format!("it is longer than {MAX_URL_BYTES} bytes")));
        }
        let url = url::Url::parse(raw)
            .map_err(|e| refuse(&format!("{e}; give an absolute URL such as http://ci.example:8000/hook")))?;
        match url.scheme() {
            "http" => {}
            // reqwest is built without TLS (see Cargo.toml): a https receiver would fail every
            // delivery, so it is refused here rather than stored to fail later.
            "https" => {
                return Err(refuse(
                    "this build of Hangar sends webhooks over plain http:// only (it has no TLS client); \
                     use an http:// receiver on a trusted network, or one behind a proxy that adds TLS",
                ));
            }
            other => return Err(refuse(&format!("the scheme is {other}:, not http://"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("it names no host"));
        }
        Ok(Self(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host (and port), for the audit log: the path may hold a receiver's own secret.
    pub fn host(&self) -> String {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(|h| u.port().map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"))))
            .unwrap_or_default()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The actions a webhook subscribes to: `["*"]`, or known actions, sorted and distinct.
/// Matching events against them happens in SQL, in `catalog::webhooks::fan_out`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct EventTypes(Vec<String>);

impl EventTypes {
    pub fn parse<S: AsRef<str>>(given: &[S]) -> Result<Self, WebhookError> {
        if given.is_empty() {
            return Err(WebhookError::NoEvents);
        }
        let mut actions = Vec::with_capacity(given.len());
        for raw in given {
            let raw = raw.as_ref();
            if raw != ALL_EVENTS && !EVENT_ACTIONS.contains(&raw) {
                return Err(WebhookError::UnknownEvent { given: raw.chars().take(80).collect() });
            }
            actions.push(raw.to_owned());
        }
        if actions.iter().any(|a| a == ALL_EVENTS) {
            return Ok(Self(vec![ALL_EVENTS.to_owned()]));
        }
        actions.sort();
        actions.dedup();
        Ok(Self(actions))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// The key deliveries are signed with. Never printed, never returned after it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let visible = raw.bytes().all(|b| b.is_ascii_graphic());
        if !visible || !SECRET_CHARS.contains(&raw.len()) {
            return Err(WebhookError::Secret);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself: to sign with, and to hand to its admin when it was generated.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Where a delivery stands: waiting for its next attempt, or done one way or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Every attempt failed; no more will be made.
    Failed,
}

impl DeliveryStatus {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        match raw {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(WebhookError::Status(other.chars().take(40).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_sorted_and_distinct() {
        assert!(EVENT_ACTIONS.windows(2).all(|w| w[0] < w[1]), "keep EVENT_ACTIONS sorted and distinct");
    }

    #[test]
    fn only_plain_http_urls_with_a_host_parse() {
        for good in ["http://127.0.0.1:9000/hook", "http://ci.example/hooks/hangar?team=a"] {
            assert_eq!(WebhookUrl::parse(good).expect(good).as_str(), good);
        }
        let cases = [
            ("", "relative URL without a base"),
            ("ci.example/hook", "relative URL without a base"),
            ("ftp://ci.example/hook", "the scheme is ftp:"),
            ("file:///etc/passwd", "the scheme is file:"),
            ("https://ci.example/hook", "plain http:// only"),
            ("http://", "empty host"),
        ];
        for (bad, why) in cases {
            let err = WebhookUrl::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(WebhookUrl::parse(&format!("http://h/{}", "a".repeat(MAX_URL_BYTES))).is_err());
    }

    #[test]
    fn the_host_leaves_out_the_path() {
        let url = WebhookUrl::parse("http://hooks.example:8080/services/T0/SECRET").expect("url");
        assert_eq!(url.host(), "hooks.example:8080");
    }

    #[test]
    fn event_types_are_known_actions_or_everything() {
        let types = EventTypes::parse(&["version.published", "alias.moved", "alias.moved"]).expect("types");
        assert_eq!(types.as_slice(), ["alias.moved", "version.published"]);
        let all = EventTypes::parse(&["model.created", "*"]).expect("all");
        assert_eq!(all.as_slice(), ["*"]);
        assert!(EventTypes::parse(&["*", "bogus"]).is_err(), "every entry is checked, \"*\" or not");
        assert_eq!(EventTypes::parse::<&str>(&[]), Err(WebhookError::NoEvents));
        let err = EventTypes::parse(&["version.publish"]).expect_err("typo").to_string();
        assert!(err.contains("\"version.publish\"") && err.contains("version.published, version.updated"), "{err}");
    }

    #[test]
    fn secrets_are_long_visible_ascii_and_never_printed() {
        let secret = WebhookSecret::parse("0123456789abcdef").expect("secret");
        assert!(!format!("{secret:?}").contains("0123"));
        for bad in ["short", "has a space in it!!", &"x".repeat(257), "nön-ascii-secret-1234"] {
            assert_eq!(WebhookSecret::parse(bad), Err(WebhookError::Secret), "{bad}");
        }
    }

    #[test]
    fn delivery_statuses_round_trip() {
        for status in [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed] {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Ok(status));
        }
        assert!(DeliveryStatus::parse("done").is_err());
    }
}
