//! Usage: requests and tokens through the gateway over the last hour or day, by model, user
//! or deployment, as a stacked chart (each line is the sum of the keys below it) and a table
//! of the same figures; and, for admins, the fair-use limits in force. What a caller sees is
//! `ops::usage`'s rule, the API's.

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::deployments::number;
use crate::catalog::usage::{By, Point, Series as UsageSeries};
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
    /// Only by deployment: see [`Point::p50_ms`].
    p50_ms: String,
    p95_ms: String,
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
    /// The rendered [`UsageView`].
    view: String,
    limits: Option<Vec<LimitRow>>,
    notice: Option<String>,
}

/// The chart and the table, for the page and for its refresh every 30 s.
#[derive(Template)]
#[template(path = "usage_view.html")]
struct UsageView {
    by: &'static str,
    window: &'static str,
    svg: String,
    legend: Vec<(&'static str, String)>,
    rows: Vec<Row>,
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
    pool: web::Data<Db>,
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
    pool: web::Data<Db>,
    caller: WebCaller,
    query: web::Query<UsagePageQuery>,
) -> Result<HttpResponse, WebError> {
    let view = load_view(&pool, &caller, &query).await?;
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
    let body = UsagePage {
        frame: caller.frame(),
        by: view.by,
        window: view.window,
        view: view.render().map_err(ApiError::internal)?,
        limits,
        notice: query.notice.clone(),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

/// `GET /usage/view`: the page's chart and table alone, which the page fetches to redraw.
pub async fn view(
    pool: web::Data<Db>,
    caller: WebCaller,
    query: web::Query<UsagePageQuery>,
) -> Result<HttpResponse, WebError> {
    let body = load_view(&pool, &caller, &query).await?.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

async fn load_view(pool: &Db, caller: &WebCaller, query: &UsagePageQuery) -> Result<UsageView, WebError> {
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
    let asked = UsageQuery {
        by: Some(by),
        from: Some(format!("-{span}")),
        to: None,
        step: Some(step.to_owned()),
        deployment: None,
    };
    let usage = ops::usage::usage(pool, &caller.caller, &asked, now).await?;
    let chart = stacked(&usage.series, by_name, window, usage.from, usage.to, usage.step);
    let legend = usage.series.iter().take(DRAWN).zip(CLASSES).map(|(s, class)| (class, label(&s.key))).collect();
    Ok(UsageView { by: by_name, window, svg: chart.svg(), legend, rows: usage.series.iter().map(row).collect() })
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
        p50_ms: millis(s.total.p50_ms),
        p95_ms: millis(s.total.p95_ms),
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
    /// Requests and errors per minute; p50 and p95 time to the end of the answer; p50 and
    /// p95 time to the first token; prompt and completion tokens per second.
    pub charts: Vec<TrafficChart>,
    /// Time, requests, errors, completion tokens/s, p50 and p95 time, p50 time to first
    /// token; newest last.
    pub rows: Vec<[String; 7]>,
}

pub struct TrafficChart {
    /// The two lines' names, for the legend.
    pub legend: [&'static str; 2],
    pub svg: String,
}

/// Rows in a traffic table: the most recent buckets.
const TRAFFIC_ROWS: usize = 12;

/// The last hour (by the minute) and the last day (by the hour) of `deployment`'s traffic
/// through the gateway, from the usage rollups, as `caller` may see it.
pub async fn deployment_traffic(
    pool: &Db,
    caller: &crate::auth::Caller,
    deployment: &str,
) -> Result<Vec<TrafficView>, WebError> {
    let now = crate::auth::now_unix();
    let mut views = Vec::new();
    for (heading, ids, span, step) in [
        ("Last hour", ["requests-hour", "latency-hour", "ttft-hour", "tokens-hour"], 3600_i64, "1m"),
        ("Last day", ["requests-day", "latency-day", "ttft-day", "tokens-day"], 86_400, "1h"),
    ] {
        let asked = UsageQuery {
            by: Some(By::Deployment),
            from: Some(format!("-{span}")),
            to: None,
            step: Some(step.into()),
            deployment: Some(deployment.to_owned()),
        };
        let usage = ops::usage::usage(pool, caller, &asked, now).await?;
        let points = usage.series.into_iter().find(|s| s.key == deployment).map(|s| s.points).unwrap_or_default();
        let per_minute = usage.step as f64 / 60.0;
        let per_second = usage.step as f64;
        let line = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(i64, f64)> {
            points.iter().filter_map(|p| f(p).map(|v| (p.start, v))).collect()
        };
        let total: i64 = points.iter().map(|p| p.requests).sum();
        let window = Window { from: usage.from, to: usage.to, step: usage.step };
        let during = heading.to_lowercase();
        let charts = [
            (
                ["requests per minute", "errors per minute"],
                two_lines(
                    ids[0],
                    format!("Requests per minute, {during}"),
                    format!("{total} requests in all."),
                    window,
                    "/min",
                    [
                        ("requests", "Requests per minute", line(&|p| Some(p.requests as f64 / per_minute))),
                        ("errors", "Errors per minute", line(&|p| Some(p.errors as f64 / per_minute))),
                    ],
                ),
            ),
            (
                ["p50 time", "p95 time"],
                two_lines(
                    ids[1],
                    format!("Time to the end of the answer, p50 and p95, {during}"),
                    String::new(),
                    window,
                    "ms",
                    [
                        ("p50", "Median time to the end of the answer", line(&|p| p.p50_ms)),
                        ("p95", "95th percentile time to the end of the answer", line(&|p| p.p95_ms)),
                    ],
                ),
            ),
            (
                ["p50 time to first token", "p95 time to first token"],
                two_lines(
                    ids[2],
                    format!("Time to first token, p50 and p95, {during}"),
                    String::new(),
                    window,
                    "ms",
                    [
                        ("p50", "Median time to the first streamed token", line(&|p| p.p50_ttft_ms)),
                        ("p95", "95th percentile time to the first streamed token", line(&|p| p.p95_ttft_ms)),
                    ],
                ),
            ),
            (
                ["completion tokens per second", "prompt tokens per second"],
                two_lines(
                    ids[3],
                    format!("Tokens per second, {during}"),
                    String::new(),
                    window,
                    "/s",
                    [
                        (
                            "completion",
                            "Completion tokens per second",
                            line(&|p| Some(p.completion_tokens as f64 / per_second)),
                        ),
                        ("prompt", "Prompt tokens per second", line(&|p| Some(p.prompt_tokens as f64 / per_second))),
                    ],
                ),
            ),
        ];
        let rows = points
            .iter()
            .rev()
            .take(TRAFFIC_ROWS)
            .rev()
            .map(|p| {
                [
                    super::system::clock(p.start),
                    p.requests.to_string(),
                    p.errors.to_string(),
                    format!("{:.1}", p.completion_tokens as f64 / per_second),
                    millis(p.p50_ms),
                    millis(p.p95_ms),
                    millis(p.p50_ttft_ms),
                ]
            })
            .collect();
        let charts = charts.into_iter().map(|(legend, chart)| TrafficChart { legend, svg: chart.svg() }).collect();
        views.push(TrafficView { heading, charts, rows });
    }
    Ok(views)
}

/// The edges and step of a chart's window, in seconds.
#[derive(Clone, Copy)]
struct Window {
    from: i64,
    to: i64,
    step: i64,
}

/// A line of a chart: its legend name, what it is in words, and its points.
type Line<'a> = (&'a str, &'a str, Vec<(i64, f64)>);

/// A chart of two lines in one `unit`: its words say
/// `lead`, then each line's largest value.
fn two_lines(
    id: &'static str,
    title: String,
    lead: String,
    window: Window,
    unit: &'static str,
    lines: [Line<'_>; 2],
) -> Chart {
    let mut words = vec![lead];
    let mut top = 0.0_f64;
    for (_, what, points) in &lines {
        words.push(match points.iter().map(|(_, v)| *v).reduce(f64::max) {
            None => format!("{what}: none."),
            Some(max) => {
                top = top.max(max);
                format!("{what}: at most {max:.1} {unit}.")
            }
        });
    }
    let series = lines
        .into_iter()
        .zip(CLASSES)
        .map(|((name, _, points), class)| Series { name: name.to_owned(), class, points })
        .collect();
    Chart {
        id,
        title,
        description: words.into_iter().filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "),
        from: window.from,
        to: window.to,
        y_max: if top > 0.0 { (top * 1.1).ceil() } else { 1.0 },
        unit,
        series,
        max_gap: window.step * 2,
    }
}
