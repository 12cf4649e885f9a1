//! One file per page; each builds a view model from domain types and renders a template.

pub mod activity;
pub mod deployments;
pub mod login;
pub mod model;
pub mod models;
pub mod system;
pub mod tokens;
pub mod upload;
pub mod usage;
pub mod users;
pub mod version;

/// Bytes for people: `1.5 GiB`.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[expect(clippy::cast_precision_loss, reason = "a size for people; f64 is ample")]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A notice to show once, from `?notice=` after a redirect.
#[derive(serde::Deserialize, Default)]
pub struct Notice {
    pub notice: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human_size(512), "512 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }
}
