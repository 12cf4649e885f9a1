//! Just enough JSON: read the top-level `model` and `stream` members of a request body (and
//! `stream_options.include_usage`), and escape strings for answers. Nested values are skipped, never interpreted, so a `"model"`
//! inside a message does not count.

/// The members of a request body the server acts on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub model: Option<String>,
    pub stream: bool,
    /// `stream_options: {"include_usage": true}`: a streamed answer ends with a usage chunk.
    pub include_usage: bool,
}

pub fn parse_request(body: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let mut req = Request::default();
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        return Ok(req);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "model" if p.peek() == Some(b'"') => req.model = Some(p.string()?),
            "stream" if p.s[p.i..].starts_with(b"true") => {
                p.i += 4;
                req.stream = true;
            }
            "stream_options" if p.peek() == Some(b'{') => req.include_usage = p.include_usage()?,
            _ => p.skip_value()?,
        }
        p.ws();
        match p.next() {
            Some(b',') => {}
            Some(b'}') => return Ok(req),
            _ => return Err(p.error("expected ',' or '}'")),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn error(&self, what: &str) -> String {
        format!("the body is not a JSON object: {what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.next() == Some(c) { Ok(()) } else { Err(self.error(&format!("expected '{}'", c as char))) }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => match self.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'u') => {
                        let hex = self.s.get(self.i..self.i + 4).ok_or_else(|| self.error("bad \\u"))?;
                        let code = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or_else(|| self.error("bad \\u"))?;
                        self.i += 4;
                        // Surrogate pairs are not joined: model names are ASCII in practice.
                        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    Some(c @ (b'"' | b'\\' | b'/')) => out.push(c),
                    _ => return Err(self.error("bad escape")),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("bad string"))
    }

    /// Reads a `stream_options` object: whether its `include_usage` is `true`.
    fn include_usage(&mut self) -> Result<bool, String> {
        self.expect(b'{')?;
        let mut include = false;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(false);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            if key == "include_usage" && self.s[self.i..].starts_with(b"true") {
                self.i += 4;
                include = true;
            } else {
                self.skip_value()?;
            }
            self.ws();
            match self.next() {
                Some(b',') => {}
                Some(b'}') => return Ok(include),
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn skip_value(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated value")),
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                    }
                    self.i += 1;
                }
            }
            Some(_) => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if !b",}] \t\r\n".contains(&c)) {
                    self.i += 1;
                }
                if self.i == start { Err(self.error("expected a value")) } else { Ok(()) }
            }
            None => Err(self.error("expected a value")),
        }
    }
}

/// `s` as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_stream_are_read_from_the_top_level_only() {
        let body = br#"{"messages":[{"role":"user","content":"{\"model\": \"x\", \"stream\": true}"}],
            "max_tokens": 5, "stream" : true, "model":"llama\u0041", "n": {"model": "no"}}"#;
        assert_eq!(
            parse_request(body),
            Ok(Request { model: Some("llamaA".into()), stream: true, include_usage: false })
        );
        assert_eq!(
            parse_request(br#"{"stream": true, "stream_options": {"x": [1], "include_usage": true}, "model": "m"}"#),
            Ok(Request { model: Some("m".into()), stream: true, include_usage: true })
        );
        assert_eq!(
            parse_request(br#"{"stream": false, "model": "m"}"#),
            Ok(Request { model: Some("m".into()), stream: false, include_usage: false })
        );
        assert_eq!(parse_request(b" {} "), Ok(Request::default()));
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused() {
        for bad in [&b""[..], b"[]", b"{\"model\"", b"{\"a\":}", b"{\"a\":1 \"b\":2}", b"\xff"] {
            assert!(parse_request(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }
}
