//! The text log's writer: interface names, file names and other text mcr
//! does not control reach the log inside messages and fields; a terminal
//! (or `journalctl` in a terminal) would interpret an ESC or a
//! bidirectional override in them. Every line is escaped on its way out
//! ([`mcr_config::text::unsafe_char`] decides what; the newline ending a
//! line is kept).

use std::io::{self, Write};

/// Escapes every character [`mcr_config::text::unsafe_char`] names, except
/// newlines, as `\u{XX}`. Backslashes are left alone (a log is read, not
/// parsed back).
pub fn escape_line(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c != '\n' && mcr_config::text::unsafe_char(c).is_some();
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A writer that escapes what passes through it (see [`escape_line`]).
/// The fmt layer writes each event as one buffer, so lines are never cut.
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(escape_line(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Makes [`Escaping`] writers to stderr for `tracing_subscriber`.
pub struct EscapingStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for EscapingStderr {
    type Writer = Escaping<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping(io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_and_bidi_never_pass_raw() {
        let mut out = Escaping(Vec::new());
        out.write_all("interface appeared interface=e\x1b[31mx \u{202e}z\n".as_bytes())
            .unwrap();
        let text = String::from_utf8(out.0).unwrap();
        assert_eq!(
            text,
            "interface appeared interface=e\\u{1b}[31mx \\u{202e}z\n"
        );
    }
}
