//! The client commands that are one or a few REST calls each: `ls`, `show`, `alias`,
//! `deploy`, `stop`, `logs`, `token`, `events`. Each prints the server's JSON with `--json`,
//! else a short text or a table.

use std::collections::VecDeque;
use std::io::Write as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use super::error::{ClientError, Result};
use super::http::{Client, model_path};
use super::output::{Output, field, size_field, table};
use super::pull::resolve;
use super::target::{Selector, Target};
use crate::domain::{AliasName, DeploymentName, ModelName, NodeName, VersionName};

/// How often `--wait` looks at a deployment.
const POLL: Duration = Duration::from_millis(250);
/// How long `events -f` waits before reconnecting a stream that broke.
const RECONNECT: Duration = Duration::from_secs(1);

fn usage(e: crate::domain::NameError) -> ClientError {
    ClientError::Usage(e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// A model: list its versions. Without it: list the models.
    pub model: Option<String>,
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn ls(client: &Client, args: &LsArgs, out: Output) -> Result<()> {
    match &args.model {
        None => {
            let models: Vec<Value> = client.get_all(&["api", "v1", "models"]).await?;
            out.emit(&Value::Array(models.clone()), || {
                let rows: Vec<Vec<String>> = models
                    .iter()
                    .map(|m| {
                        vec![
                            field(m, "name"),
                            field(m, "latest_version"),
                            field(m, "version_count"),
                            field(m, "updated_at"),
                            field(m, "description"),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    return "no models yet; add one with hangar push PATH --model NAME".to_owned();
                }
                table(&["MODEL", "LATEST", "VERSIONS", "UPDATED", "DESCRIPTION"], &rows)
            });
        }
        Some(model) => {
            let model = ModelName::parse(model).map_err(usage)?;
            let versions: Vec<Value> = client.get_all(&model_path(model.as_str(), &["versions"])).await?;
            out.emit(&Value::Array(versions.clone()), || versions_table(&versions));
        }
    }
    Ok(())
}

fn versions_table(versions: &[Value]) -> String {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                field(v, "version"),
                field(v, "state"),
                field(v, "file_count"),
                size_field(v, "size"),
                field(v, "aliases"),
                field(v, "created_at"),
                field(v, "created_by"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no versions yet".to_owned();
    }
    table(&["VERSION", "STATE", "FILES", "SIZE", "ALIASES", "CREATED", "BY"], &rows)
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// MODEL (the model, its aliases and versions), MODEL:VERSION or MODEL@ALIAS (a version
    /// and its files).
    pub target: String,
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn show(client: &Client, args: &ShowArgs, out: Output) -> Result<()> {
    let target = Target::parse(&args.target)?;
    let model = target.model.as_str();
    if target.selector == Selector::Latest {
        let info: Value = client.get(&model_path(model, &[])).await?;
        let aliases: Value = client.get(&model_path(model, &["aliases"])).await?;
        let versions: Vec<Value> = client.get_all(&model_path(model, &["versions"])).await?;
        let document = json!({ "model": info, "aliases": aliases["items"], "versions": versions });
        out.emit(&document, || {
            let mut text = format!(
                "model {}\n  description  {}\n  tags         {}\n  created      {} by {}\n",
                field(&info, "name"),
                field(&info, "description"),
                field(&info, "tags"),
                field(&info, "created_at"),
                field(&info, "created_by"),
            );
            let empty = Vec::new();
            let aliases = aliases["items"].as_array().unwrap_or(&empty);
            let line =
                aliases.iter().map(|a| format!("{}={}", field(a, "alias"), field(a, "version"))).collect::<Vec<_>>();
            text.push_str(&format!(
                "  aliases      {}\n\n",
                if line.is_empty() { "-".to_owned() } else { line.join(", ") }
            ));
            text.push_str(&versions_table(&versions));
            text
        });
        return Ok(());
    }
    let version = resolve(client, &target).await?;
    let info: Value = client.get(&model_path(model, &["versions", &version])).await?;
    let files: Value = client.get(&model_path(model, &["versions", &version, "files"])).await?;
    let document = json!({ "version": info, "files": files["items"] });
    out.emit(&document, || {
        let metadata = match info.get("metadata") {
            Some(Value::Object(m)) if !m.is_empty() => serde_json::to_string(m).unwrap_or_default(),
            _ => "-".to_owned(),
        };
        let mut text = format!(
            "{model}:{version} ({})\n  manifest   {}\n  files      {}, {}\n  aliases    {}\n  metadata   {metadata}\n  created    {} by {}\n  published  {} by {}\n\n",
            field(&info, "state"),
            field(&info, "manifest_digest"),
            field(&info, "file_count"),
            size_field(&info, "size"),
            field(&info, "aliases"),
            field(&info, "created_at"),
            field(&info, "created_by"),
            field(&info, "published_at"),
            field(&info, "published_by"),
        );
        let empty = Vec::new();
        let rows: Vec<Vec<String>> = files["items"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|f| vec![field(f, "path"), size_field(f, "size"), field(f, "digest")])
            .collect();
        text.push_str(&table(&["PATH", "SIZE", "DIGEST"], &rows));
        text
    });
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AliasArgs {
    #[command(subcommand)]
    pub action: AliasAction,
    #[command(flatten)]
    pub remote: super::Remote,
}

#[derive(Debug, clap::Subcommand)]
pub enum AliasAction {
    /// Point MODEL@ALIAS at a published VERSION (created or moved; deployments that follow
    /// the alias roll over).
    Set { model: String, alias: String, version: String },
}

pub async fn alias(client: &Client, args: &AliasArgs, out: Output) -> Result<()> {
    let AliasAction::Set { model, alias, version } = &args.action;
    let model = ModelName::parse(model).map_err(usage)?;
    let alias = AliasName::parse(alias).map_err(usage)?;
    let version = VersionName::parse(version).map_err(usage)?;
    let set: Value =
        client.put(&model_path(model.as_str(), &["aliases", alias.as_str()]), &json!({ "version": version })).await?;
    out.emit(&set, || format!("{model}@{alias} -> {}", field(&set, "version")));
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// MODEL@ALIAS (follows the alias) or MODEL:VERSION (pinned); with --move-to, the
    /// deployment's name.
    pub target: String,
    /// How to serve it: a runtime preset (vllm, llama-cpp, …) or one an admin added.
    #[arg(long, required_unless_present = "move_to")]
    pub runtime: Option<String>,
    /// The node to run it on (hangar nodes); default: this server's node when its GPUs
    /// fit, else the first node with room.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Move the deployment TARGET to another node: it stops where it runs and starts there.
    #[arg(long, value_name = "NODE", conflicts_with_all = ["runtime", "gpus", "gpu_memory", "name", "node"])]
    pub move_to: Option<String>,
    /// Whole GPUs, for this deployment alone.
    #[arg(long, conflicts_with = "gpu_memory")]
    pub gpus: Option<u32>,
    /// GiB of one GPU's memory, shared with other deployments.
    #[arg(long, value_name = "GIB")]
    pub gpu_memory: Option<f64>,
    /// The deployment's name (its route in the gateway); default: from the model's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Wait until it is running (exit 1 if it fails).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub timeout: u64,
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn deploy(client: &Client, args: &DeployArgs, out: Output) -> Result<()> {
    if let Some(node) = &args.move_to {
        let name = DeploymentName::parse(&args.target).map_err(usage)?;
        let node = NodeName::parse(node).map_err(usage)?;
        let path = ["api", "v1", "deployments", name.as_str(), "move"];
        let moved: Value = client.post(&path, &json!({ "node": node })).await?;
        let last = if args.wait { wait_for(client, name.as_str(), "running", args.timeout).await? } else { moved };
        out.emit(&last, || deployment_line(&last));
        return Ok(());
    }
    let target = Target::parse(&args.target)?;
    if target.selector == Selector::Latest {
        return Err(ClientError::Usage(format!(
            "say which version to deploy: {0}@ALIAS follows an alias, {0}:VERSION pins one",
            target.model
        )));
    }
    let mut body = json!({ "model": target.to_string(), "runtime": args.runtime });
    if let Some(name) = &args.name {
        body["name"] = json!(DeploymentName::parse(name).map_err(usage)?);
    }
    if let Some(gpus) = args.gpus {
        body["gpus"] = json!(gpus);
    }
    if let Some(gib) = args.gpu_memory {
        body["gpu_memory_gib"] = json!(gib);
    }
    if let Some(node) = &args.node {
        body["node"] = json!(NodeName::parse(node).map_err(usage)?);
    }
    let created: Value = client.post(&["api", "v1", "deployments"], &body).await?;
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let last = if args.wait { wait_for(client, &name, "running", args.timeout).await? } else { created };
    out.emit(&last, || deployment_line(&last));
    Ok(())
}

fn deployment_line(d: &Value) -> String {
    let mut line = format!(
        "deployment {}: {} ({} on {})",
        field(d, "name"),
        field(d, "state"),
        field(d, "target"),
        field(d, "runtime")
    );
    if let Some(node) = d["node"].as_str() {
        line.push_str(&format!(", node {node}"));
    }
    if let Some(address) = d["address"].as_str() {
        line.push_str(&format!(", at {address}"));
    }
    if let Some(reason) = d["reason"].as_str() {
        line.push_str(&format!("; {reason}"));
    }
    line
}

/// Polls a deployment until its state is `goal`; `failed` (or `stopped` while waiting for
/// `running`) ends the wait with an error.
async fn wait_for(client: &Client, name: &str, goal: &str, timeout: u64) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut seen = String::new();
    loop {
        let d: Value = client.get(&["api", "v1", "deployments", name]).await?;
        let state = d["state"].as_str().unwrap_or_default().to_owned();
        if state == goal {
            return Ok(d);
        }
        if state != seen {
            eprintln!("{name}: {state}");
            seen.clone_from(&state);
        }
        if state == "failed" || (goal == "running" && state == "stopped") {
            return Err(ClientError::Failed(format!(
                "deployment {name} is {state}: {}",
                d["reason"].as_str().unwrap_or("no reason given; see hangar logs")
            )));
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Failed(format!(
                "deployment {name} is still {state} after {timeout} s; see hangar logs {name}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The deployment.
    pub name: String,
    /// Wait until it has stopped.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn stop(client: &Client, args: &StopArgs, out: Output) -> Result<()> {
    let name = DeploymentName::parse(&args.name).map_err(usage)?;
    let stopped: Value = client.post(&["api", "v1", "deployments", name.as_str(), "stop"], &json!({})).await?;
    let last = if args.wait { wait_for(client, name.as_str(), "stopped", args.timeout).await? } else { stopped };
    out.emit(&last, || deployment_line(&last));
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The deployment.
    pub name: String,
    /// Keep printing what the container writes until it stops (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end to start with.
    #[arg(long, default_value_t = 100)]
    pub tail: u32,
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn logs(client: &Client, args: &LogsArgs, out: Output) -> Result<()> {
    let name = DeploymentName::parse(&args.name).map_err(usage)?;
    let mut url = client.url(["api", "v1", "deployments", name.as_str(), "logs"]);
    url.query_pairs_mut().append_pair("tail", &args.tail.to_string()).append_pair("follow", &args.follow.to_string());
    let response = client.send(client.request(Method::GET, url)).await?;
    let mut lines = Lines::default();
    let mut stream = response.bytes_stream();
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::failed("the log stream broke off", &e))?;
        if out.json {
            for line in lines.push(&chunk) {
                let _ = writeln!(stdout, "{}", json!({ "deployment": name, "line": line }));
            }
        } else {
            let _ = stdout.write_all(&chunk);
        }
        let _ = stdout.flush();
    }
    if out.json
        && let Some(line) = lines.rest()
    {
        let _ = writeln!(stdout, "{}", json!({ "deployment": name, "line": line }));
    }
    Ok(())
}

/// Splits a byte stream into lines across chunk boundaries.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_owned());
        }
        lines
    }

    fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned())
    }
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    #[command(flatten)]
    pub remote: super::Remote,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create a token for yourself and print it (it is shown once).
    Create {
        /// What it is for ("ci", "laptop").
        name: String,
        /// viewer, maintainer or admin; default: your own role.
        #[arg(long)]
        role: Option<String>,
        /// Lifetime such as 30d or 12h; default: it never expires.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Limit it to models matching this glob (repeatable).
        #[arg(long = "model", value_name = "GLOB")]
        models: Vec<String>,
    },
    /// List your tokens (an admin sees everyone's).
    List,
    /// Revoke a token by its id (from `token list`).
    Revoke { id: i64 },
}

pub async fn token(client: &Client, args: &TokenArgs, out: Output) -> Result<()> {
    match &args.action {
        TokenAction::Create { name, role, expires_in, models } => {
            let mut body = json!({ "name": name });
            if let Some(role) = role {
                body["role"] = json!(role);
            }
            if let Some(expires_in) = expires_in {
                body["expires_in"] = json!(expires_in);
            }
            if !models.is_empty() {
                body["models"] = json!(models);
            }
            let created: Value = client.post(&["api", "v1", "tokens"], &body).await?;
            if !out.json {
                eprintln!(
                    "created token {} (id {}, role {}, expires {}); it is shown once, here:",
                    field(&created, "name"),
                    field(&created, "id"),
                    field(&created, "role"),
                    created["expires_at"].as_i64().map_or_else(|| "never".to_owned(), |t| format!("at unix time {t}"))
                );
            }
            // Alone on stdout, so `TOKEN=$(hangar token create ci)` works.
            out.emit(&created, || field(&created, "token"));
        }
        TokenAction::List => {
            let listed: Value = client.get(&["api", "v1", "tokens"]).await?;
            let items = listed["items"].clone();
            out.emit(&items, || {
                let empty = Vec::new();
                let rows: Vec<Vec<String>> = items
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|t| {
                        vec![
                            field(t, "id"),
                            field(t, "name"),
                            field(t, "user"),
                            field(t, "role"),
                            format!("{}…", field(t, "prefix")),
                            field(t, "models"),
                            field(t, "expires_at"),
                            field(t, "last_used_at"),
                            field(t, "revoked_at"),
                        ]
                    })
                    .collect();
                table(&["ID", "NAME", "USER", "ROLE", "PREFIX", "MODELS", "EXPIRES", "LAST USED", "REVOKED"], &rows)
            });
        }
        TokenAction::Revoke { id } => {
            client.delete(&["api", "v1", "tokens", &id.to_string()]).await?;
            out.emit(&json!({ "revoked": id }), || format!("revoked token {id}"));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn nodes(client: &Client, out: Output) -> Result<()> {
    let listed: Value = client.get(&["api", "v1", "nodes"]).await?;
    out.emit(&listed, || {
        let rows = listed["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        let lines: Vec<String> = rows
            .iter()
            .map(|n| {
                let names = |key: &str| {
                    let list: Vec<&str> = n[key]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    if list.is_empty() { "-".to_owned() } else { list.join(",") }
                };
                let gpus = n["gpus"].as_array().map_or(0, Vec::len);
                format!(
                    "{}{}\t{}\t{}\t{gpus} GPU(s)\t{}",
                    field(n, "name"),
                    if n["this"].as_bool() == Some(true) { " (this)" } else { "" },
                    if n["up"].as_bool() == Some(true) { "up" } else { "down" },
                    field(n, "url"),
                    names("deployments")
                )
            })
            .collect();
        lines.join("\n")
    });
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Keep printing events as they happen (a Server-Sent Events stream).
    #[arg(short, long)]
    pub follow: bool,
    /// Start after this event id; without it: the newest --limit events, or with -f, from now.
    #[arg(long)]
    pub after: Option<i64>,
    /// Only events of this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this action, or a family of them (`alias` matches every `alias.*`).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many events (not with -f).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub remote: super::Remote,
}

pub async fn events(client: &Client, args: &EventsArgs, out: Output) -> Result<()> {
    if let Some(model) = &args.model {
        ModelName::parse(model).map_err(usage)?;
    }
    if args.follow {
        return follow_events(client, args, out).await;
    }
    let page = |after: i64, limit: u32| {
        let mut url = client.url(["api", "v1", "events"]);
        url.query_pairs_mut().append_pair("after", &after.to_string()).append_pair("limit", &limit.to_string());
        filters(&mut url, args);
        async move {
            let page: Value = client.json(client.request(Method::GET, url)).await?;
            Ok::<_, ClientError>(page["items"].as_array().cloned().unwrap_or_default())
        }
    };
    let kept: VecDeque<Value> = match args.after {
        Some(after) => page(after, args.limit).await?.into(),
        None => {
            // The API pages oldest first: read them all, keep the newest `limit`.
            const PAGE: u32 = 1000;
            let mut kept = VecDeque::new();
            let mut after = 0;
            loop {
                let items = page(after, PAGE).await?;
                let full = items.len() == PAGE as usize;
                for event in items {
                    after = event["id"].as_i64().unwrap_or(after);
                    kept.push_back(event);
                    if kept.len() > args.limit as usize {
                        kept.pop_front();
                    }
                }
                if !full {
                    break kept;
                }
            }
        }
    };
    let events: Vec<Value> = kept.into();
    out.emit(&Value::Array(events.clone()), || {
        if events.is_empty() {
            return "no events".to_owned();
        }
        events.iter().map(event_line).collect::<Vec<_>>().join("\n")
    });
    Ok(())
}

fn filters(url: &mut reqwest::Url, args: &EventsArgs) {
    if let Some(model) = &args.model {
        url.query_pairs_mut().append_pair("model", model);
    }
    if let Some(action) = &args.action {
        url.query_pairs_mut().append_pair("action", action);
    }
}

fn event_line(e: &Value) -> String {
    format!(
        "{:>6}  {}  {:<12} {:<22} {}",
        field(e, "id"),
        field(e, "at"),
        field(e, "actor"),
        field(e, "action"),
        field(e, "target")
    )
}

/// Prints the event stream, one line (or one JSON object) per event, and reconnects from
/// the last event seen when the stream breaks.
async fn follow_events(client: &Client, args: &EventsArgs, out: Output) -> Result<()> {
    let mut last_id: Option<String> = args.after.map(|a| a.to_string());
    loop {
        let mut url = client.url(["api", "v1", "events", "stream"]);
        filters(&mut url, args);
        let mut request = client.request(Method::GET, url).header("accept", "text/event-stream");
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id.as_str());
        }
        let response = match client.send(request).await {
            Ok(response) => response,
            Err(ClientError::Failed(msg)) if last_id.is_some() => {
                eprintln!("event stream: {msg}; reconnecting");
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        match read_stream(response, &mut last_id, out).await {
            Ok(()) => eprintln!("event stream ended; reconnecting"),
            Err(e) => eprintln!("event stream broke off ({e}); reconnecting"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn read_stream(response: Response, last_id: &mut Option<String>, out: Output) -> Result<()> {
    let mut lines = Lines::default();
    let mut frame = Frame::default();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::failed("reading the stream", &e))?;
        for line in lines.push(&chunk) {
            let Some(event) = frame.line(&line) else { continue };
            if let Some(id) = event.id {
                *last_id = Some(id);
            }
            let Ok(data) = serde_json::from_str::<Value>(&event.data) else { continue };
            if out.json {
                println!("{data}");
            } else {
                println!("{}", event_line(&data));
            }
        }
    }
    Ok(())
}

/// One Server-Sent Events frame being read.
#[derive(Default)]
struct Frame {
    id: Option<String>,
    data: String,
}

impl Frame {
    /// Feeds one line; a blank line ends the frame and returns it if it carried data.
    fn line(&mut self, line: &str) -> Option<Frame> {
        if line.is_empty() {
            let frame = std::mem::take(self);
            return (!frame.data.is_empty()).then_some(frame);
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "id" => self.id = Some(value.to_owned()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            // Comments (keep-alives, a leading ':'), `event:` and unknown fields.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(b"one\ntw"), ["one"]);
        assert_eq!(lines.push(b"o\r\nthree"), ["two"]);
        assert_eq!(lines.rest().as_deref(), Some("three"));
        assert_eq!(lines.rest(), None);
    }

    #[test]
    fn sse_frames_carry_their_id_and_data() {
        let mut frame = Frame::default();
        let mut got = Vec::new();
        for line in [": keep-alive", "", "id: 7", "event: version.published", "data: {\"id\":7}", ""] {
            if let Some(f) = frame.line(line) {
                got.push((f.id, f.data));
            }
        }
        assert_eq!(got, [(Some("7".to_owned()), "{\"id\":7}".to_owned())]);
    }
}

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Group by `user`, `token`, `deployment` or `model`.
    #[arg(long, default_value = "deployment", value_parser = ["user", "token", "deployment", "model"])]
    pub by: String,
    /// The window's start: an offset such as 24h or 30m back from now, or Unix seconds.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Print each step of the window too (60, 5m, 1h, 1d); without it, totals only.
    #[arg(long)]
    pub step: Option<String>,
    #[command(flatten)]
    pub remote: super::Remote,
}

/// Requests and tokens through the gateway, as `GET /api/v1/usage` gives them.
pub async fn usage_report(client: &Client, args: &UsageArgs, out: Output) -> Result<()> {
    let from =
        if args.since.chars().all(|c| c.is_ascii_digit()) { args.since.clone() } else { format!("-{}", args.since) };
    let mut url = client.url(["api", "v1", "usage"]);
    url.query_pairs_mut().append_pair("by", &args.by).append_pair("from", &from);
    // Totals only: one step as long as the window, within the API's limit of buckets.
    url.query_pairs_mut().append_pair("step", args.step.as_deref().unwrap_or("1d"));
    let usage: Value = client.json(client.request(Method::GET, url)).await?;
    out.emit(&usage, || {
        let number = |v: &Value, key: &str| v[key].as_i64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        let millis = |v: &Value, key: &str| v[key].as_f64().map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"));
        let row = |key: String, p: &Value| {
            vec![
                key,
                number(p, "requests"),
                number(p, "errors"),
                number(p, "prompt_tokens"),
                number(p, "completion_tokens"),
                number(p, "unmetered"),
                millis(p, "mean_ms"),
                millis(p, "mean_ttft_ms"),
            ]
        };
        let mut rows = Vec::new();
        for series in usage["series"].as_array().into_iter().flatten() {
            let key = series["key"].as_str().filter(|k| !k.is_empty()).unwrap_or("(anonymous)").to_owned();
            rows.push(row(key.clone(), &series["total"]));
            if args.step.is_some() {
                for point in series["points"].as_array().into_iter().flatten() {
                    rows.push(row(format!("  {}", point["start"]), point));
                }
            }
        }
        if rows.is_empty() {
            return "no requests through the gateway in this window".to_owned();
        }
        let header = [
            args.by.to_uppercase(),
            "REQUESTS".into(),
            "ERRORS".into(),
            "PROMPT".into(),
            "COMPLETION".into(),
            "UNMETERED".into(),
            "MEAN_MS".into(),
            "TTFT_MS".into(),
        ];
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        table(&header, &rows)
    });
    Ok(())
}
