//! The request's `model`: read from a `/v1/*` body (a JSON object, or a multipart form such
//! as `/v1/audio/transcriptions`) to route it, then rewritten to the name the deployment's
//! server serves. vLLM, SGLang and Ollama answer 404 to any other name, so `m`, `m@alias`
//! and `m:version` must not reach them as written. Only the request body is rewritten; the
//! answer streams back untouched.

use std::ops::Range;

use actix_web::web::Bytes;
use serde_json::{Map, Value};

/// A request body with its `model` found.
pub struct ModelRequest {
    model: String,
    form: Form,
    /// The JSON was changed other than its `model` (usage asked for).
    changed: bool,
}

/// How the answer to a request will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    No,
    /// Streamed, with usage only if the client asked for it.
    AsAsked,
    /// Streamed, with a usage event the gateway asked for.
    UsageAdded,
}

enum Form {
    Json(Map<String, Value>),
    /// Where the `model` field's value lies in the body.
    Multipart(Range<usize>),
}

impl ModelRequest {
    /// Finds the `model` of a body sent as `content_type`: a multipart form's `model` field,
    /// else a JSON object's `model` string. The error says what is missing.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, String> {
        if let Some(boundary) = content_type.and_then(multipart_boundary) {
            let range = form_field(body, &boundary, "model")
                .ok_or_else(|| "the multipart form needs a \"model\" field (a deployment name)".to_owned())?;
            let model = std::str::from_utf8(&body[range.clone()])
                .map_err(|_| "the form's \"model\" field is not UTF-8 text".to_owned())?
                .to_owned();
            return Ok(Self { model, form: Form::Multipart(range), changed: false });
        }
        let object: Map<String, Value> =
            serde_json::from_slice(body).map_err(|e| format!("the request body is not a JSON object: {e}"))?;
        match object.get("model") {
            Some(Value::String(model)) => Ok(Self { model: model.clone(), form: Form::Json(object), changed: false }),
            _ => Err("the request body needs a \"model\" (a deployment name)".to_owned()),
        }
    }

    /// The model the caller asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether the answer will be streamed (`stream: true`), and if so, whether the gateway
    /// added `stream_options.include_usage` for a chat or text completion `endpoint` (the
    /// path after `/v1/`) whose client did not ask for it: the answer's usage event is then
    /// the gateway's, to be taken out before the client sees it.
    pub fn ask_usage(&mut self, endpoint: &str) -> Streamed {
        let Form::Json(object) = &mut self.form else { return Streamed::No };
        if object.get("stream") != Some(&Value::Bool(true)) {
            return Streamed::No;
        }
        if !matches!(endpoint, "chat/completions" | "completions") {
            return Streamed::AsAsked;
        }
        let options = object.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
        match options {
            Value::Object(options) if options.get("include_usage") != Some(&Value::Bool(true)) => {
                options.insert("include_usage".to_owned(), Value::Bool(true));
                self.changed = true;
                Streamed::UsageAdded
            }
            _ => Streamed::AsAsked,
        }
    }

    /// `body` with its `model` set to `served`; the same bytes when nothing changed.
    pub fn with_model(self, body: Bytes, served: &str) -> Result<Bytes, serde_json::Error> {
        if self.model == served && !self.changed {
            return Ok(body);
        }
        match self.form {
            Form::Json(mut object) => {
                object.insert("model".to_owned(), Value::String(served.to_owned()));
                Ok(Bytes::from(serde_json::to_vec(&object)?))
            }
            Form::Multipart(range) => {
                let mut out = Vec::with_capacity(body.len() + served.len());
                out.extend_from_slice(&body[..range.start]);
                out.extend_from_slice(served.as_bytes());
                out.extend_from_slice(&body[range.end..]);
                Ok(Bytes::from(out))
            }
        }
    }
}

/// The boundary of a `multipart/form-data` content type (RFC 7578), quoted or not.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"').to_owned())
        })
        .filter(|b| !b.is_empty())
}

/// The byte range of the value of form field `name` (RFC 7578 framing: `--boundary CRLF
/// headers CRLF CRLF value CRLF --boundary`), or `None` when there is no such field.
fn form_field(body: &[u8], boundary: &str, name: &str) -> Option<Range<usize>> {
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may open the body without the CRLF before it.
    let opening = &delimiter.as_bytes()[2..];
    let mut at = find(body, opening, 0)? + opening.len();
    loop {
        let part = body.get(at..)?;
        if !part.starts_with(b"\r\n") {
            // "--" closes the form; anything else is not a part.
            return None;
        }
        let headers_start = at + 2;
        let headers_end = find(body, b"\r\n\r\n", headers_start)?;
        let value_start = headers_end + 4;
        let value_end = find(body, delimiter.as_bytes(), value_start)?;
        if names_field(&body[headers_start..headers_end], name) {
            return Some(value_start..value_end);
        }
        at = value_end + delimiter.len();
    }
}

/// Whether a part's headers say `Content-Disposition: form-data; name="<name>"`.
fn names_field(headers: &[u8], name: &str) -> bool {
    let Ok(headers) = std::str::from_utf8(headers) else { return false };
    headers.split("\r\n").any(|line| {
        let Some((header, value)) = line.split_once(':') else { return false };
        header.trim().eq_ignore_ascii_case("content-disposition")
            && value.split(';').skip(1).any(|param| {
                param
                    .trim()
                    .split_once('=')
                    .is_some_and(|(key, v)| key.trim() == "name" && v.trim().trim_matches('"') == name)
            })
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(model: &str) -> Vec<u8> {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\nRIFF\r\n--X\0binary\r\n--XyZ\r\n\
             Content-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--XyZ\r\n\
             Content-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--XyZ--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_json_model_is_replaced_and_everything_else_kept() {
        let body = br#"{"model": "m@prod", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#;
        let request = ModelRequest::parse(Some("application/json"), body).expect("parses");
        assert_eq!(request.model(), "m@prod");
        let out = request.with_model(Bytes::from_static(body), "chat").expect("rewrites");
        let out: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(out["model"], "chat");
        assert_eq!(out["stream"], true);
        assert_eq!(out["messages"][0]["content"], "hi");
    }

    #[test]
    fn usage_is_asked_for_streamed_completions_whose_client_did_not() {
        let ask = |body: &str, endpoint: &str| {
            let mut request = ModelRequest::parse(None, body.as_bytes()).expect("parses");
            let streamed = request.ask_usage(endpoint);
            let out = request.with_model(Bytes::from(body.to_owned()), "chat").expect("rewrites");
            (streamed, serde_json::from_slice::<Value>(&out).expect("json"))
        };
        let (streamed, out) = ask(r#"{"model":"chat","stream":true}"#, "chat/completions");
        assert_eq!(streamed, Streamed::UsageAdded);
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true}));
        let (streamed, out) =
            ask(r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true}}"#, "completions");
        assert_eq!(streamed, Streamed::AsAsked, "the client asked: its usage event is its own");
        assert_eq!(out["stream_options"]["include_usage"], true);
        let (streamed, out) =
            ask(r#"{"model":"chat","stream":true,"stream_options":{"continuous_usage_stats":false}}"#, "completions");
        assert_eq!(streamed, Streamed::UsageAdded);
        assert_eq!(out["stream_options"], serde_json::json!({"continuous_usage_stats": false, "include_usage": true}));
        assert_eq!(ask(r#"{"model":"chat"}"#, "chat/completions").0, Streamed::No);
        let (streamed, out) = ask(r#"{"model":"chat","stream":true}"#, "responses");
        assert_eq!(streamed, Streamed::AsAsked, "only endpoints that take stream_options get it");
        assert!(out.get("stream_options").is_none());
    }

    #[test]
    fn a_body_that_already_names_the_served_model_is_passed_as_sent() {
        let body = Bytes::from_static(br#"{ "model" : "chat",  "x": 1 }"#);
        let request = ModelRequest::parse(None, &body).expect("parses");
        assert_eq!(request.with_model(body.clone(), "chat").expect("same"), body);
    }

    #[test]
    fn a_multipart_model_field_is_replaced_and_the_other_parts_kept_byte_for_byte() {
        let body = form("m:1");
        let request = ModelRequest::parse(Some("multipart/form-data; boundary=\"XyZ\""), &body).expect("parses");
        assert_eq!(request.model(), "m:1");
        let out = request.with_model(Bytes::from(body), "whisper").expect("rewrites");
        assert_eq!(out, Bytes::from(form("whisper")));
    }

    #[test]
    fn bodies_without_a_model_say_what_is_missing() {
        let cases: [(Option<&str>, &[u8], &str); 5] = [
            (None, b"[1]", "not a JSON object"),
            (Some("application/json"), br#"{"model": 3}"#, "needs a \"model\""),
            (
                Some("multipart/form-data; boundary=XyZ"),
                b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--XyZ--\r\n",
                "\"model\" field",
            ),
            (Some("multipart/form-data; boundary=XyZ"), b"garbage", "\"model\" field"),
            (
                Some("multipart/form-data; boundary=XyZ"),
                b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\xff\r\n--XyZ--",
                "not UTF-8",
            ),
        ];
        for (content_type, body, needle) in cases {
            let err = ModelRequest::parse(content_type, body).err().expect(needle);
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn a_file_named_model_is_not_the_model_field() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model\"\r\n\r\nx\r\n--B\r\n\
                     content-disposition: form-data; name=model\r\n\r\nm\r\n--B--\r\n";
        let request =
            ModelRequest::parse(Some("Multipart/Form-Data; charset=utf-8; boundary=B"), body).expect("parses");
        assert_eq!(request.model(), "m");
    }
}
