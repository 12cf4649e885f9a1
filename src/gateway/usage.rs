//! Token accounting: what each relayed request used, read from the answer as it streams
//! past, and the ledger that stores it.
//!
//! A JSON answer's `usage` (or llama.cpp's `timings` when there is no `usage`) is read once
//! the body has passed; the body's chunks are kept by reference meanwhile (no copy), up to
//! [`JSON_KEPT`]. A streamed (SSE) answer is relayed event by event: each complete event goes
//! out as soon as it has arrived, and the one carrying `usage` is read. A streamed request
//! whose client did not ask for usage is sent upstream with
//! `stream_options.include_usage` set, and the usage-only event that this adds to the answer
//! is taken out again, so the client gets what it asked for.
//!
//! Records go to the ledger through a bounded channel, never waiting: when the writer falls
//! behind, records are dropped and counted, and the request is not slowed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::catalog::Db;
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::catalog::usage::{self, Record, Tokens};

/// The largest JSON answer whose `usage` is read (embeddings of a large batch can be bigger;
/// they are counted as requests with tokens unknown).
const JSON_KEPT: usize = 8 << 20;
/// Records waiting for the writer before new ones are dropped: a few seconds of a busy
/// gateway.
const BACKLOG: usize = 65_536;
/// How long the writer gathers records before a transaction: a busy gateway costs one
/// write a second, not one per request (SQLite's statements run on the writer's CPU, which
/// the gateway shares).
const GATHER: Duration = Duration::from_secs(1);
/// How often per-request rows older than the retention window are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Where records go: a cheap handle to the writer's channel.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

/// The writer's end, taken by [`Ledger::run`].
pub struct LedgerWriter {
    rx: tokio::sync::Mutex<mpsc::Receiver<Record>>,
    pool: Db,
    retention: Duration,
}

impl Ledger {
    /// A ledger writing to `pool`, keeping per-request rows for `retention`.
    pub fn new(pool: Db, retention: Duration) -> (Self, Arc<LedgerWriter>) {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let writer = LedgerWriter { rx: tokio::sync::Mutex::new(rx), pool, retention };
        (Self { tx, dropped: Arc::default() }, Arc::new(writer))
    }

    /// Records a request that got no answer from the model server (a refusal or an
    /// upstream failure after routing).
    pub fn refused(&self, record: Record) {
        self.send(record);
    }

    fn send(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the writer fell behind (or was gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl LedgerWriter {
    /// Writes records in batches as they come, and prunes old per-request rows.
    pub async fn run(self: Arc<Self>) {
        let mut rx = self.rx.lock().await;
        let mut pruned = Instant::now().checked_sub(PRUNE_EVERY).unwrap_or_else(Instant::now);
        let mut batch = Vec::new();
        loop {
            let received = tokio::time::timeout(PRUNE_EVERY, rx.recv_many(&mut batch, BACKLOG)).await;
            if matches!(received, Ok(0)) {
                return;
            }
            if !batch.is_empty() {
                tokio::time::sleep(GATHER).await;
                while batch.len() < BACKLOG
                    && let Ok(record) = rx.try_recv()
                {
                    batch.push(record);
                }
                if let Err(e) = usage::record(&self.pool, &batch).await {
                    tracing::warn!(error = %e, records = batch.len(), "could not write usage records");
                }
                batch.clear();
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = Instant::now();
                let cutoff = now_ms() - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
                if let Err(e) = usage::prune(&self.pool, cutoff).await {
                    tracing::warn!(error = %e, "could not prune usage records");
                }
            }
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What kind of answer is being metered.
pub enum Answer {
    /// Passed through as it is, nothing read (the raw proxy).
    Unmetered,
    /// A JSON body (or anything not streamed).
    Json,
    /// Server-sent events; `strip` takes out the usage-only event the gateway asked for.
    Events { strip: bool },
}

/// A relayed answer's body that reads its usage on the way and records the request when it
/// ends (or the client goes away).
pub struct Metered<S> {
    inner: S,
    answer: Answer,
    /// JSON: the chunks so far, by reference. Events: an event not yet complete.
    kept: Vec<Bytes>,
    kept_len: usize,
    pending: BytesMut,
    started: Instant,
    first_event: Option<Duration>,
    tokens: Option<Tokens>,
    ended: bool,
    record: Option<Record>,
    ledger: Ledger,
    on_tokens: Box<dyn Fn(Tokens) + Send>,
}

impl<S> Metered<S> {
    /// Meters `inner`; `record` is the request's record with everything but what the
    /// answer tells (tokens, times), `None` for an answer not accounted; `on_tokens` counts
    /// tokens where Prometheus reads them.
    pub fn new(
        inner: S,
        answer: Answer,
        started: Instant,
        record: Option<Record>,
        ledger: Ledger,
        on_tokens: impl Fn(Tokens) + Send + 'static,
    ) -> Self {
        Self {
            inner,
            answer,
            kept: Vec::new(),
            kept_len: 0,
            pending: BytesMut::new(),
            started,
            first_event: None,
            tokens: None,
            ended: false,
            record,
            ledger,
            on_tokens: Box::new(on_tokens),
        }
    }

    /// Complete events of `pending` to pass on, usage read and (if asked) the added usage
    /// event taken out; an incomplete event stays pending.
    fn events(&mut self, flush: bool) -> Bytes {
        let strip = matches!(self.answer, Answer::Events { strip: true });
        let end = if flush { self.pending.len() } else { last_event_end(&self.pending) };
        if end == 0 {
            return Bytes::new();
        }
        let complete = self.pending.split_to(end).freeze();
        let mut out: Option<BytesMut> = None;
        let mut start = 0;
        for event_end in event_ends(&complete).chain(std::iter::once(complete.len())) {
            if event_end <= start {
                continue;
            }
            let event = &complete[start..event_end];
            let seen = read_event(event);
            if seen.data && self.first_event.is_none() {
                self.first_event = Some(self.started.elapsed());
            }
            if let Some(tokens) = seen.tokens {
                self.tokens = Some(tokens);
            }
            if strip && seen.usage_only {
                // The first event taken out: copy what passed before it, and go on copying.
                out.get_or_insert_with(|| BytesMut::from(&complete[..start]));
            } else if let Some(kept) = &mut out {
                kept.extend_from_slice(event);
            }
            start = event_end;
        }
        match out {
            Some(kept) => kept.freeze(),
            None => complete,
        }
    }

    fn finish_json(&mut self) {
        if self.kept_len > JSON_KEPT {
            return;
        }
        let mut body = Vec::with_capacity(self.kept_len);
        for chunk in &self.kept {
            body.extend_from_slice(chunk);
        }
        self.tokens = serde_json::from_slice::<UsageOf>(&body).ok().and_then(UsageOf::tokens);
    }
}

impl<S> Drop for Metered<S> {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else { return };
        record.total_ms = self.started.elapsed().as_secs_f64() * 1e3;
        record.ttft_ms = self.first_event.map(|t| t.as_secs_f64() * 1e3);
        record.tokens = self.tokens;
        if let Some(tokens) = self.tokens {
            (self.on_tokens)(tokens);
        }
        self.ledger.send(record);
    }
}

impl<S, E> Stream for Metered<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match std::pin::Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(chunk))) => match this.answer {
                    Answer::Unmetered => return Poll::Ready(Some(Ok(chunk))),
                    Answer::Json => {
                        this.kept_len += chunk.len();
                        if this.kept_len <= JSON_KEPT {
                            this.kept.push(chunk.clone());
                        }
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    Answer::Events { .. } => {
                        this.pending.extend_from_slice(&chunk);
                        let out = this.events(false);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(out)));
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.ended = true;
                    match this.answer {
                        Answer::Unmetered => return Poll::Ready(None),
                        Answer::Json => {
                            this.finish_json();
                            return Poll::Ready(None);
                        }
                        Answer::Events { .. } => {
                            let rest = this.events(true);
                            return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
                        }
                    }
                }
            }
        }
    }
}

/// Where each event of `buf` ends: after a blank line (`\n\n` or `\r\n\r\n`).
fn event_ends(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..buf.len()).filter_map(move |i| match (buf[i], buf.get(i + 1), buf.get(i + 2)) {
        (b'\n', Some(b'\n'), _) => Some(i + 2),
        (b'\n', Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    })
}

/// The end of the last complete event in `buf`; 0 if there is none.
fn last_event_end(buf: &[u8]) -> usize {
    event_ends(buf).last().unwrap_or(0)
}

#[derive(Default)]
struct Seen {
    /// The event has a data line other than `[DONE]`.
    data: bool,
    tokens: Option<Tokens>,
    /// It carries usage and no choices: the chunk `include_usage` adds.
    usage_only: bool,
}

fn read_event(event: &[u8]) -> Seen {
    let mut seen = Seen::default();
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else { continue };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" || data.is_empty() {
            continue;
        }
        seen.data = true;
        // Most events are tokens: parse only the ones that can carry usage.
        let mentions = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        if !mentions(b"\"usage\"") && !mentions(b"\"timings\"") {
            continue;
        }
        if let Ok(answer) = serde_json::from_slice::<UsageOf>(data) {
            seen.usage_only = answer.usage.is_some() && answer.choices.as_ref().is_none_or(Vec::is_empty);
            if let Some(tokens) = answer.tokens() {
                seen.tokens = Some(tokens);
            }
        }
    }
    seen
}

/// What an answer (or one streamed chunk) says of its tokens.
#[derive(serde::Deserialize)]
struct UsageOf {
    usage: Option<Usage>,
    /// llama.cpp's own count, for a server that sends no `usage`.
    timings: Option<Timings>,
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Timings {
    prompt_n: Option<u64>,
    predicted_n: Option<u64>,
}

impl UsageOf {
    fn tokens(self) -> Option<Tokens> {
        if let Some(u) = self.usage
            && (u.prompt_tokens.is_some() || u.completion_tokens.is_some())
        {
            return Some(Tokens { prompt: u.prompt_tokens.unwrap_or(0), completion: u.completion_tokens.unwrap_or(0) });
        }
        let t = self.timings?;
        (t.prompt_n.is_some() || t.predicted_n.is_some())
            .then(|| Tokens { prompt: t.prompt_n.unwrap_or(0), completion: t.predicted_n.unwrap_or(0) })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    fn record() -> Record {
        Record {
            at_ms: 0,
            deployment: "d".into(),
            model: "m".into(),
            version: "1".into(),
            user: "u".into(),
            token_id: None,
            status: 200,
            tokens: None,
            ttft_ms: None,
            total_ms: 0.0,
        }
    }

    /// Relays `chunks` through a meter; returns what the client got and what was recorded.
    async fn relay(chunks: &[&str], answer: Answer) -> (String, Record) {
        let (ledger, writer) = Ledger::new(
            crate::catalog::Db::Sqlite(sqlx::SqlitePool::connect_lazy("sqlite::memory:").expect("pool")),
            Duration::ZERO,
        );
        let items: Vec<Result<Bytes, std::io::Error>> = chunks.iter().map(|c| Ok(Bytes::from(c.to_string()))).collect();
        let metered =
            Metered::new(futures_util::stream::iter(items), answer, Instant::now(), Some(record()), ledger, |_| {});
        let got: Vec<_> = metered.collect().await;
        let text: String =
            got.into_iter().map(|c| String::from_utf8(c.expect("chunk").to_vec()).expect("utf-8")).collect();
        let recorded = writer.rx.lock().await.recv().await.expect("a record");
        (text, recorded)
    }

    #[tokio::test]
    async fn a_json_answer_s_usage_is_read_and_the_body_passes_unchanged() {
        let body =
            r#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let (got, rec) = relay(&[&body[..20], &body[20..]], Answer::Json).await;
        assert_eq!(got, body);
        assert_eq!(rec.tokens, Some(Tokens { prompt: 7, completion: 3 }));
        assert_eq!(rec.ttft_ms, None);
    }

    #[tokio::test]
    async fn llama_cpp_timings_count_when_there_is_no_usage_and_nothing_is_unknown_otherwise() {
        let (_, rec) = relay(&[r#"{"choices":[],"timings":{"prompt_n":5,"predicted_n":9}}"#], Answer::Json).await;
        assert_eq!(rec.tokens, Some(Tokens { prompt: 5, completion: 9 }));
        let (_, rec) = relay(&[r#"{"text":"no usage here"}"#], Answer::Json).await;
        assert_eq!(rec.tokens, None, "tokens unknown");
    }

    #[tokio::test]
    async fn the_usage_event_the_gateway_asked_for_is_read_and_taken_out_events_split_anywhere() {
        let events = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4}}\n\n",
            "data: [DONE]\n\n"
        );
        let want = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        for cut in [1, 10, 50, 80, 120, events.len() - 3] {
            let (got, rec) = relay(&[&events[..cut], &events[cut..]], Answer::Events { strip: true }).await;
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(rec.tokens, Some(Tokens { prompt: 2, completion: 4 }), "cut at {cut}");
            assert!(rec.ttft_ms.is_some());
        }
        let (got, rec) = relay(&[events], Answer::Events { strip: false }).await;
        assert_eq!(got, events, "a client that asked for usage gets it");
        assert_eq!(rec.tokens, Some(Tokens { prompt: 2, completion: 4 }));
    }

    #[tokio::test]
    async fn crlf_events_and_a_tail_without_a_blank_line_pass() {
        let events = "data: {\"choices\":[{\"text\":\"a\"}]}\r\n\r\ndata: [DONE]";
        let (got, rec) = relay(&[events], Answer::Events { strip: true }).await;
        assert_eq!(got, events);
        assert_eq!(rec.tokens, None);
    }
}
