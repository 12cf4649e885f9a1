//! Usage: requests and tokens through the gateway over the last hour or day, by model, user
//! or deployment, as a stacked chart (each line is the sum of the keys below it) and a table
//! of the same figures; and, for admins, the fair-use limits in force. What a caller sees is
//! `ops::usage`'s rule, the API's.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use sqlx::SqlitePool;

use super::deployments::number;
use crate::catalog::usage::{By, Series as UsageSeries};
use crate::domain::Limits;
use crate::error::ApiError;
use crate::ops;
use crate::ops::usage::UsageQuery;
use crate::web::chart::{Chart, Series};
use crate::web::error::encode_query;
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
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct UsagePageQuery {
    by: Option<String>,
    window: Option<String>,
    notice: Option<String>,
}

/// The limits form: set a subject's limits (empty fields: no limit of that kind), or remove
/// them all.
#[derive(Deserialize)]
pub struct LimitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    requests_per_minute: String,
    #[serde(default)]
    tokens_per_day: String,
    #[serde(default)]
    concurrent: String,
    /// `set` or `remove`.
    #[serde(default)]
    action: String,
}

/// `POST /usage/limits`: an admin sets or removes a subject's limits, as the API does.
pub async fn limits(
    pool: web::Data<SqlitePool>,
    caller: WebCaller,
    form: web::Form<LimitForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let subject = form.subject.trim();
    let notice = if form.action == "remove" {
        ops::limits::remove(&pool, &caller.caller, subject).await?;
        format!("Limits of {subject} removed.")
    } else {
        let limits = Limits {
            requests_per_minute: number(&form.requests_per_minute, "requests per minute")?,
            tokens_per_day: number(&form.tokens_per_day, "tokens per day")?,
            concurrent: number(&form.concurrent, "requests at once")?,
        };
        let set = ops::limits::set(&pool, &caller.caller, subject, limits).await?;
        format!("Limits of {} set.", set.subject)
    };
    let target = format!("/usage?by=user&notice={}", encode_query(&notice));
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish())
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
        notice: query.notice.clone(),
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

/// A deployment's traffic over one window, as the deployment page shows it.
pub struct TrafficView {
    pub heading: &'static str,
    /// Requests and errors per minute.
    pub requests_svg: String,
    /// Mean time to the end of the answer and to the first streamed token.
    pub latency_svg: String,
    /// Time, requests, errors, tokens/s, mean time, time to first token; newest last.
    pub rows: Vec<[String; 6]>,
}

/// Table rows shown per window.
const TRAFFIC_ROWS: usize = 12;

/// The last hour (by the minute) and the last day (by the hour) of `deployment`'s traffic
/// through the gateway, from the usage rollups, as `caller` may see it.
pub async fn deployment_traffic(
    pool: &SqlitePool,
    caller: &crate::auth::Caller,
    deployment: &str,
) -> Result<Vec<TrafficView>, WebError> {
    let now = crate::auth::now_unix();
    let mut views = Vec::new();
    for (heading, id, span, step) in
        [("Last hour", "traffic-hour", 3600_i64, "1m"), ("Last day", "traffic-day", 86_400, "1h")]
    {
        let asked =
            UsageQuery { by: Some(By::Deployment), from: Some(format!("-{span}")), to: None, step: Some(step.into()) };
        let usage = ops::usage::usage(pool, caller, &asked, now).await?;
        let points = usage.series.into_iter().find(|s| s.key == deployment).map(|s| s.points).unwrap_or_default();
        let per_minute = usage.step as f64 / 60.0;
        let line = |f: &dyn Fn(&crate::catalog::usage::Point) -> Option<f64>| -> Vec<(i64, f64)> {
            points.iter().filter_map(|p| f(p).map(|v| (p.start, v))).collect()
        };
        let requests = line(&|p| Some(p.requests as f64 / per_minute));
        let errors = line(&|p| Some(p.errors as f64 / per_minute));
        let mean = line(&|p| Some(p.mean_ms));
        let ttft = line(&|p| p.mean_ttft_ms);
        let top = |series: &[&[(i64, f64)]]| {
            let max = series.iter().flat_map(|s| s.iter().map(|(_, v)| *v)).fold(0.0_f64, f64::max);
            if max > 0.0 { (max * 1.1).ceil() } else { 1.0 }
        };
        let total: i64 = points.iter().map(|p| p.requests).sum();
        let describe = |what: &str, unit: &str, s: &[(i64, f64)]| match s.iter().map(|(_, v)| *v).reduce(f64::max) {
            None => format!("{what}: none."),
            Some(max) => format!("{what}: at most {max:.1} {unit}."),
        };
        let requests_chart = Chart {
            id: if id == "traffic-hour" { "requests-hour" } else { "requests-day" },
            title: format!("Requests per minute, {}", heading.to_lowercase()),
            description: format!(
                "{total} requests in all. {} {}",
                describe("Requests per minute", "per minute", &requests),
                describe("Errors per minute", "per minute", &errors)
            ),
            from: usage.from,
            to: usage.to,
            y_max: top(&[&requests, &errors]),
            unit: "/min",
            series: vec![
                Series { name: "requests".into(), class: "a", points: requests },
                Series { name: "errors".into(), class: "b", points: errors },
            ],
            max_gap: usage.step * 2,
        };
        let latency_chart = Chart {
            id: if id == "traffic-hour" { "latency-hour" } else { "latency-day" },
            title: format!("Mean time and time to first token, {}", heading.to_lowercase()),
            description: format!(
                "{} {}",
                describe("Mean time to the end of the answer", "ms", &mean),
                describe("Mean time to the first streamed token", "ms", &ttft)
            ),
            from: usage.from,
            to: usage.to,
            y_max: top(&[&mean, &ttft]),
            unit: "ms",
            series: vec![
                Series { name: "mean time".into(), class: "a", points: mean },
                Series { name: "time to first token".into(), class: "b", points: ttft },
            ],
            max_gap: usage.step * 2,
        };
        let rows = points
            .iter()
            .rev()
            .take(TRAFFIC_ROWS)
            .rev()
            .map(|p| {
                let day = p.start.rem_euclid(86_400);
                [
                    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60),
                    p.requests.to_string(),
                    p.errors.to_string(),
                    format!("{:.1}", p.completion_tokens as f64 / usage.step as f64),
                    millis(Some(p.mean_ms)),
                    millis(p.mean_ttft_ms),
                ]
            })
            .collect();
        views.push(TrafficView { heading, requests_svg: requests_chart.svg(), latency_svg: latency_chart.svg(), rows });
    }
    Ok(views)
}
