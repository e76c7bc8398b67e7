//! Statement text as the log keeps it: a query may be megabytes long (an IN list of a
//! million keys), a log line should not be.

/// Longest statement text kept in the log, in characters.
pub const MAX_LOGGED_CHARS: usize = 2000;

/// `text` cut to [`MAX_LOGGED_CHARS`] characters, saying how long it was when cut.
pub fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((at, _)) => format!("{}... ({} bytes in all)", &text[..at], text.len()).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_long_text_is_cut_on_a_character() {
        assert_eq!(shorten("SELECT 1"), "SELECT 1");
        let long = "é".repeat(MAX_LOGGED_CHARS + 5);
        let cut = shorten(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_LOGGED_CHARS)));
        assert!(cut.ends_with(&format!("... ({} bytes in all)", long.len())));
    }
}
