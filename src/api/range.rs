//! The `Range` header (RFC 9110 §14): one byte range, or none. A multi-range request is
//! answered with the whole file, which the RFC allows and every client handles.

use std::ops::Range;

use crate::error::ApiError;

/// The byte range to send for a `Range` header value on a file of `size` bytes: `Ok(None)`
/// means the whole file (no header, an unsupported unit, or several ranges).
pub fn parse(header: Option<&str>, size: u64) -> Result<Option<Range<u64>>, ApiError> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let invalid = || ApiError::BadRequest(format!("invalid Range header {spec:?}; expected bytes=START-END"));
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        // bytes=-N: the last N bytes.
        let n: u64 = end.parse().map_err(|_| invalid())?;
        // An empty file has no last bytes to send (RFC 9110 §14.1.2).
        if n == 0 || size == 0 {
            return Err(ApiError::RangeNotSatisfiable { size });
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = start.parse().map_err(|_| invalid())?;
        let end = match end {
            "" => size,
            end => {
                let last: u64 = end.parse().map_err(|_| invalid())?;
                if last < start {
                    return Err(invalid());
                }
                last.saturating_add(1).min(size)
            }
        };
        if start >= size {
            return Err(ApiError::RangeNotSatisfiable { size });
        }
        start..end
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(parse(None, 10).ok(), Some(None));
        assert_eq!(parse(Some("bytes=0-4"), 10).ok(), Some(Some(0..5)));
        assert_eq!(parse(Some("bytes=5-"), 10).ok(), Some(Some(5..10)));
        assert_eq!(parse(Some("bytes=-3"), 10).ok(), Some(Some(7..10)));
        assert_eq!(parse(Some("bytes=-30"), 10).ok(), Some(Some(0..10)));
        assert_eq!(parse(Some("bytes=8-100"), 10).ok(), Some(Some(8..10)));
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10).ok(), Some(None));
        assert_eq!(parse(Some("items=0-1"), 10).ok(), Some(None));
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable_and_garbage_is_a_bad_request() {
        assert!(matches!(parse(Some("bytes=10-"), 10), Err(ApiError::RangeNotSatisfiable { size: 10 })));
        assert!(matches!(parse(Some("bytes=0-"), 0), Err(ApiError::RangeNotSatisfiable { size: 0 })));
        assert!(matches!(parse(Some("bytes=-5"), 0), Err(ApiError::RangeNotSatisfiable { size: 0 })));
        assert!(matches!(parse(Some("bytes=x-1"), 10), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse(Some("bytes=5-1"), 10), Err(ApiError::BadRequest(_))));
    }
}
