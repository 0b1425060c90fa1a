//! Text that reaches a terminal or a log: which characters may not appear
//! in names, and how wire- or kernel-supplied text is escaped before it is
//! shown.
//!
//! A terminal interprets control characters (ESC starts a sequence that
//! can rewrite the screen or the title), and bidirectional overrides,
//! zero-width characters and line separators make a name look like another
//! one. Names are refused when they hold any of these; text mcr does not
//! control (interface names, file names, answers of an older daemon) is
//! escaped instead.

use std::borrow::Cow;

/// Why `c` must not appear in a name shown to operators, or `None` when it
/// may.
pub fn unsafe_char(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => "a bidirectional override",
        '\u{200e}' | '\u{200f}' | '\u{061c}' => "a bidirectional mark",
        '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}' => {
            "an invisible (zero-width) character"
        }
        '\u{2028}' | '\u{2029}' | '\u{0085}' => "a line or paragraph separator",
        c if c.is_control() => "a control character",
        _ => return None,
    })
}

/// `text` with every character [`unsafe_char`] names written as `\u{XXXX}`
/// (a backslash is doubled so the escape cannot be forged). Borrowed when
/// nothing needs escaping, which is the common case.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_keeping(text, &[])
}

/// [`escape`], leaving the characters in `keep` (e.g. `'\n'` in a whole
/// rendered table) as they are.
pub fn escape_keeping<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    let needs = |c: char| (c == '\\' || unsafe_char(c).is_some()) && !keep.contains(&c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs(c) {
            out.push(c);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// At most `max` bytes of `text`, cut at a character boundary, with `...`
/// when cut (for quoting a long value in a message).
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_bidi_only() {
        assert!(matches!(escape("eth0 ünïcode"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape("back\\u{1b}"), "back\\\\u{1b}");
        assert_eq!(escape_keeping("a\nb\x07", &['\n']), "a\nb\\u{7}");
    }

    #[test]
    fn names_refused_characters() {
        for c in [
            '\u{202e}', '\u{2066}', '\u{200b}', '\u{feff}', '\u{2028}', '\x1b', '\u{85}',
        ] {
            assert!(unsafe_char(c).is_some(), "{:x}", c as u32);
        }
        for c in ['a', 'é', '中', '-', ' ', '😀'] {
            assert!(unsafe_char(c).is_none(), "{c}");
        }
    }

    #[test]
    fn shorten_cuts_at_a_char_boundary() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééé", 3), "é...");
    }
}
