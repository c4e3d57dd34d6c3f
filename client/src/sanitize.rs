//! Makes text from the network safe to write to a terminal, and measures it.
//!
//! Control characters (C0, DEL, C1), bidi controls and line separators
//! become visible placeholders, so an escape sequence shows as `␛[31m` and
//! does nothing, and a right-to-left override shows as `⟨RLO⟩` instead of
//! turning the text around. Every character maps to a fixed placeholder of
//! its own, so the width of raw text ([`text_width`]) is the width of what
//! is shown. Widths come from `unicode-width`: wide (CJK, emoji) characters
//! take two columns and combining marks none.

use unicode_width::UnicodeWidthChar;

/// The placeholder for a C1 control or a line separator.
const REPLACEMENT: char = '\u{FFFD}';

/// Returns the labelled placeholder shown for a bidi embedding, override or
/// isolate (U+202A-U+202E, U+2066-U+2069), or `None` for any other
/// character. Each is its usual abbreviation in angle brackets, one column
/// a character.
fn bidi_placeholder(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{202a}' => "⟨LRE⟩",
        '\u{202b}' => "⟨RLE⟩",
        '\u{202c}' => "⟨PDF⟩",
        '\u{202d}' => "⟨LRO⟩",
        '\u{202e}' => "⟨RLO⟩",
        '\u{2066}' => "⟨LRI⟩",
        '\u{2067}' => "⟨RLI⟩",
        '\u{2068}' => "⟨FSI⟩",
        '\u{2069}' => "⟨PDI⟩",
        _ => return None,
    })
}

/// Width in columns of every bidi placeholder.
const BIDI_WIDTH: usize = 5;

/// Appends what `c` is shown as to `out`.
fn push_sanitized(out: &mut String, c: char) {
    match bidi_placeholder(c) {
        Some(label) => out.push_str(label),
        None => out.push(sanitize_char(c)),
    }
}

/// Returns the character to show in place of `c`.
///
/// C0 controls become their Control Pictures (`␛` for ESC), DEL becomes `␡`,
/// and C1 controls (U+0080-U+009F) and U+2028/U+2029 become `�`. Bidi
/// controls, which need more than one character (see [`bidi_placeholder`]),
/// also become `�` here; [`sanitize`] and the other functions label them.
/// Every other character is returned unchanged.
fn sanitize_char(c: char) -> char {
    match c {
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or(REPLACEMENT),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => REPLACEMENT,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => REPLACEMENT,
        '\u{2028}' | '\u{2029}' => REPLACEMENT,
        _ => c,
    }
}

/// Returns `text` with every unsafe character replaced by its placeholder.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    text.chars().for_each(|c| push_sanitized(&mut out, c));
    out
}

/// Returns the number of terminal columns `c` takes once sanitised.
pub fn char_width(c: char) -> usize {
    match bidi_placeholder(c) {
        Some(_) => BIDI_WIDTH,
        None => sanitize_char(c).width().unwrap_or(0),
    }
}

/// Returns the number of terminal columns `text` takes once sanitised.
pub fn text_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Returns the longest sanitised prefix of `text` that fits in `max` columns.
pub fn truncate(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > max {
            break;
        }
        used += w;
        push_sanitized(&mut out, c);
    }
    out
}

/// Splits sanitised `text` into rows of at most `width` columns.
///
/// Rows break after white space where a row has some, and inside a word
/// only when it alone is too long. A character is never split from the
/// combining marks that follow it, and a wide character that does not fit
/// at the end of a row starts the next one. The first row may be narrower
/// (`first_width`), which leaves room for a prefix such as a time and a
/// name. Returns at least one row; a cluster wider than `width` gets a row
/// of its own, for the caller to clip.
pub fn wrap(text: &str, first_width: usize, width: usize) -> Vec<String> {
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    let mut limit = first_width;
    // Byte offset and width of the row just after its last white space.
    let mut last_break: Option<(usize, usize)> = None;
    for cluster in clusters(text) {
        let w = text_width(&cluster);
        let blank = cluster.chars().all(char::is_whitespace);
        // An empty row takes an over-wide cluster anyway, unless it is a
        // narrow first row and a full-width row would help.
        if used + w > limit && (used > 0 || limit < width) {
            if blank {
                rows.push(std::mem::take(&mut row));
                (used, limit, last_break) = (0, width, None);
                continue;
            }

            // Carry the unfinished word over, or cut it if it has no start.
            let carried = match last_break {
                Some((at, at_width)) if at < row.len() => (row.split_off(at), used - at_width),
                _ => (String::new(), 0),
            };
            rows.push(std::mem::replace(&mut row, carried.0));
            (used, limit, last_break) = (carried.1, width, None);
            if used > 0 && used + w > limit {
                rows.push(std::mem::take(&mut row));
                used = 0;
            }
        }

        row.push_str(&sanitize(&cluster));
        used += w;
        if blank {
            last_break = Some((row.len(), used));
        }
    }
    rows.push(row);
    rows
}

/// Splits `text` into a base character followed by its zero-width marks.
fn clusters(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in text.chars() {
        match out.last_mut() {
            Some(last) if char_width(c) == 0 => last.push(c),
            _ => out.push(c.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_inert() {
        assert_eq!(sanitize("\u{1b}[31mred"), "\u{241b}[31mred");
        assert!(!sanitize("\u{1b}]0;title\u{7}").contains('\u{1b}'));
    }

    #[test]
    fn every_control_is_replaced() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let shown = sanitize_char(c);
            assert!(!shown.is_control(), "{c:?} shown as {shown:?}");
            assert_eq!(char_width(c), 1);
        }
    }

    #[test]
    fn bidi_controls_get_labelled_placeholders() {
        assert_eq!(sanitize("a\u{202e}cba\u{202c}"), "a⟨RLO⟩cba⟨PDF⟩");
        assert_eq!(sanitize("\u{2067}x\u{2069}"), "⟨RLI⟩x⟨PDI⟩");
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            let shown = sanitize(&c.to_string());
            assert!(shown.starts_with('⟨') && shown.ends_with('⟩'), "{c:?}");
            assert!(!shown.contains(c) && !shown.contains(REPLACEMENT));
            assert_eq!(char_width(c), BIDI_WIDTH);
            assert_eq!(text_width(&shown), BIDI_WIDTH, "{shown}");
            // Sanitising what is shown changes nothing.
            assert_eq!(sanitize(&shown), shown);
        }
        assert_eq!(sanitize_char('\u{2028}'), REPLACEMENT);
        assert_eq!(sanitize("abc"), "abc");
    }

    #[test]
    fn bidi_placeholders_are_measured_wrapped_and_cut_whole() {
        let text = "ab\u{202e}cd";
        assert_eq!(text_width(text), 9);
        assert_eq!(text_width(text), text_width(&sanitize(text)));
        assert_eq!(truncate(text, 6), "ab");
        assert_eq!(truncate(text, 7), "ab⟨RLO⟩");
        assert_eq!(wrap(text, 5, 5), vec!["ab", "⟨RLO⟩", "cd"]);
    }

    #[test]
    fn widths_follow_unicode() {
        assert_eq!(text_width("abc"), 3);
        assert_eq!(text_width("日本"), 4);
        assert_eq!(text_width("e\u{301}"), 1);
        assert_eq!(text_width("🦀"), 2);
    }

    #[test]
    fn wrap_splits_by_width() {
        assert_eq!(wrap("abcdef", 4, 4), vec!["abcd", "ef"]);
        assert_eq!(wrap("abcdef", 2, 4), vec!["ab", "cdef"]);
        assert_eq!(wrap("", 4, 4), vec![""]);
    }

    #[test]
    fn wrap_breaks_after_white_space() {
        assert_eq!(wrap("ab cd ef", 5, 5), vec!["ab cd", "ef"]);
        assert_eq!(wrap("ab cd ef", 4, 4), vec!["ab ", "cd ", "ef"]);
        assert_eq!(wrap("ab cdefgh", 6, 6), vec!["ab ", "cdefgh"]);
        assert_eq!(wrap("abcdefgh ij", 4, 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("ab  cd", 2, 2), vec!["ab", " ", "cd"]);
    }

    #[test]
    fn wrap_moves_a_wide_char_that_does_not_fit() {
        assert_eq!(wrap("a日本", 2, 2), vec!["a", "日", "本"]);
    }

    #[test]
    fn wrap_keeps_combining_marks_with_their_base() {
        assert_eq!(wrap("abe\u{301}c", 3, 3), vec!["abe\u{301}", "c"]);
        assert_eq!(wrap("ae\u{301}", 1, 1), vec!["a", "e\u{301}"]);
    }

    #[test]
    fn wrap_survives_tiny_widths() {
        assert_eq!(wrap("日", 1, 1), vec!["日"]);
        assert_eq!(wrap("日", 0, 2), vec!["", "日"]);
        assert_eq!(wrap("ab", 0, 0).concat(), "ab");
    }

    #[test]
    fn truncate_stops_at_the_width() {
        assert_eq!(truncate("日本語", 5), "日本");
        assert_eq!(truncate("\u{1b}x", 5), "\u{241b}x");
    }
}
