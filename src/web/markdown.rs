//! Model cards: Markdown rendered to HTML, then sanitized (scripts, event handlers,
//! `javascript:` links and styles are removed), so a card can never run code in a page.

use pulldown_cmark::{Options, Parser, html};

pub fn render(markdown: &str) -> String {
    let mut raw = String::with_capacity(markdown.len() * 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH));
    ammonia::Builder::default().link_rel(Some("noopener noreferrer nofollow")).clean(&raw).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_scripts_do_not_survive() {
        let html = render(
            "# Llama\n\n*fast*\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[x](javascript:alert(3))",
        );
        assert!(html.contains("<h1>Llama</h1>") && html.contains("<em>fast</em>"), "{html}");
        for bad in ["<script", "onerror", "javascript:"] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
    }
}
