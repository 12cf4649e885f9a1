//! Who may see whose usage, and the window a usage query reads. An admin or maintainer sees
//! everyone's usage of the models their token reaches; a viewer sees only their own; a token
//! limited to some models sees only those models'. Times are Unix seconds or offsets from now
//! (`-24h`, `-30m`, `-7d`); steps are whole minutes (`60`, `5m`, `1h`, `1d`).

use crate::catalog::Db;

use super::error::OpsError;
use crate::auth::Caller;
use crate::catalog::usage::{self, By, Series, Visible, Window};
use crate::domain::{DeploymentName, Role};

/// The most buckets one query returns (a week by the minute).
pub const MAX_BUCKETS: i64 = 7 * 24 * 60;

/// A usage query as a client sends it.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// What to group by: `user`, `token`, `deployment` (the default) or `model`.
    pub by: Option<By>,
    /// The window's start: Unix seconds, or an offset from now such as `-24h` (the default).
    pub from: Option<String>,
    /// The window's end: Unix seconds, or an offset from now (default: now).
    pub to: Option<String>,
    /// The bucket size: seconds (a multiple of 60) or `5m`, `1h`, `1d` (default `1h`).
    pub step: Option<String>,
    /// Only the requests to this deployment.
    pub deployment: Option<String>,
}

/// The answer: the window as read, and one series per key, largest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub by: By,
    /// Unix seconds.
    pub from: i64,
    pub to: i64,
    /// Seconds.
    pub step: i64,
    pub series: Vec<Series>,
}

/// Usage that `caller` may see, as `query` asks, at `now` (Unix seconds).
pub async fn usage(pool: &Db, caller: &Caller, query: &UsageQuery, now: i64) -> Result<Usage, OpsError> {
    caller.require(Role::Viewer)?;
    let mut visible = visible_to(caller)?;
    visible.deployment = query.deployment.as_deref().map(DeploymentName::parse).transpose()?.map(|d| d.to_string());
    let by = query.by.unwrap_or(By::Deployment);
    let to = query.to.as_deref().map_or(Ok(now), |t| instant(t, now, "to"))?;
    let from = query.from.as_deref().map_or(Ok(now - 24 * 3600), |t| instant(t, now, "from"))?;
    let step = query.step.as_deref().map_or(Ok(3600), step_secs)?;
    if from >= to {
        return Err(OpsError::Invalid(format!("from ({from}) must be before to ({to})")));
    }
    // Whole minutes: the rollups are per minute. The end is rounded up, so a window ending
    // now includes the current minute.
    let window =
        Window { from_minute: from.div_euclid(60), to_minute: (to + 59).div_euclid(60), step_minutes: step / 60 };
    let span = window.to_minute - window.from_minute;
    let buckets = (span + window.step_minutes - 1) / window.step_minutes;
    if buckets > MAX_BUCKETS {
        return Err(OpsError::Invalid(format!(
            "the window holds {buckets} steps of {step} s; at most {MAX_BUCKETS}: use a larger step or a shorter window"
        )));
    }
    let series = usage::query(pool, by, window, &visible).await?;
    Ok(Usage { by, from: window.from_minute * 60, to: window.to_minute * 60, step, series })
}

/// What `caller` may see of the usage.
fn visible_to(caller: &Caller) -> Result<Visible, OpsError> {
    let user = if caller.role >= Role::Maintainer {
        None
    } else {
        let user = caller.user.as_ref().ok_or_else(|| {
            OpsError::Auth(crate::auth::AuthError::Unauthenticated("usage is per user; sign in to see yours".into()))
        })?;
        Some(user.to_string())
    };
    Ok(Visible { user, models: caller.models.clone(), deployment: None })
}

/// Unix seconds, or `-<n><unit>` before `now`.
fn instant(raw: &str, now: i64, what: &str) -> Result<i64, OpsError> {
    let raw = raw.trim();
    if let Some(offset) = raw.strip_prefix('-') {
        let secs = duration_secs(offset)
            .ok_or_else(|| OpsError::Invalid(format!("{what} {raw:?}: an offset is -<n>s, -<n>m, -<n>h or -<n>d")))?;
        return Ok(now - secs);
    }
    raw.parse::<i64>()
        .ok()
        .filter(|t| *t >= 0)
        .ok_or_else(|| OpsError::Invalid(format!("{what} {raw:?} is not Unix seconds or an offset like -24h")))
}

fn step_secs(raw: &str) -> Result<i64, OpsError> {
    let secs = duration_secs(raw.trim())
        .ok_or_else(|| OpsError::Invalid(format!("step {raw:?} is not a duration like 60, 5m, 1h or 1d")))?;
    if secs < 60 || secs % 60 != 0 {
        return Err(OpsError::Invalid(format!("step {raw:?} must be whole minutes (usage is kept per minute)")));
    }
    Ok(secs)
}

/// `90`, `90s`, `5m`, `2h`, `7d` as seconds.
fn duration_secs(raw: &str) -> Option<i64> {
    let (digits, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: i64 = digits.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit).filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(instant("-24h", 100_000, "from").ok(), Some(100_000 - 86_400));
        assert_eq!(instant("1700000000", 0, "from").ok(), Some(1_700_000_000));
        assert_eq!(step_secs("5m").ok(), Some(300));
        assert_eq!(step_secs("3600").ok(), Some(3600));
        for bad in ["-1y", "yesterday", "-"] {
            assert!(instant(bad, 0, "from").is_err(), "{bad}");
        }
        for bad in ["30", "90s", "0m", "1w", ""] {
            assert!(step_secs(bad).is_err(), "{bad}");
        }
    }
}
