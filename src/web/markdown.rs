//! Model cards: Markdown rendered to HTML, then sanitized (scripts, event handlers,
//! `javascript:` links and styles are removed), so a card can never run code in a page.
//! Rendered cards are kept by the digest of their bytes, which never change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use pulldown_cmark::{Options, Parser, html};

use crate::domain::Digest;

/// Rendered HTML kept at most, in bytes; past it the cache starts over.
const CACHE_BYTES: usize = 8 << 20;

/// Cards rendered before, by the digest of their README's bytes, so a model page need not
/// read, render and sanitize the same blob on every view. A blob never changes, so an entry
/// never goes stale.
#[derive(Default)]
pub struct CardCache {
    cards: Mutex<(HashMap<Digest, Arc<str>>, usize)>,
}

impl CardCache {
    pub fn get(&self, digest: &Digest) -> Option<Arc<str>> {
        self.cards.lock().unwrap_or_else(PoisonError::into_inner).0.get(digest).cloned()
    }

    pub fn put(&self, digest: Digest, html: String) -> Arc<str> {
        let html: Arc<str> = html.into();
        let mut guard = self.cards.lock().unwrap_or_else(PoisonError::into_inner);
        let (cards, bytes) = &mut *guard;
        if *bytes + html.len() > CACHE_BYTES {
            cards.clear();
            *bytes = 0;
        }
        *bytes += html.len();
        cards.insert(digest, Arc::clone(&html));
        html
    }
}

pub fn render(markdown: &str) -> String {
    let mut raw = String::with_capacity(markdown.len() * 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH));
    ammonia::Builder::default().link_rel(Some("noopener noreferrer nofollow")).clean(&raw).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_gives_back_what_it_was_given_and_starts_over_when_full() {
        let cache = CardCache::default();
        let digest = |n: u8| Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).expect("a digest");
        assert!(cache.get(&digest(1)).is_none());
        cache.put(digest(1), "<h1>one</h1>".into());
        assert_eq!(cache.get(&digest(1)).as_deref(), Some("<h1>one</h1>"));
        cache.put(digest(2), "x".repeat(CACHE_BYTES));
        assert!(cache.get(&digest(1)).is_none(), "over the budget: the old entries went");
        assert!(cache.get(&digest(2)).is_some());
    }

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
