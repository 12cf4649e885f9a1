//! What a webhook is made of: the receiver's URL, the event actions it subscribes to, the
//! secret its deliveries are signed with, and the states of a delivery. `EVENT_ACTIONS`
//! is every action the audit log records, the one list subscriptions are checked against.

use std::fmt;
use std::net::IpAddr;

/// Every action the audit log records, sorted. `catalog::events::record` refuses (in debug
/// builds) an action missing here, so a new kind of event cannot be left unsubscribable.
pub const EVENT_ACTIONS: &[&str] = &[
    "alias.deleted",
    "alias.moved",
    "blob.uploaded",
    "deployment.created",
    "deployment.deleted",
    "deployment.failed",
    "deployment.launched",
    "deployment.moved",
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
    "limits.removed",
    "limits.set",
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
    #[error(
        "webhooks may not reach {address}: it is a loopback, link-local, private or otherwise local \
         address; an admin can allow such receivers with webhook_allow_private = true in hangar.toml"
    )]
    Private { address: IpAddr },
}

/// Where deliveries are POSTed: an absolute `http://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let refuse = |why: &str| WebhookError::Url { url: redacted(raw), why: why.to_owned() };
        if raw.len() > MAX_URL_BYTES {
            return Err(refuse(&format!("it is longer than {MAX_URL_BYTES} bytes")));
        }
        let url = url::Url::parse(raw)
            .map_err(|e| refuse(&format!("{e}; give an absolute URL such as http://ci.example:8000/hook")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(refuse(&format!("the scheme is {other}:, not http:// or https://"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("it names no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(
                "it holds credentials (user:password@), which would be stored and shown; \
                 have the receiver check the X-Hangar-Signature header instead",
            ));
        }
        Ok(Self(url.into()))
    }

    /// Refuses a receiver whose host is an address webhooks may not reach (see
    /// `is_reachable`) unless `allow_private`. A host name is checked when it is resolved,
    /// at each delivery, since what it resolves to can change.
    pub fn check_destination(&self, allow_private: bool) -> Result<(), WebhookError> {
        let address = match url::Url::parse(&self.0).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        check_address(address, allow_private)
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

/// Refuses `address` unless it is public or `allow_private`.
pub fn check_address(address: IpAddr, allow_private: bool) -> Result<(), WebhookError> {
    if allow_private || is_reachable(address) { Ok(()) } else { Err(WebhookError::Private { address }) }
}

/// Whether webhooks may reach `address` without `webhook_allow_private`: not loopback,
/// link-local (169.254.0.0/16, fe80::/10: cloud metadata lives there), private (10/8,
/// 172.16/12, 192.168/16, 100.64/10, fc00::/7), unspecified, broadcast or multicast, nor an
/// IPv4 address of those kinds written as IPv6.
pub fn is_reachable(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_reachable(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// At most 100 characters of a URL for an error message, with anything up to an `@` (user
/// and password) left out.
fn redacted(raw: &str) -> String {
    let shown = match raw.rfind('@') {
        Some(at) => format!("…{}", &raw[at..]),
        None => raw.to_owned(),
    };
    shown.chars().take(100).collect()
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
    fn only_http_and_https_urls_with_a_host_parse() {
        for good in ["http://127.0.0.1:9000/hook", "http://ci.example/hooks/hangar?team=a", "https://ci.example/hook"] {
            assert_eq!(WebhookUrl::parse(good).expect(good).as_str(), good);
        }
        let cases = [
            ("", "relative URL without a base"),
            ("ci.example/hook", "relative URL without a base"),
            ("ftp://ci.example/hook", "the scheme is ftp:"),
            ("file:///etc/passwd", "the scheme is file:"),
            ("http://", "empty host"),
        ];
        for (bad, why) in cases {
            let err = WebhookUrl::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(WebhookUrl::parse(&format!("http://h/{}", "a".repeat(MAX_URL_BYTES))).is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_not_repeated() {
        let err = WebhookUrl::parse("http://ci:hunter2-secret@ci.example/hook").expect_err("credentials").to_string();
        assert!(err.contains("credentials"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("ci:"), "{err}");
    }

    #[test]
    fn local_addresses_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1:9000/hook",
            "http://2130706433/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            let url = WebhookUrl::parse(bad).expect(bad);
            let err = url.check_destination(false).expect_err(bad).to_string();
            assert!(err.contains("webhook_allow_private"), "{bad}: {err}");
            assert!(url.check_destination(true).is_ok(), "{bad} is allowed when asked for");
        }
        for good in ["http://8.8.8.8/", "http://[2001:4860::8888]/", "http://ci.example/", "http://localhost/"] {
            assert!(WebhookUrl::parse(good).expect(good).check_destination(false).is_ok(), "{good}");
        }
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
