//! Usage: requests and tokens through the gateway over the last hour or day, by model, user
//! or deployment, as a stacked chart (each line is the sum of the keys below it) and a table
//! of the same figures; and, for admins, the fair-use limits in force. What a caller sees is
//! `ops::usage`'s rule, the API's.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use sqlx::SqlitePool;

use crate::catalog::usage::{By, Series as UsageSeries};
use crate::error::ApiError;
use crate::ops;
use crate::ops::usage::UsageQuery;
use crate::web::chart::{Chart, Series};
use crate::web::{Frame, WebCaller, WebError};

/// Keys drawn; the rest are in the table only.
const DRAWN: usize = 3;
const CLASSES: [&str; DRAWN] = ["a", "b", "c"];

pub struct Row {
    key: String,
    requests: i64,
    errors: i64,
    prompt: i64,
    completion: i64,
    unmetered: i64,
    mean_ms: String,
    ttft_ms: String,
}

pub struct LimitRow {
    subject: String,
    requests_per_minute: String,
    tokens_per_day: String,
    concurrent: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    frame: Frame,
    by: &'static str,
    window: &'static str,
    svg: String,
    legend: Vec<(&'static str, String)>,
    rows: Vec<Row>,
    limits: Option<Vec<LimitRow>>,
}

#[derive(Deserialize)]
pub struct UsagePageQuery {
    by: Option<String>,
    window: Option<String>,
}

pub async fn show(
    pool: web::Data<SqlitePool>,
    caller: WebCaller,
    query: web::Query<UsagePageQuery>,
) -> Result<HttpResponse, WebError> {
    let (by, by_name) = match query.by.as_deref().unwrap_or("model") {
        "user" => (By::User, "user"),
        "deployment" => (By::Deployment, "deployment"),
        "token" => (By::Token, "token"),
        "model" => (By::Model, "model"),
        other => return Err(ApiError::BadRequest(format!("by={other:?}: use model, user, deployment or token")).into()),
    };
    let (window, span, step) = match query.window.as_deref().unwrap_or("day") {
        "hour" => ("hour", 3600, "5m"),
        "day" => ("day", 86_400, "1h"),
        other => return Err(ApiError::BadRequest(format!("window={other:?}: use hour or day")).into()),
    };
    let now = crate::auth::now_unix();
    let asked = UsageQuery { by: Some(by), from: Some(format!("-{span}")), to: None, step: Some(step.to_owned()) };
    let usage = ops::usage::usage(&pool, &caller.caller, &asked, now).await?;
    let limits = if caller.caller.is_instance_admin() {
        let all = ops::limits::list(&pool, &caller.caller).await?;
        let shown = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), |v| v.to_string());
        Some(
            all.into_iter()
                .map(|l| LimitRow {
                    subject: l.subject,
                    requests_per_minute: shown(l.limits.requests_per_minute),
                    tokens_per_day: shown(l.limits.tokens_per_day),
                    concurrent: shown(l.limits.concurrent),
                })
                .collect(),
        )
    } else {
        None
    };
    let chart = stacked(&usage.series, by_name, window, usage.from, usage.to, usage.step);
    let legend = usage.series.iter().take(DRAWN).zip(CLASSES).map(|(s, class)| (class, label(&s.key))).collect();
    let body = UsagePage {
        frame: caller.frame(),
        by: by_name,
        window,
        svg: chart.svg(),
        legend,
        rows: usage.series.iter().map(row).collect(),
        limits,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

fn label(key: &str) -> String {
    if key.is_empty() { "(anonymous)".to_owned() } else { key.to_owned() }
}

fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms:.1} ms"))
}

fn row(s: &UsageSeries) -> Row {
    Row {
        key: label(&s.key),
        requests: s.total.requests,
        errors: s.total.errors,
        prompt: s.total.prompt_tokens,
        completion: s.total.completion_tokens,
        unmetered: s.total.unmetered,
        mean_ms: millis(Some(s.total.mean_ms)),
        ttft_ms: millis(s.total.mean_ttft_ms),
    }
}

/// Tokens per step of the first [`DRAWN`] keys, stacked: each line is its key's tokens plus
/// those of the keys drawn before it, so the top line is their total.
fn stacked(series: &[UsageSeries], by: &str, window: &str, from: i64, to: i64, step: i64) -> Chart {
    let tokens = |s: &UsageSeries, start: i64| {
        s.points.iter().find(|p| p.start == start).map_or(0.0, |p| (p.prompt_tokens + p.completion_tokens) as f64)
    };
    let starts: Vec<i64> = (0..).map(|i| from + i * step).take_while(|t| *t < to).collect();
    let mut below = vec![0.0; starts.len()];
    let mut lines = Vec::new();
    for (s, class) in series.iter().take(DRAWN).zip(CLASSES) {
        let points: Vec<(i64, f64)> = starts
            .iter()
            .zip(below.iter_mut())
            .map(|(start, under)| {
                *under += tokens(s, *start);
                (*start, *under)
            })
            .collect();
        lines.push(Series { name: label(&s.key), class, points });
    }
    let top = below.iter().copied().fold(0.0_f64, f64::max);
    let description = if series.is_empty() {
        format!("No requests through the gateway in the last {window}.")
    } else {
        let parts: Vec<String> = series
            .iter()
            .take(DRAWN)
            .map(|s| {
                format!(
                    "{}: {} tokens in {} requests",
                    label(&s.key),
                    s.total.prompt_tokens + s.total.completion_tokens,
                    s.total.requests
                )
            })
            .collect();
        format!("Tokens per {} s by {by}, stacked, last {window}. {}.", step, parts.join("; "))
    };
    Chart {
        id: "usage",
        title: format!("Tokens by {by}, last {window}"),
        description,
        from,
        to,
        y_max: if top > 0.0 { (top * 1.1).ceil() } else { 1.0 },
        unit: "tok",
        series: lines,
        max_gap: step * 2,
    }
}
