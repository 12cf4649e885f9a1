//! A small HTTP/1.1 server side: read one request (Content-Length or chunked body,
//! `Expect: 100-continue`), write a whole response or a chunked stream. Connections stay
//! open between requests unless the client asks otherwise (keep-alive), so load generators
//! do not pay a handshake per request.

use std::io::{self, BufRead, Read, Write};

const MAX_HEAD: u64 = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

pub struct Request {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    pub http11: bool,
    pub keep_alive: bool,
    pub body: Vec<u8>,
}

/// A request that cannot be served; the connection is answered and closed.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

pub enum ReadError {
    /// The peer closed the connection (or went quiet) between requests.
    Closed,
    Refused(Refusal),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Closed
    }
}

fn refuse(status: u16, message: impl Into<String>) -> ReadError {
    ReadError::Refused(Refusal { status, message: message.into() })
}

/// Reads the next request; `writer` is needed to answer `Expect: 100-continue`.
pub fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> Result<Request, ReadError> {
    let mut head = reader.by_ref().take(MAX_HEAD);
    let mut line = String::new();
    // Tolerate empty lines before a request (RFC 9112 §2.2).
    loop {
        line.clear();
        if head.read_line(&mut line)? == 0 {
            return Err(ReadError::Closed);
        }
        if !line.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(refuse(400, "malformed request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(refuse(505, format!("unsupported version {version}"))),
    };
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut connection = String::new();
    let mut expect_continue = false;
    loop {
        line.clear();
        if head.read_line(&mut line)? == 0 {
            if head.limit() == 0 {
                return Err(refuse(431, "request head larger than 64 KiB"));
            }
            return Err(ReadError::Closed);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(refuse(400, format!("malformed header line {header:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                content_length = Some(value.parse().map_err(|_| refuse(400, "bad Content-Length"))?);
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => connection = value.to_ascii_lowercase(),
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    // HTTP/1.0 connections always close: a streamed answer to one is close-delimited.
    let keep_alive = http11 && !connection.contains("close");
    if content_length.is_some_and(|n| n > MAX_BODY) {
        return Err(refuse(413, "body larger than 16 MiB"));
    }
    if expect_continue && (chunked || content_length.is_some_and(|n| n > 0)) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let body = if chunked {
        read_chunked(reader)?
    } else if let Some(n) = content_length {
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        body
    } else {
        Vec::new()
    };
    Ok(Request { method, path, http11, keep_alive, body })
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.by_ref().take(1024).read_line(&mut line)?;
        let size = line.trim_end().split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| refuse(400, "bad chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(refuse(413, "body larger than 16 MiB"));
        }
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.by_ref().take(8192).read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(refuse(400, "chunk not followed by CRLF"));
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes a complete response in one write, so it leaves in as few packets as possible.
pub fn respond(w: &mut impl Write, status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// A streamed response: chunked for HTTP/1.1, close-delimited for HTTP/1.0. Every `send`
/// is flushed at once, so the client sees each event as it is produced.
pub struct Stream<'a, W: Write> {
    w: &'a mut W,
    chunked: bool,
}

impl<'a, W: Write> Stream<'a, W> {
    pub fn start(w: &'a mut W, content_type: &str, http11: bool, keep_alive: bool) -> io::Result<Self> {
        let framing = if http11 { "Transfer-Encoding: chunked\r\n" } else { "" };
        let connection = if http11 && keep_alive { "keep-alive" } else { "close" };
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n{framing}Connection: {connection}\r\n\r\n"
        )?;
        w.flush()?;
        Ok(Self { w, chunked: http11 })
    }

    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            let mut out = format!("{:x}\r\n", data.len()).into_bytes();
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            self.w.write_all(&out)?;
        } else {
            self.w.write_all(data)?;
        }
        self.w.flush()
    }

    pub fn finish(self) -> io::Result<()> {
        if self.chunked {
            self.w.write_all(b"0\r\n\r\n")?;
        }
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> (Result<Request, ReadError>, Vec<u8>) {
        let mut reader = io::BufReader::new(raw);
        let mut written = Vec::new();
        (read_request(&mut reader, &mut written), written)
    }

    #[test]
    fn a_request_with_a_body_and_keep_alive_defaults() {
        let (req, _) = read(b"POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}");
        let Ok(req) = req else { panic!("parses") };
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/completions"));
        assert!(req.http11 && req.keep_alive);
        assert_eq!(req.body, b"{}");
        let Ok(old) = read(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").0 else { panic!("parses") };
        assert!(!old.keep_alive);
        let Ok(closing) = read(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").0 else { panic!("parses") };
        assert!(!closing.keep_alive);
    }

    #[test]
    fn chunked_bodies_and_expect_continue() {
        let (req, written) = read(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        let Ok(req) = req else { panic!("parses") };
        assert_eq!(req.body, b"abcde");
        assert_eq!(written, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn bad_requests_are_refused_with_a_status() {
        for (raw, status) in [
            (&b"GARBAGE\r\n\r\n"[..], 400),
            (b"GET / HTTP/2\r\n\r\n", 505),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        ] {
            match read(raw).0 {
                Err(ReadError::Refused(r)) => assert_eq!(r.status, status, "{raw:?}"),
                _ => panic!("{raw:?} should be refused"),
            }
        }
        assert!(matches!(read(b"").0, Err(ReadError::Closed)));
    }

    #[test]
    fn streams_are_chunked_on_http11() {
        let mut out = Vec::new();
        let mut s = Stream::start(&mut out, "text/event-stream", true, true).expect("vec");
        s.send(b"data: x\n\n").expect("vec");
        s.finish().expect("vec");
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n9\r\ndata: x\n\n\r\n0\r\n\r\n"), "{text}");
    }
}
