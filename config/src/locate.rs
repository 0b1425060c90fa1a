//! A small, total JSON5 scanner that maps a key path (`rules[2].outputs[0].port`)
//! to a line and column in the source text.
//!
//! It tokenizes just enough of JSON5 (strings in both quotes with escapes,
//! `//` and `/* */` comments, identifiers, numbers and literals as opaque
//! words, punctuation) to walk objects and arrays. It never builds a tree and
//! never recurses, so it cannot overflow the stack, and it never panics: on
//! malformed input it returns the deepest position it did reach.

/// One segment of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Splits `rules[2].outputs[0].port` into segments. Unparseable pieces are
/// kept as keys, so the walk simply stops matching there.
pub(crate) fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                segs.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else {
                    segs.push(Seg::Key(rest.to_string()));
                    break;
                };
                match stripped[..end].parse::<usize>() {
                    Ok(n) => segs.push(Seg::Index(n)),
                    Err(_) => segs.push(Seg::Key(stripped[..end].to_string())),
                }
                rest = &stripped[end + 1..];
            }
        } else if !rest.is_empty() {
            segs.push(Seg::Key(rest.to_string()));
        }
    }
    segs
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Colon,
    Comma,
    /// A quoted string (unescaped) or a bare word (identifier, number, literal).
    Text(String),
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.char_indices().peekable(),
        }
    }

    /// Next token and its byte offset; `None` at end of input or on an
    /// unterminated string/comment.
    fn next(&mut self) -> Option<(usize, Tok)> {
        loop {
            let (off, c) = self.chars.next()?;
            match c {
                '{' => return Some((off, Tok::LBrace)),
                '}' => return Some((off, Tok::RBrace)),
                '[' => return Some((off, Tok::LBrack)),
                ']' => return Some((off, Tok::RBrack)),
                ':' => return Some((off, Tok::Colon)),
                ',' => return Some((off, Tok::Comma)),
                '"' | '\'' => return self.string(c).map(|s| (off, Tok::Text(s))),
                '/' if self.chars.peek().map(|&(_, c)| c) == Some('/') => {
                    for (_, c) in self.chars.by_ref() {
                        if is_line_terminator(c) {
                            break;
                        }
                    }
                }
                '/' if self.chars.peek().map(|&(_, c)| c) == Some('*') => {
                    self.chars.next();
                    let mut prev_star = false;
                    loop {
                        let (_, c) = self.chars.next()?;
                        if prev_star && c == '/' {
                            break;
                        }
                        prev_star = c == '*';
                    }
                }
                c if c.is_whitespace() || c == '\u{feff}' => {}
                c => {
                    let mut word = String::from(c);
                    while let Some(&(_, c)) = self.chars.peek() {
                        if is_word_end(c) {
                            break;
                        }
                        word.push(c);
                        self.chars.next();
                    }
                    return Some((off, Tok::Text(word)));
                }
            }
        }
    }

    fn string(&mut self, quote: char) -> Option<String> {
        let mut s = String::new();
        loop {
            let (_, c) = self.chars.next()?;
            if c == quote {
                return Some(s);
            }
            if c == '\\' {
                let (_, e) = self.chars.next()?;
                match e {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'b' => s.push('\u{8}'),
                    'f' => s.push('\u{c}'),
                    'v' => s.push('\u{b}'),
                    '0' => s.push('\0'),
                    // Line continuation: the terminator is not part of the string.
                    '\r' => {
                        if self.chars.peek().map(|&(_, c)| c) == Some('\n') {
                            self.chars.next();
                        }
                    }
                    e if is_line_terminator(e) => {}
                    // \x and \u escapes are kept verbatim; keys never need them.
                    e => s.push(e),
                }
            } else {
                s.push(c);
            }
        }
    }
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_word_end(c: char) -> bool {
    c.is_whitespace()
        || c == '\u{feff}'
        || matches!(c, '{' | '}' | '[' | ']' | ':' | ',' | '"' | '\'' | '/')
}

/// Skips the rest of a value whose first token is `first`.
fn skip_value(lx: &mut Lexer, first: &Tok) -> Option<()> {
    if !matches!(first, Tok::LBrace | Tok::LBrack) {
        return Some(());
    }
    let mut depth: usize = 1;
    while depth > 0 {
        match lx.next()?.1 {
            Tok::LBrace | Tok::LBrack => depth += 1,
            Tok::RBrace | Tok::RBrack => depth -= 1,
            _ => {}
        }
    }
    Some(())
}

/// After a skipped member/element: consume the `,`; returns false at the
/// closing bracket or on anything unexpected.
fn after_item(lx: &mut Lexer) -> bool {
    matches!(lx.next(), Some((_, Tok::Comma)))
}

/// Byte offset of the value at `path`, or of the deepest enclosing value that
/// exists. `None` only when the text holds no value at all.
pub(crate) fn locate_offset(text: &str, path: &[Seg]) -> Option<usize> {
    let mut lx = Lexer::new(text);
    let (mut off, mut tok) = lx.next()?;
    for seg in path {
        let found = match (seg, &tok) {
            (Seg::Key(want), Tok::LBrace) => find_member(&mut lx, want),
            (Seg::Index(want), Tok::LBrack) => find_element(&mut lx, *want),
            _ => None,
        };
        match found {
            Some((o, t)) => {
                off = o;
                tok = t;
            }
            None => return Some(off),
        }
    }
    Some(off)
}

/// Line and column of the second `key` in the object at `path`: where a
/// key given twice is reported. `None` if there is no second one.
pub(crate) fn locate_second_key(text: &str, path: &str, key: &str) -> Option<(usize, usize)> {
    let mut lx = Lexer::new(text);
    let (_, mut tok) = lx.next()?;
    for seg in parse_path(path) {
        tok = match (&seg, &tok) {
            (Seg::Key(want), Tok::LBrace) => find_member(&mut lx, want)?.1,
            (Seg::Index(want), Tok::LBrack) => find_element(&mut lx, *want)?.1,
            _ => return None,
        };
    }
    if tok != Tok::LBrace {
        return None;
    }
    let (_, first) = find_member(&mut lx, key)?;
    skip_value(&mut lx, &first)?;
    if !after_item(&mut lx) {
        return None;
    }
    let (off, _) = find_member_key(&mut lx, key)?;
    Some(line_col(text, off))
}

/// Like [`find_member`], but returns the offset of the key itself.
fn find_member_key(lx: &mut Lexer, want: &str) -> Option<(usize, Tok)> {
    loop {
        let (koff, key_tok) = lx.next()?;
        let key = match key_tok {
            Tok::Text(k) => k,
            Tok::Comma => continue,
            _ => return None,
        };
        if lx.next()?.1 != Tok::Colon {
            return None;
        }
        let (_, value) = lx.next()?;
        if key == want {
            return Some((koff, value));
        }
        skip_value(lx, &value)?;
        if !after_item(lx) {
            return None;
        }
    }
}

fn find_member(lx: &mut Lexer, want: &str) -> Option<(usize, Tok)> {
    loop {
        let (_, key_tok) = lx.next()?;
        let key = match key_tok {
            Tok::Text(k) => k,
            Tok::Comma => continue,
            _ => return None,
        };
        if lx.next()?.1 != Tok::Colon {
            return None;
        }
        let (voff, value) = lx.next()?;
        if key == want {
            return Some((voff, value));
        }
        skip_value(lx, &value)?;
        if !after_item(lx) {
            return None;
        }
    }
}

fn find_element(lx: &mut Lexer, want: usize) -> Option<(usize, Tok)> {
    let mut index = 0usize;
    loop {
        let (off, tok) = lx.next()?;
        if matches!(tok, Tok::RBrack | Tok::RBrace | Tok::Colon | Tok::Comma) {
            return None;
        }
        if index == want {
            return Some((off, tok));
        }
        skip_value(lx, &tok)?;
        if !after_item(lx) {
            return None;
        }
        index += 1;
    }
}

/// 1-based line and column (in characters) of a byte offset, counting line
/// terminators like JSON5 does (CRLF is one).
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if i >= offset {
            break;
        }
        if is_line_terminator(c) {
            if c == '\r' && chars.peek().map(|&(_, c)| c) == Some('\n') {
                chars.next();
            }
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Line and column of the value at `path` (or its deepest existing ancestor).
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    locate_offset(text, &parse_path(path)).map(|off| line_col(text, off))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: &str = r#"{
  // comment with { brackets [ and "quotes'
  rules: [
    { name: 'a\'b', input: { interface: "eth0", group: "239.1.1.1", port: 5001 },
      outputs: [ { interface: "eth1", group: "239.1.1.1", port: 5001 } ] },
    /* block } ] */
    {
      "input": { interface: "eth0", group: "239.1.1.2", port: 0 },
      outputs: [
        { interface: "eth1", group: "239.1.1.1", port: 1, },
        { interface: "eth2", group: "239.1.1.1", port: +0x10, },
      ],
    },
  ],
  cores: [0, 1,],
}"#;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("rules[2].outputs[0].port"),
            vec![
                Seg::Key("rules".into()),
                Seg::Index(2),
                Seg::Key("outputs".into()),
                Seg::Index(0),
                Seg::Key("port".into())
            ]
        );
        assert_eq!(parse_path(""), vec![]);
        assert_eq!(
            parse_path("a[x]"),
            vec![Seg::Key("a".into()), Seg::Key("x".into())]
        );
        assert_eq!(parse_path("[3]"), vec![Seg::Index(3)]);
    }

    #[test]
    fn finds_values() {
        assert_eq!(locate(TEXT, ""), Some((1, 1)));
        assert_eq!(locate(TEXT, "rules"), Some((3, 10)));
        assert_eq!(locate(TEXT, "rules[0]"), Some((4, 5)));
        assert_eq!(locate(TEXT, "rules[0].input.port"), Some((4, 75)));
        assert_eq!(locate(TEXT, "rules[1]"), Some((7, 5)));
        assert_eq!(locate(TEXT, "rules[1].input.port"), Some((8, 63)));
        assert_eq!(locate(TEXT, "rules[1].outputs[1].port"), Some((11, 56)));
        assert_eq!(locate(TEXT, "cores[1]"), Some((15, 14)));
    }

    #[test]
    fn falls_back_to_deepest_ancestor() {
        // rules[1] has no name: point at the rule.
        assert_eq!(locate(TEXT, "rules[1].name"), Some((7, 5)));
        assert_eq!(locate(TEXT, "rules[7].name"), Some((3, 10)));
        assert_eq!(locate(TEXT, "igmp.version"), Some((1, 1)));
        assert_eq!(locate("", "rules"), None);
        assert_eq!(locate("{ rules: [ {", "rules[0].input"), Some((1, 12)));
    }

    #[test]
    fn finds_a_second_key() {
        let t = "{ pinning: {\n  eth0: [0],\n  'eth1': [1],\n  \"eth0\": [2] } }";
        assert_eq!(locate_second_key(t, "pinning", "eth0"), Some((4, 3)));
        assert_eq!(locate_second_key(t, "pinning", "eth1"), None);
        assert_eq!(locate_second_key(t, "nope", "eth0"), None);
        assert_eq!(locate_second_key("{", "", "a"), None);
    }

    #[test]
    fn line_col_counts_crlf_once_and_chars() {
        let t = "{\r\n  \"é\": 1,\r\n  x: 2 }";
        assert_eq!(locate(t, "x"), Some((3, 6)));
        assert_eq!(locate(t, "é"), Some((2, 8)));
        assert_eq!(line_col(t, 10_000), (3, 9));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let t = "[".repeat(1_000_000);
        assert_eq!(locate(&t, "[0][0][5]"), Some((1, 3)));
        let t = format!("{{a: {} , b: 1}}", "[".repeat(100_000));
        assert_eq!(locate(&t, "b"), Some((1, 1)));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*", path in "[a-z\\[\\]0-9.]{0,20}") {
            let _ = locate(&text, &path);
            let _ = locate_second_key(&text, &path, "a");
        }

        #[test]
        fn never_panics_json_like(text in "[{}\\[\\]:,\"'/*\\\\ a-z0-9\n\r]{0,200}", path in "[a-z\\[\\]0-9.]{0,12}") {
            let _ = locate(&text, &path);
        }
    }
}
