//! Usage accounting's storage: one row per request the gateway relayed (kept for a window,
//! then pruned) and per-minute rollups by deployment, model, version, user and token (kept).
//! Written in batches outside [`super::begin_write`]: nothing caches on these tables, so
//! they must not move the catalog's write count (the gateway's routing table would be read
//! again after every request otherwise).

use std::collections::BTreeMap;

use sqlx::QueryBuilder;

use super::{Db, Result, any_glob, globs_param, on_db};
use crate::domain::Glob;
use crate::domain::latency::Histogram;

/// One request, as the gateway saw it end.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When it arrived, in milliseconds since the epoch.
    pub at_ms: i64,
    pub deployment: String,
    pub model: String,
    pub version: String,
    /// `""` for an anonymous caller.
    pub user: String,
    pub token_id: Option<i64>,
    pub status: u16,
    /// `None`: the answer did not say.
    pub tokens: Option<Tokens>,
    /// Time to the first streamed event; `None` when the answer was not streamed.
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

/// Rows per multi-row INSERT: 11 values each, well under SQLite's limit on variables.
const ROWS_PER_INSERT: usize = 500;

/// What a latency histogram measures (`usage_latency.measure`).
const TOTAL: i64 = 0;
const TTFT: i64 = 1;

/// One minute's sums for one (deployment, model, version, user, token).
#[derive(Default)]
struct Minute {
    requests: i64,
    errors: i64,
    unmetered: i64,
    prompt: i64,
    completion: i64,
    total_ms: f64,
    ttft_ms: f64,
    ttft_count: i64,
}

/// Writes `records` and adds them to their minutes, in one transaction: the rows in
/// multi-row INSERTs, the minutes summed here first, so a second of a busy gateway is a
/// handful of statements, not two per request.
pub async fn record(pool: &Db, records: &[Record]) -> Result<()> {
    // In key order: two nodes adding to the same minutes lock their rows in the same order,
    // so Postgres never has to break a deadlock between them.
    let mut minutes: BTreeMap<(i64, &str, &str, &str, &str, i64), Minute> = BTreeMap::new();
    let mut latency: BTreeMap<(i64, &str, &str, i64), Histogram> = BTreeMap::new();
    for r in records {
        let key = (
            r.at_ms.div_euclid(60_000),
            r.deployment.as_str(),
            r.model.as_str(),
            r.version.as_str(),
            r.user.as_str(),
            r.token_id.unwrap_or(0),
        );
        let m = minutes.entry(key).or_default();
        m.requests += 1;
        m.errors += i64::from(r.status >= 400);
        m.unmetered += i64::from(r.tokens.is_none());
        if let Some(t) = r.tokens {
            m.prompt += clamp(t.prompt);
            m.completion += clamp(t.completion);
        }
        m.total_ms += r.total_ms;
        m.ttft_ms += r.ttft_ms.unwrap_or(0.0);
        m.ttft_count += i64::from(r.ttft_ms.is_some());
        let (minute, deployment, model) = (key.0, key.1, key.2);
        latency.entry((minute, deployment, model, TOTAL)).or_default().record(r.total_ms);
        if let Some(ttft) = r.ttft_ms {
            latency.entry((minute, deployment, model, TTFT)).or_default().record(ttft);
        }
    }
    // Outside `begin_write`: this write must not move the catalog's write count.
    let begin = pool.dialect().pick("BEGIN IMMEDIATE", "BEGIN");
    on_db!(pool, |pool| {
        let mut tx = pool.begin_with(begin).await?;
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::new(
                r#"INSERT INTO usage_requests (at_ms, deployment, model, version, "user", token_id, status, prompt_tokens,
                 completion_tokens, ttft_ms, total_ms) "#,
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(r.at_ms)
                    .push_bind(r.deployment.as_str())
                    .push_bind(r.model.as_str())
                    .push_bind(r.version.as_str())
                    .push_bind(r.user.as_str())
                    .push_bind(r.token_id.unwrap_or(0))
                    .push_bind(i64::from(r.status))
                    .push_bind(r.tokens.map(|t| clamp(t.prompt)))
                    .push_bind(r.tokens.map(|t| clamp(t.completion)))
                    .push_bind(r.ttft_ms)
                    .push_bind(r.total_ms);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for ((minute, deployment, model, version, user, token_id), m) in &minutes {
            sqlx::query(
                r#"INSERT INTO usage_minutes (minute, deployment, model, version, "user", token_id, requests, errors,
                 unmetered, prompt_tokens, completion_tokens, total_ms, ttft_ms, ttft_count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (minute, deployment, model, version, "user", token_id) DO UPDATE SET
                   requests = usage_minutes.requests + excluded.requests,
                   errors = usage_minutes.errors + excluded.errors,
                   unmetered = usage_minutes.unmetered + excluded.unmetered,
                   prompt_tokens = usage_minutes.prompt_tokens + excluded.prompt_tokens,
                   completion_tokens = usage_minutes.completion_tokens + excluded.completion_tokens,
                   total_ms = usage_minutes.total_ms + excluded.total_ms,
                   ttft_ms = usage_minutes.ttft_ms + excluded.ttft_ms,
                   ttft_count = usage_minutes.ttft_count + excluded.ttft_count"#,
            )
            .bind(minute)
            .bind(deployment)
            .bind(model)
            .bind(version)
            .bind(user)
            .bind(token_id)
            .bind(m.requests)
            .bind(m.errors)
            .bind(m.unmetered)
            .bind(m.prompt)
            .bind(m.completion)
            .bind(m.total_ms)
            .bind(m.ttft_ms)
            .bind(m.ttft_count)
            .execute(&mut *tx)
            .await?;
        }
        let buckets: Vec<_> = latency
            .iter()
            .flat_map(|(&(minute, deployment, model, measure), h)| {
                h.buckets().map(move |(bucket, n)| (minute, deployment, model, measure, bucket, n))
            })
            .collect();
        for chunk in buckets.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::new("INSERT INTO usage_latency (minute, deployment, model, measure, bucket, requests) ");
            insert.push_values(chunk, |mut row, &(minute, deployment, model, measure, bucket, n)| {
                row.push_bind(minute)
                    .push_bind(deployment)
                    .push_bind(model)
                    .push_bind(measure)
                    .push_bind(bucket)
                    .push_bind(clamp(n));
            });
            insert.push(
                " ON CONFLICT (minute, deployment, model, measure, bucket) DO UPDATE SET
                   requests = usage_latency.requests + excluded.requests",
            );
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Removes the per-request rows older than `before_ms`; the minutes stay.
pub async fn prune(pool: &Db, before_ms: i64) -> Result<u64> {
    let done = on_db!(pool, |pool| sqlx::query("DELETE FROM usage_requests WHERE at_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(done)
}

/// What usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum By {
    User,
    Token,
    Deployment,
    Model,
}

/// Whose usage a caller may see.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    /// Only this user's requests.
    pub user: Option<String>,
    /// Only requests to models these globs match; `None`: every model.
    pub models: Option<Vec<Glob>>,
    /// Only requests to this deployment.
    pub deployment: Option<String>,
}

/// A window of minutes `[from, to)`, cut into buckets of `step` minutes.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from_minute: i64,
    pub to_minute: i64,
    pub step_minutes: i64,
}

/// Usage in one bucket.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The bucket's start, in seconds since the epoch.
    pub start: i64,
    pub requests: i64,
    pub errors: i64,
    /// Requests whose tokens the server did not report.
    pub unmetered: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Mean time from request to the end of the answer.
    pub mean_ms: f64,
    /// Mean time to the first streamed event, over streamed requests; `null` if none.
    pub mean_ttft_ms: Option<f64>,
    /// The median and 95th percentile of the time to the end of the answer, within 9 %
    /// (read from a histogram). Only in usage by deployment, for a caller who sees all of
    /// its requests (not a viewer limited to their own); `null` otherwise.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// The same of the time to the first streamed event, over streamed requests.
    pub p50_ttft_ms: Option<f64>,
    pub p95_ttft_ms: Option<f64>,
    #[serde(skip)]
    total_ms: f64,
    #[serde(skip)]
    ttft_ms: f64,
    #[serde(skip)]
    ttft_count: i64,
    #[serde(skip)]
    latency: [Histogram; 2],
}

impl Point {
    fn add(&mut self, other: &Point) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.unmetered += other.unmetered;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_ms += other.total_ms;
        self.ttft_ms += other.ttft_ms;
        self.ttft_count += other.ttft_count;
        self.latency[0].merge(&other.latency[0]);
        self.latency[1].merge(&other.latency[1]);
    }

    fn finish(&mut self) {
        self.mean_ms = if self.requests > 0 { self.total_ms / self.requests as f64 } else { 0.0 };
        self.mean_ttft_ms = (self.ttft_count > 0).then(|| self.ttft_ms / self.ttft_count as f64);
        let [total, ttft] = &self.latency;
        (self.p50_ms, self.p95_ms) = (total.quantile(0.5), total.quantile(0.95));
        (self.p50_ttft_ms, self.p95_ttft_ms) = (ttft.quantile(0.5), ttft.quantile(0.95));
    }
}

/// The usage of one user, token, deployment or model: its buckets (only those with
/// requests) and its total over the window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Series {
    pub key: String,
    pub total: Point,
    pub points: Vec<Point>,
}

#[derive(sqlx::FromRow)]
struct Row {
    bucket: i64,
    key: String,
    requests: i64,
    errors: i64,
    unmetered: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_ms: f64,
    ttft_ms: f64,
    ttft_count: i64,
}

/// The one SELECT of usage grouped by `$key` (a fixed column expression), in dialect `$d`.
macro_rules! usage_by {
    ($d:ident, $key:literal) => {
        concat!(
            "SELECT (minute - $1) / $2 AS bucket, ",
            $key,
            r#" AS key, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors,
                CAST(SUM(unmetered) AS BIGINT) AS unmetered, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
                CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens,
                SUM(total_ms) AS total_ms, SUM(ttft_ms) AS ttft_ms, CAST(SUM(ttft_count) AS BIGINT) AS ttft_count
             FROM usage_minutes
             WHERE minute >= $1 AND minute < $3 AND ($4 IS NULL OR "user" = $4)
               AND ($5 IS NULL OR "#,
            any_glob!($d, "model", "$5"),
            ")
               AND ($6 IS NULL OR deployment = $6)
             GROUP BY bucket, key
             ORDER BY bucket"
        )
    };
    ($key:literal) => {
        [usage_by!(sqlite, $key), usage_by!(postgres, $key)]
    };
}

/// Usage in `window` grouped `by`, of what `visible` allows, largest total first.
pub async fn query(pool: &Db, by: By, window: Window, visible: &Visible) -> Result<Vec<Series>> {
    let [sqlite, postgres] = match by {
        By::User => usage_by!(r#""user""#),
        By::Token => usage_by!("CAST(token_id AS TEXT)"),
        By::Deployment => usage_by!("deployment"),
        By::Model => usage_by!("model"),
    };
    let sql = pool.dialect().pick(sqlite, postgres);
    let globs = globs_param(pool.dialect(), visible.models.as_deref())?;
    let step = window.step_minutes.max(1);
    let rows: Vec<Row> = on_db!(pool, |pool| sqlx::query_as(sql)
        .bind(window.from_minute)
        .bind(step)
        .bind(window.to_minute)
        .bind(visible.user.as_deref())
        .bind(globs.as_deref())
        .bind(visible.deployment.as_deref())
        .fetch_all(pool)
        .await)?;
    let mut series: Vec<Series> = Vec::new();
    for row in rows {
        let start = (window.from_minute + row.bucket * step) * 60;
        let point = Point {
            start,
            requests: row.requests,
            errors: row.errors,
            unmetered: row.unmetered,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            total_ms: row.total_ms,
            ttft_ms: row.ttft_ms,
            ttft_count: row.ttft_count,
            ..Point::default()
        };
        let index = match series.iter().position(|s| s.key == row.key) {
            Some(i) => i,
            None => {
                series.push(Series { key: row.key, total: Point::default(), points: Vec::new() });
                series.len() - 1
            }
        };
        let s = &mut series[index];
        s.total.add(&point);
        match s.points.last_mut() {
            Some(last) if last.start == start => last.add(&point),
            _ => s.points.push(point),
        }
    }
    if by == By::Deployment && visible.user.is_none() {
        add_latency(pool, window, visible, globs.as_deref(), &mut series).await?;
    }
    for s in &mut series {
        s.total.finish();
        s.points.iter_mut().for_each(Point::finish);
    }
    series.sort_by(|a, b| {
        (b.total.prompt_tokens + b.total.completion_tokens, b.total.requests)
            .cmp(&(a.total.prompt_tokens + a.total.completion_tokens, a.total.requests))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(series)
}

#[derive(sqlx::FromRow)]
struct LatencyRow {
    step: i64,
    deployment: String,
    measure: i64,
    bucket: i64,
    requests: i64,
}

/// The latency histograms' SELECT, in dialect `$d`.
macro_rules! latency_by_deployment {
    ($d:ident) => {
        concat!(
            "SELECT (minute - $1) / $2 AS step, deployment, measure, bucket, CAST(SUM(requests) AS BIGINT) AS requests
             FROM usage_latency
             WHERE minute >= $1 AND minute < $3 AND ($4 IS NULL OR ",
            any_glob!($d, "model", "$4"),
            ") AND ($5 IS NULL OR deployment = $5)
             GROUP BY step, deployment, measure, bucket"
        )
    };
}

/// Adds the latency histograms of `window` to usage by deployment, to each point and total.
/// A viewer limited to their own requests gets none: the histograms hold everyone's.
async fn add_latency(
    pool: &Db,
    window: Window,
    visible: &Visible,
    globs: Option<&str>,
    series: &mut [Series],
) -> Result<()> {
    let step = window.step_minutes.max(1);
    let sql = pool.dialect().pick(latency_by_deployment!(sqlite), latency_by_deployment!(postgres));
    let rows: Vec<LatencyRow> = on_db!(pool, |pool| sqlx::query_as(sql)
        .bind(window.from_minute)
        .bind(step)
        .bind(window.to_minute)
        .bind(globs)
        .bind(visible.deployment.as_deref())
        .fetch_all(pool)
        .await)?;
    for row in rows {
        let (Some(s), Ok(measure)) =
            (series.iter_mut().find(|s| s.key == row.deployment), usize::try_from(row.measure))
        else {
            continue;
        };
        let start = (window.from_minute + row.step * step) * 60;
        let requests = u64::try_from(row.requests).unwrap_or(0);
        if let Some(h) = s.total.latency.get_mut(measure) {
            h.add(row.bucket, requests);
        }
        if let Some(h) = s.points.iter_mut().find(|p| p.start == start).and_then(|p| p.latency.get_mut(measure)) {
            h.add(row.bucket, requests);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at_ms: i64, deployment: &str, model: &str, user: &str, total_ms: f64, ttft_ms: Option<f64>) -> Record {
        Record {
            at_ms,
            deployment: deployment.into(),
            model: model.into(),
            version: "1".into(),
            user: user.into(),
            token_id: None,
            status: 200,
            tokens: Some(Tokens { prompt: 1, completion: 2 }),
            ttft_ms,
            total_ms,
        }
    }

    #[tokio::test]
    async fn percentiles_by_deployment_come_from_every_minute_and_batch_of_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Db::Sqlite(super::super::open(&dir.path().join("hangar.db")).await.expect("open"));
        // 1..=200 ms over two minutes and two batches (the second minute's rows are merged
        // into what the first batch wrote); streamed ones have a ttft of a tenth.
        let minute = 29_000_000_i64;
        let all: Vec<Record> = (1..=200)
            .map(|ms| {
                let at = (minute + i64::from(ms % 2)) * 60_000;
                let ttft = (ms % 4 == 0).then(|| f64::from(ms) / 10.0);
                request(at, "d", "team/m", if ms <= 100 { "ann" } else { "bob" }, f64::from(ms), ttft)
            })
            .collect();
        record(&pool, &all[..120]).await.expect("first batch");
        record(&pool, &all[120..]).await.expect("second batch");
        record(&pool, &[request(minute * 60_000, "other", "other/m", "ann", 5000.0, None)]).await.expect("other");

        let window = Window { from_minute: minute, to_minute: minute + 2, step_minutes: 1 };
        let series = query(&pool, By::Deployment, window, &Visible::default()).await.expect("query");
        let d = series.iter().find(|s| s.key == "d").expect("d");
        let near = |got: Option<f64>, exact: f64| got.is_some_and(|v| (v / exact - 1.0).abs() < 0.095);
        assert!(near(d.total.p50_ms, 100.0) && near(d.total.p95_ms, 190.0), "{:?}", d.total);
        assert!(near(d.total.p50_ttft_ms, 10.0) && near(d.total.p95_ttft_ms, 19.0), "{:?}", d.total);
        assert_eq!(d.points.len(), 2);
        // Even milliseconds in the first minute: 2..=200, so its median is 100; odd in the second.
        assert!(near(d.points[0].p50_ms, 100.0) && near(d.points[1].p50_ms, 99.0), "{:?}", d.points);
        let other = series.iter().find(|s| s.key == "other").expect("other");
        assert!(near(other.total.p95_ms, 5000.0), "{:?}", other.total);

        // A scope that excludes a model excludes its latency too; a viewer limited to their own
        // requests gets no percentiles (the histograms hold everyone's), and by user none either.
        let scoped = Visible { models: Some(vec![Glob::parse("other/*").expect("glob")]), ..Visible::default() };
        let seen = query(&pool, By::Deployment, window, &scoped).await.expect("query");
        assert_eq!(seen.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["other"]);
        let own = Visible { user: Some("ann".into()), ..Visible::default() };
        let hers = query(&pool, By::Deployment, window, &own).await.expect("query");
        assert!(hers.iter().all(|s| s.total.p50_ms.is_none() && s.total.requests > 0), "{hers:?}");
        let by_user = query(&pool, By::User, window, &Visible::default()).await.expect("query");
        assert!(by_user.iter().all(|s| s.total.p50_ms.is_none()), "{by_user:?}");
    }
}
