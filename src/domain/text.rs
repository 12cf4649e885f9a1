//! Free text people type: descriptions (of models, versions, webhooks) and names (of
//! tokens). It is refused, not cleaned, when it holds characters that change how other text
//! is shown rather than show themselves: control characters (NUL, ESC and the rest of C0
//! and C1; a description may still hold line breaks and tabs) and the bidirectional
//! overrides and isolates that make a terminal or a page show text in another order than
//! it is stored (U+202A-U+202E, U+2066-U+2069).

use std::fmt;

const DESCRIPTION_BYTES: usize = 64 * 1024;

/// Whether the text may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// A name: one line, no control characters at all.
    One,
    /// A description: line breaks and tabs allowed.
    Many,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {field} {why}")]
pub struct TextError {
    field: &'static str,
    why: String,
}

/// Text that holds only characters that show themselves, within a length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeText(String);

impl FreeText {
    /// Parses `raw` as the `field` (named in the error), of at most `max_chars` characters.
    pub fn parse(field: &'static str, raw: &str, lines: Lines, max_chars: usize) -> Result<Self, TextError> {
        let refuse = |why: String| TextError { field, why };
        if raw.chars().count() > max_chars {
            return Err(refuse(format!("is longer than {max_chars} characters")));
        }
        if let Some((at, c)) = raw.chars().enumerate().find(|&(_, c)| !shows_itself(c, lines)) {
            return Err(refuse(format!(
                "holds the character U+{:04X} at position {at}; control characters{} and bidirectional \
                 overrides are not accepted",
                u32::from(c),
                if lines == Lines::Many { " other than line breaks and tabs" } else { "" }
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A model's or version's description (a summary; the card is a file): up to 64 KiB,
    /// over lines.
    pub fn description(raw: &str) -> Result<Self, TextError> {
        if raw.len() > DESCRIPTION_BYTES {
            let why = format!("is over {DESCRIPTION_BYTES} bytes; shorten it");
            return Err(TextError { field: "description", why });
        }
        Self::parse("description", raw, Lines::Many, DESCRIPTION_BYTES)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for FreeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn shows_itself(c: char, lines: Lines) -> bool {
    let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let allowed_control = lines == Lines::Many && matches!(c, '\n' | '\r' | '\t');
    !bidi && (!c.is_control() || allowed_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_shows_itself_parses() {
        for ok in ["ci", "Llama 3.1 — 8B, ünïcode 🦙", "", "עברית and English"] {
            assert_eq!(FreeText::parse("name", ok, Lines::One, 100).expect(ok).as_str(), ok);
        }
        let card = "# Title\n\nA line\twith a tab.\r\n";
        assert!(FreeText::parse("description", card, Lines::Many, 100).is_ok());
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_refused_and_named() {
        for (bad, code) in [
            ("a\0b", "U+0000"),
            ("red\u{1b}[31m", "U+001B"),
            ("evil\u{202E}txt.exe", "U+202E"),
            ("x\u{2066}y", "U+2066"),
            ("c1\u{9b}", "U+009B"),
            ("two\nlines", "U+000A"),
        ] {
            let err = FreeText::parse("token name", bad, Lines::One, 100).expect_err(bad).to_string();
            assert!(err.starts_with("the token name holds the character") && err.contains(code), "{bad:?}: {err}");
        }
        assert!(FreeText::parse("description", "a\u{202E}b", Lines::Many, 100).is_err());
        assert!(FreeText::parse("description", "a\u{7}b", Lines::Many, 100).is_err());
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert!(FreeText::parse("name", &"é".repeat(10), Lines::One, 10).is_ok());
        let err = FreeText::parse("name", &"é".repeat(11), Lines::One, 10).expect_err("long").to_string();
        assert_eq!(err, "the name is longer than 10 characters");
    }
}
