//! Cutting rendered text to a service's limits: by bytes or by characters, always on a character boundary, with a
//! visible marker that says something was left out (the marker counts towards the limit).

/// `text` cut to at most `max` bytes: unchanged when it fits, else its longest prefix that leaves room for `marker`,
/// followed by `marker` (the marker alone, cut, when even it does not fit).
pub fn cut_bytes(text: &str, max: usize, marker: &str) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    if marker.len() >= max {
        return prefix_bytes(marker, max).to_owned();
    }
    let kept = prefix_bytes(text, max - marker.len());
    format!("{kept}{marker}")
}

/// `text` cut to at most `max` characters, the same way as `cut_bytes`.
pub fn cut_chars(text: &str, max: usize, marker: &str) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let marker_chars = marker.chars().count();
    if marker_chars >= max {
        return marker.chars().take(max).collect();
    }
    let kept: String = text.chars().take(max - marker_chars).collect();
    format!("{kept}{marker}")
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_fits_is_unchanged() {
        assert_eq!(cut_bytes("héllo", 6, "…"), "héllo");
        assert_eq!(cut_chars("héllo", 5, "…"), "héllo");
        assert_eq!(cut_bytes("", 0, "…"), "");
    }

    #[test]
    fn bytes_are_cut_on_a_character_boundary_and_the_marker_fits() {
        // "告警" is 6 bytes; "…" is 3.
        let text = "告警告警告警";
        for max in 3..text.len() {
            let cut = cut_bytes(text, max, "…");
            assert!(cut.len() <= max, "{max}: {cut:?}");
            assert!(cut.ends_with('…'), "{max}: {cut:?}");
            assert!(
                text.starts_with(cut.trim_end_matches('…')),
                "{max}: {cut:?}"
            );
        }
        assert_eq!(cut_bytes(text, 8, "…"), "告…");
        assert_eq!(cut_bytes(text, 7, "…"), "告…");
        assert_eq!(cut_bytes(text, 5, "…"), "…");
        assert_eq!(cut_bytes("🔥🔥🔥", 9, "…"), "🔥…");
    }

    #[test]
    fn a_marker_longer_than_the_limit_is_cut_too() {
        assert_eq!(cut_bytes("abcdef", 2, "…"), "");
        assert_eq!(cut_bytes("abcdef", 3, " (cut)"), " (c");
        assert_eq!(cut_chars("abcdef", 2, "(cut)"), "(c");
    }

    #[test]
    fn characters_are_counted_not_bytes() {
        let text = "é".repeat(2000);
        let cut = cut_chars(&text, 1024, "…");
        assert_eq!(cut.chars().count(), 1024);
        assert!(cut.ends_with("é…"));
        assert_eq!(cut_chars("abc", 2, "…"), "a…");
    }

    #[test]
    fn prefixes_end_on_boundaries() {
        assert_eq!(prefix_bytes("aé", 2), "a");
        assert_eq!(prefix_bytes("aé", 3), "aé");
        assert_eq!(prefix_bytes("", 3), "");
    }
}
