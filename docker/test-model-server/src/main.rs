//! `hangar-test-model`: a stand-in for a real model server in Hangar's Docker tests. It
//! speaks enough of the OpenAI API (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`, `/v1/audio/transcriptions` as a multipart form, SSE
//! streaming) for the gateway, and every answer
//! carries `sha256:<hex>` of a file under the model directory, so a test proves which
//! version is mounted. Flags make it slow to become healthy, never healthy, or exit with a
//! code, to exercise the supervisor. std only: it builds static in seconds and runs in an
//! empty (`FROM scratch`) image.

mod config;
mod http;
mod json;
mod sha256;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use config::Config;

/// A connection idle this long between requests is closed, so dead clients free threads.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

struct State {
    config: Config,
    started: Instant,
    /// `(path relative to the model dir, hex digest)`, or why it could not be computed.
    digest: Result<(String, String), String>,
    next_id: AtomicU64,
}

impl State {
    fn healthy(&self) -> bool {
        !self.config.never_healthy && self.started.elapsed() >= self.config.health_delay
    }
}

fn main() {
    let started = Instant::now();
    let config = match Config::parse(std::env::args().skip(1), |var| std::env::var(var).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("hangar-test-model: {message}");
            std::process::exit(2);
        }
    };
    exit_promptly_on_sigterm();
    if let Some(after) = config.exit_after {
        let code = config.exit_code;
        std::thread::spawn(move || {
            std::thread::sleep(after.saturating_sub(started.elapsed()));
            eprintln!("hangar-test-model: exiting with code {code} as asked");
            std::process::exit(code);
        });
    }

    // A version can carry its own failure, so a test can publish one that never serves.
    if std::path::Path::new(&config.model_dir).join("BROKEN").exists() {
        eprintln!("hangar-test-model: the model dir holds BROKEN; exiting with code 1");
        std::process::exit(1);
    }
    let digest = digest_of_model_file(&config.model_dir, config.digest_file.as_deref());
    match &digest {
        Ok((file, hex)) => println!("hangar-test-model: {file} has sha256:{hex}"),
        Err(why) => eprintln!("hangar-test-model: no digest to report: {why}"),
    }
    std::thread::sleep(config.listen_delay.saturating_sub(started.elapsed()));

    // Numeric addresses only in practice: a static binary in an empty image has no resolver.
    let addrs: Vec<_> = match (config.host.as_str(), config.port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            eprintln!("hangar-test-model: cannot use host {:?}: {e}", config.host);
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&addrs[..]) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hangar-test-model: cannot listen on {}:{}: {e}", config.host, config.port);
            std::process::exit(2);
        }
    };
    let local = listener.local_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
    println!(
        "hangar-test-model: serving {:?} on {local}, healthy after {:?}{}",
        config.served_model_name,
        config.health_delay,
        if config.never_healthy { " (never)" } else { "" }
    );

    let state = Arc::new(State { config, started, digest, next_id: AtomicU64::new(1) });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(&state);
        std::thread::spawn(move || serve_connection(stream, &state));
    }
}

/// As PID 1 of a container, a process without a SIGTERM handler ignores SIGTERM, and
/// `docker stop` would wait out its whole grace period. Real servers handle it; so does this.
fn exit_promptly_on_sigterm() {
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        fn _exit(status: i32) -> !;
    }
    extern "C" fn on_signal(_: i32) {
        // SAFETY: _exit is async-signal-safe; nothing else runs in the handler.
        unsafe { _exit(0) }
    }
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }
}

/// Hashes the chosen file: `wanted` (relative to `model_dir`, or absolute), else the
/// lexicographically first regular file under `model_dir` by relative path.
fn digest_of_model_file(model_dir: &Path, wanted: Option<&Path>) -> Result<(String, String), String> {
    let path = match wanted {
        Some(path) => model_dir.join(path),
        None => first_file(model_dir)?,
    };
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let digest = sha256::hash_reader(file).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.strip_prefix(model_dir).unwrap_or(&path).to_string_lossy().into_owned();
    Ok((shown, sha256::hex(&digest)))
}

fn first_file(model_dir: &Path) -> Result<PathBuf, String> {
    let mut best: Option<PathBuf> = None;
    let mut dirs = vec![model_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                let rel = path.strip_prefix(model_dir).unwrap_or(&path);
                // Compare the bytes of relative paths, as `LC_ALL=C sort` would.
                if best.as_deref().is_none_or(|b| {
                    rel.as_os_str().as_encoded_bytes()
                        < b.strip_prefix(model_dir).unwrap_or(b).as_os_str().as_encoded_bytes()
                }) {
                    best = Some(path);
                }
            }
        }
    }
    best.ok_or_else(|| format!("no regular file under {}", model_dir.display()))
}

fn serve_connection(stream: TcpStream, state: &State) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let req = match http::read_request(&mut reader, &mut writer) {
            Ok(req) => req,
            Err(http::ReadError::Closed) => return,
            Err(http::ReadError::Refused(r)) => {
                let _ = http::respond(
                    &mut writer,
                    r.status,
                    "application/json",
                    error_body(r.status, &r.message).as_bytes(),
                    false,
                );
                return;
            }
        };
        if handle(&req, &mut writer, state).is_err() || !req.keep_alive {
            return;
        }
    }
}

fn error_body(status: u16, message: &str) -> String {
    let kind = match status {
        404 => "NotFoundError",
        503 => "unavailable_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    format!(r#"{{"error":{{"message":{},"type":"{kind}","code":{status}}}}}"#, json::string(message))
}

fn handle(req: &http::Request, w: &mut TcpStream, state: &State) -> std::io::Result<()> {
    let keep = req.keep_alive;
    let json_reply = |w: &mut TcpStream, status: u16, body: &str| {
        http::respond(w, status, "application/json", body.as_bytes(), keep)
    };
    let known = matches!(
        req.path.as_str(),
        "/" | "/health"
            | "/v2/health/ready"
            | "/v1/models"
            | "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/embeddings"
            | "/v1/audio/transcriptions"
    );
    if !known {
        return json_reply(w, 404, &error_body(404, &format!("no route {}", req.path)));
    }
    let wants_post = req.path.starts_with("/v1/") && req.path != "/v1/models";
    let allowed = if wants_post { "POST" } else { "GET" };
    if req.method != allowed {
        let message = format!("{} {} is not served; use {allowed}", req.method, req.path);
        return json_reply(w, 405, &error_body(405, &message));
    }
    if !state.healthy() {
        return json_reply(w, 503, &error_body(503, "Loading model"));
    }
    let name = &state.config.served_model_name;
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match req.path.as_str() {
        "/" | "/health" | "/v2/health/ready" => json_reply(w, 200, r#"{"status":"ok"}"#),
        "/v1/models" => json_reply(
            w,
            200,
            &format!(
                r#"{{"object":"list","data":[{{"id":{},"object":"model","created":{created},"owned_by":"hangar-test-model"}}]}}"#,
                json::string(name)
            ),
        ),
        path => {
            if state.config.hang_up {
                eprintln!("hanging up on {path} (--hang-up)");
                return Err(std::io::Error::other("hang-up requested"));
            }
            std::thread::sleep(state.config.response_delay);
            if path == "/v1/audio/transcriptions" {
                return transcribe(&req.body, w, state, keep);
            }
            let body = match json::parse_request(&req.body) {
                Ok(body) => body,
                Err(why) => return json_reply(w, 400, &error_body(400, &why)),
            };
            if let Some(model) = &body.model
                && state.config.strict_model
                && model != name
            {
                let message = format!("The model `{model}` does not exist.");
                return json_reply(w, 404, &error_body(404, &message));
            }
            let model_field = json::string(name);
            if path == "/v1/embeddings" {
                return json_reply(
                    w,
                    200,
                    &format!(
                        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[0.125,-0.25,0.5,1.0]}}],"model":{model_field},"usage":{{"prompt_tokens":1,"total_tokens":1}}}}"#
                    ),
                );
            }
            let (file, hex) = match &state.digest {
                Ok(digest) => digest,
                Err(why) => return json_reply(w, 500, &error_body(500, why)),
            };
            let words: Vec<String> = format!("hangar-test-model {name} says: file {file} has digest sha256:{hex}")
                .split(' ')
                .map(str::to_owned)
                .collect();
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            let chat = path == "/v1/chat/completions";
            if body.stream {
                stream_answer(req, &body, w, state, chat, id, created, &model_field, &words)
            } else {
                let content = json::string(&words.join(" "));
                let n = words.len();
                let choice = if chat {
                    format!(
                        r#"{{"index":0,"message":{{"role":"assistant","content":{content}}},"finish_reason":"stop"}}"#
                    )
                } else {
                    format!(r#"{{"index":0,"text":{content},"logprobs":null,"finish_reason":"stop"}}"#)
                };
                let (prefix, object) = if chat { ("chatcmpl", "chat.completion") } else { ("cmpl", "text_completion") };
                json_reply(
                    w,
                    200,
                    &format!(
                        r#"{{"id":"{prefix}-test-{id}","object":"{object}","created":{created},"model":{model_field},"choices":[{choice}],"usage":{{"prompt_tokens":1,"completion_tokens":{n},"total_tokens":{}}}}}"#,
                        n + 1
                    ),
                )
            }
        }
    }
}

/// Waits `delay` (the time to "generate" a token), returning early with `true` if the
/// client closes its end meanwhile.
/// `/v1/audio/transcriptions`: a multipart form whose `model` field is checked like a JSON
/// body's; the "transcript" names the served model and the form's size.
fn transcribe(body: &[u8], w: &mut TcpStream, state: &State, keep: bool) -> std::io::Result<()> {
    let reply = |w: &mut TcpStream, status: u16, body: &str| {
        http::respond(w, status, "application/json", body.as_bytes(), keep)
    };
    let name = &state.config.served_model_name;
    let Some(model) = form_model(body) else {
        return reply(w, 400, &error_body(400, "the form has no model field"));
    };
    if state.config.strict_model && model != *name {
        return reply(w, 404, &error_body(404, &format!("The model `{model}` does not exist.")));
    }
    let text = json::string(&format!("hangar-test-model {name} heard a form of {} bytes", body.len()));
    reply(w, 200, &format!(r#"{{"text":{text}}}"#))
}

/// The value of the multipart field `model`: after its part's headers, up to the CRLF.
fn form_model(body: &[u8]) -> Option<String> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let rest = &body[find(body, b"name=\"model\"")?..];
    let start = find(rest, b"\r\n\r\n")? + 4;
    let end = start + find(&rest[start..], b"\r\n")?;
    String::from_utf8(rest[start..end].to_vec()).ok()
}

fn client_left_within(socket: &TcpStream, delay: Duration) -> bool {
    if delay.is_zero() || socket.set_read_timeout(Some(delay)).is_err() {
        return false;
    }
    let started = Instant::now();
    let mut byte = [0u8; 1];
    match socket.peek(&mut byte) {
        Ok(0) => true,
        // Bytes of a next request: not a hang-up; let the time pass.
        Ok(_) => {
            std::thread::sleep(delay.saturating_sub(started.elapsed()));
            false
        }
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// One SSE event per word (the words, joined, equal the non-streamed answer), then a final
/// event with `finish_reason`, then (when the request asked with `stream_options`) a usage
/// chunk without choices, as OpenAI sends it, then `data: [DONE]`.
#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename them")]
fn stream_answer(
    req: &http::Request,
    req_body: &json::Request,
    w: &mut TcpStream,
    state: &State,
    chat: bool,
    id: u64,
    created: u64,
    model_field: &str,
    words: &[String],
) -> std::io::Result<()> {
    let (prefix, object) = if chat { ("chatcmpl", "chat.completion.chunk") } else { ("cmpl", "text_completion") };
    let event = |choice: String| {
        format!(
            "data: {{\"id\":\"{prefix}-test-{id}\",\"object\":\"{object}\",\"created\":{created},\"model\":{model_field},\"choices\":[{choice}]}}\n\n"
        )
    };
    // A second handle to watch for the client leaving; its read timeout is the connection's,
    // so it is put back once the stream ends.
    let watch = w.try_clone()?;
    let mut stream = http::Stream::start(w, "text/event-stream", req.http11, req.keep_alive)?;
    for (i, word) in words.iter().enumerate() {
        if i > 0 && client_left_within(&watch, state.config.token_delay) {
            // As vLLM aborts a request whose client disconnected, between two tokens.
            eprintln!("stream to the client ended after {i} of {} chunks: the client left", words.len());
            return Ok(());
        }
        let piece = if i + 1 < words.len() { json::string(&format!("{word} ")) } else { json::string(word) };
        let choice = match (chat, i) {
            (true, 0) => {
                format!(r#"{{"index":0,"delta":{{"role":"assistant","content":{piece}}},"finish_reason":null}}"#)
            }
            (true, _) => {
                format!(r#"{{"index":0,"delta":{{"content":{piece}}},"finish_reason":null}}"#)
            }
            (false, _) => {
                format!(r#"{{"index":0,"text":{piece},"logprobs":null,"finish_reason":null}}"#)
            }
        };
        if let Err(e) = stream.send(event(choice).as_bytes()) {
            // The reader is gone: the work stops here, as a real server aborts the request.
            eprintln!("stream to the client ended after {i} of {} chunks: {e}", words.len());
            return Err(e);
        }
    }
    let last = if chat {
        r#"{"index":0,"delta":{},"finish_reason":"stop"}"#
    } else {
        r#"{"index":0,"text":"","logprobs":null,"finish_reason":"stop"}"#
    };
    stream.send(event(last.to_owned()).as_bytes())?;
    if req_body.include_usage {
        // As OpenAI sends it: one more chunk, no choices, the whole request's usage.
        let n = words.len();
        let usage = format!(
            "data: {{\"id\":\"{prefix}-test-{id}\",\"object\":\"{object}\",\"created\":{created},\"model\":{model_field},\"choices\":[],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
            n + 1
        );
        stream.send(usage.as_bytes())?;
    }
    stream.send(b"data: [DONE]\n\n")?;
    stream.finish()?;
    watch.set_read_timeout(Some(IDLE_TIMEOUT))?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_file_is_chosen_by_relative_path_bytes() {
        let dir = std::env::temp_dir().join(format!("htm-first-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(dir.join("B")).expect("mkdir");
        std::fs::write(dir.join("b.txt"), b"b").expect("write");
        std::fs::write(dir.join("a/b/z.bin"), b"abc").expect("write");
        std::fs::write(dir.join("a/c"), b"c").expect("write");
        std::fs::write(dir.join("B/x"), b"x").expect("write");
        // 'B' (0x42) sorts before 'a' (0x61).
        let (file, _) = digest_of_model_file(&dir, None).expect("digest");
        assert_eq!(file, "B/x");
        std::fs::remove_dir_all(dir.join("B")).expect("rm");
        let (file, hex) = digest_of_model_file(&dir, None).expect("digest");
        assert_eq!(file, "a/b/z.bin");
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let (file, _) = digest_of_model_file(&dir, Some(Path::new("b.txt"))).expect("digest");
        assert_eq!(file, "b.txt");
        let abs = dir.join("a/c");
        let (file, _) = digest_of_model_file(&dir, Some(&abs)).expect("absolute");
        assert_eq!(file, "a/c");
        let err = digest_of_model_file(&dir.join("missing"), None).expect_err("missing dir");
        assert!(err.contains("cannot list"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
