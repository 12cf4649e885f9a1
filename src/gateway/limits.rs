//! Fair-use limits, enforced on each `/v1` request before it is relayed: requests per
//! calendar minute, tokens per calendar day (UTC) and requests at once, per user (all their
//! tokens together) and per token. A request over a limit is answered 429 in OpenAI's shape
//! with `Retry-After` (the seconds until the minute or the day turns; 1 for concurrency).
//!
//! The limits are read from the catalog when its write count moves, so a request costs no
//! query; a caller without limits costs two map lookups. Counters live in memory: a
//! subject's tokens for the day are read once from the usage rollups (so a restart does not
//! hand out a fresh day), then counted as answers report them. A request in flight when the
//! limit is reached finishes; the day's count can go over by what requests in flight use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::catalog::Db;

use super::OpenAiError;
use crate::auth::Caller;
use crate::catalog::usage::Tokens;
use crate::domain::{Limits, Subject, UserName};

#[derive(Default)]
struct Table {
    users: HashMap<UserName, Limits>,
    tokens: HashMap<i64, Limits>,
}

#[derive(Debug, Default)]
struct Counters {
    minute: i64,
    requests: u64,
    day: i64,
    /// `None` until read from the rollups for `day`.
    tokens: Option<u64>,
    in_flight: u64,
}

#[derive(Default)]
pub struct Limiter {
    table: Mutex<Option<(u64, Arc<Table>)>>,
    counters: Mutex<HashMap<Subject, Counters>>,
}

/// A request let through: holds its place against the concurrency limits until dropped, and
/// takes the tokens its answer reports.
pub struct Permit {
    limiter: Arc<Limiter>,
    subjects: Vec<Subject>,
}

impl Permit {
    pub fn used(&self, tokens: Tokens) {
        let mut counters = self.limiter.counters.lock().unwrap_or_else(PoisonError::into_inner);
        for subject in &self.subjects {
            if let Some(c) = counters.get_mut(subject)
                && let Some(used) = &mut c.tokens
            {
                *used += tokens.prompt + tokens.completion;
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counters = self.limiter.counters.lock().unwrap_or_else(PoisonError::into_inner);
        for subject in &self.subjects {
            if let Some(c) = counters.get_mut(subject) {
                c.in_flight = c.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Limiter {
    async fn table(&self, pool: &Db) -> Result<Arc<Table>, OpenAiError> {
        let generation = crate::catalog::generation();
        if let Some((seen, table)) = &*self.table.lock().unwrap_or_else(PoisonError::into_inner)
            && *seen == generation
        {
            return Ok(Arc::clone(table));
        }
        let mut table = Table::default();
        let rows =
            crate::catalog::limits::list(pool).await.map_err(|e| OpenAiError::from(crate::error::ApiError::from(e)))?;
        for (subject, limits) in rows {
            match subject {
                Subject::User(name) => table.users.insert(name, limits),
                Subject::Token(id) => table.tokens.insert(id, limits),
            };
        }
        let table = Arc::new(table);
        *self.table.lock().unwrap_or_else(PoisonError::into_inner) = Some((generation, Arc::clone(&table)));
        Ok(table)
    }

    /// Lets `caller`'s request through at `now` (Unix seconds), or refuses it with 429.
    pub async fn admit(self: &Arc<Self>, pool: &Db, caller: &Caller, now: i64) -> Result<Permit, OpenAiError> {
        let table = self.table(pool).await?;
        let mut bound: Vec<(Subject, Limits)> = Vec::new();
        if let Some(user) = &caller.user
            && let Some(limits) = table.users.get(user)
        {
            bound.push((Subject::User(user.clone()), *limits));
        }
        if let Some(id) = caller.token_id
            && let Some(limits) = table.tokens.get(&id)
        {
            bound.push((Subject::Token(id), *limits));
        }
        if bound.is_empty() {
            return Ok(Permit { limiter: Arc::clone(self), subjects: Vec::new() });
        }
        let (minute, day) = (now.div_euclid(60), now.div_euclid(86_400));
        // A subject with a daily token limit whose count for today is not known yet.
        let to_read: Vec<Subject> = {
            let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            bound
                .iter()
                .filter(|(_, l)| l.tokens_per_day.is_some())
                .filter(|(s, _)| counters.get(s).is_none_or(|c| c.day != day || c.tokens.is_none()))
                .map(|(s, _)| s.clone())
                .collect()
        };
        for subject in to_read {
            let used = crate::catalog::limits::tokens_since(pool, &subject, day * 1440)
                .await
                .map_err(|e| OpenAiError::from(crate::error::ApiError::from(e)))?;
            let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            let c = counters.entry(subject).or_default();
            if c.day != day {
                *c = Counters { minute: c.minute, requests: c.requests, in_flight: c.in_flight, ..Counters::default() };
                c.day = day;
            }
            c.tokens.get_or_insert(used);
        }
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        for (subject, limits) in &bound {
            let c = counters.entry(subject.clone()).or_default();
            if c.minute != minute {
                c.minute = minute;
                c.requests = 0;
            }
            if let Some(max) = limits.concurrent
                && c.in_flight >= max
            {
                return Err(OpenAiError::rate_limited(format!("{subject} has {max} requests in flight, its limit"), 1));
            }
            if let Some(max) = limits.requests_per_minute
                && c.requests >= max
            {
                let wait = 60 - now.rem_euclid(60);
                return Err(OpenAiError::rate_limited(
                    format!("{subject} made {max} requests this minute, its limit"),
                    wait,
                ));
            }
            if let Some(max) = limits.tokens_per_day
                && c.day == day
                && c.tokens.is_some_and(|used| used >= max)
            {
                let wait = 86_400 - now.rem_euclid(86_400);
                return Err(OpenAiError::rate_limited(
                    format!("{subject} used its {max} tokens for today (UTC)"),
                    wait,
                ));
            }
        }
        for (subject, _) in &bound {
            if let Some(c) = counters.get_mut(subject) {
                c.requests += 1;
                c.in_flight += 1;
            }
        }
        Ok(Permit { limiter: Arc::clone(self), subjects: bound.into_iter().map(|(s, _)| s).collect() })
    }
}
