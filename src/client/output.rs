//! What a command prints on stdout: JSON for `--json`, else text for people (aligned
//! tables, sizes in binary units). Progress and warnings go to stderr, never here.

use std::fmt::Write as _;

use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `json` (pretty) with `--json`, else the text `text` makes.
    pub fn emit(&self, json: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string()));
        } else {
            let text = text();
            if !text.is_empty() {
                println!("{}", text.trim_end_matches('\n'));
            }
        }
    }
}

/// `1 file`, `2 files`.
pub fn files(n: impl Into<u64>) -> String {
    match n.into() {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    }
}

/// A field of a JSON object as text: strings bare, null and absent as `-`.
pub fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    }
}

/// A byte count field, in binary units.
pub fn size_field(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_u64).map_or_else(|| "-".to_owned(), |n| indicatif::HumanBytes(n).to_string())
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{cell:<width$}", width = widths.get(i).copied().unwrap_or(0));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let rows = vec![vec!["llama".to_owned(), "3".to_owned()], vec!["m".to_owned(), "12".to_owned()]];
        assert_eq!(table(&["NAME", "VERSIONS"], &rows), "NAME   VERSIONS\nllama  3\nm      12\n");
    }

    #[test]
    fn fields_print_as_people_read_them() {
        let v = json!({"s": "x", "n": 3, "none": null, "empty": "", "tags": ["a", "b"], "size": 1024});
        assert_eq!(field(&v, "s"), "x");
        assert_eq!(field(&v, "n"), "3");
        assert_eq!(field(&v, "none"), "-");
        assert_eq!(field(&v, "missing"), "-");
        assert_eq!(field(&v, "empty"), "-");
        assert_eq!(field(&v, "tags"), "a,b");
        assert_eq!(size_field(&v, "size"), "1.00 KiB");
        assert_eq!(
            (files(1u32), files(0u32), files(3u32)),
            ("1 file".to_owned(), "0 files".to_owned(), "3 files".to_owned())
        );
    }
}
