//! Splitting Slack command text into words, without a shell.
//!
//! Slipway never hands user text to a shell, so shell operators have no meaning here. Rather than
//! silently treating `;` or `|` as plain characters (which would surprise a person who expected them
//! to work), an unquoted operator is an error that says so. Inside quotes every character is plain.

use std::fmt;

/// Longest command text accepted. Slack caps slash-command text far below this.
pub const MAX_TEXT_LEN: usize = 4000;
/// Most words in one command.
pub const MAX_WORDS: usize = 64;

/// Why the text could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizeError {
    /// A shell operator appeared outside quotes.
    Operator(&'static str),
    /// A newline or other control character.
    ControlChar,
    /// A quote was opened and never closed.
    UnclosedQuote(char),
    /// Text or word count over the limits.
    TooLong,
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator(op) => write!(
                f,
                "`{op}` is not supported: Slipway runs exactly one command, without a shell. \
                 Remove it, or put it inside quotes if it is part of an argument."
            ),
            Self::ControlChar => f.write_str(
                "the command contains a line break or control character; send one command on one line",
            ),
            Self::UnclosedQuote(q) => write!(f, "a {q} quote is never closed; close it or remove it"),
            Self::TooLong => write!(
                f,
                "the command is too long (at most {MAX_TEXT_LEN} characters and {MAX_WORDS} words)"
            ),
        }
    }
}

impl std::error::Error for TokenizeError {}

/// Characters that are shell operators when unquoted. `$` only counts when followed by `(`.
const OPERATOR_CHARS: [(char, &str); 6] = [
    (';', ";"),
    ('|', "|"),
    ('&', "&"),
    ('<', "<"),
    ('>', ">"),
    ('`', "`"),
];

/// Undo the HTML escaping Slack applies to `&`, `<` and `>` in command text.
fn unescape_slack(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Split `text` into words. Quotes (`"…"`, `'…'`, and the typographic quotes Slack clients insert)
/// group words; `\"` and `\\` are escapes inside double quotes. Adjacent quoted and unquoted parts
/// join into one word, as in `--comment="two words"`.
pub fn tokenize(text: &str) -> Result<Vec<String>, TokenizeError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(TokenizeError::TooLong);
    }
    let text = unescape_slack(text);
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\u{a0}' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '"' | '\u{201c}' | '\u{201d}' => {
                in_word = true;
                double_quoted(&mut chars, &mut current)?;
            }
            '\'' | '\u{2018}' | '\u{2019}' => {
                in_word = true;
                single_quoted(&mut chars, &mut current)?;
            }
            '$' if chars.peek() == Some(&'(') => return Err(TokenizeError::Operator("$(")),
            c if c.is_control() => return Err(TokenizeError::ControlChar),
            c => {
                operator(c, chars.peek())?;
                in_word = true;
                current.push(c);
            }
        }
        if words.len() > MAX_WORDS {
            return Err(TokenizeError::TooLong);
        }
    }
    if in_word {
        words.push(current);
    }
    if words.len() > MAX_WORDS {
        return Err(TokenizeError::TooLong);
    }
    Ok(words)
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// The rest of a `"…"` group, into `current`: `\"` and `\\` are escapes.
fn double_quoted(chars: &mut Chars<'_>, current: &mut String) -> Result<(), TokenizeError> {
    loop {
        match chars.next() {
            None => return Err(TokenizeError::UnclosedQuote('"')),
            Some('"' | '\u{201c}' | '\u{201d}') => return Ok(()),
            Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                current.extend(chars.next());
            }
            Some(ch) if ch.is_control() => return Err(TokenizeError::ControlChar),
            Some(ch) => current.push(ch),
        }
    }
}

/// The rest of a `'…'` group, into `current`: no escapes.
fn single_quoted(chars: &mut Chars<'_>, current: &mut String) -> Result<(), TokenizeError> {
    loop {
        match chars.next() {
            None => return Err(TokenizeError::UnclosedQuote('\'')),
            Some('\'' | '\u{2018}' | '\u{2019}') => return Ok(()),
            Some(ch) if ch.is_control() => return Err(TokenizeError::ControlChar),
            Some(ch) => current.push(ch),
        }
    }
}

/// A shell operator outside quotes is an error that names it (two characters where it has two).
fn operator(c: char, next: Option<&char>) -> Result<(), TokenizeError> {
    let Some((_, op)) = OPERATOR_CHARS.iter().find(|(ch, _)| *ch == c) else {
        return Ok(());
    };
    let op = match (c, next) {
        ('&', Some('&')) => "&&",
        ('|', Some('|')) => "||",
        ('>', Some('>')) => ">>",
        _ => op,
    };
    Err(TokenizeError::Operator(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        tokenize(s).expect("tokenizes")
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(ok("get  pods\t-n web"), ["get", "pods", "-n", "web"]);
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn quotes_group_and_join() {
        assert_eq!(ok(r#"--comment="a b" 'c;d'"#), ["--comment=a b", "c;d"]);
        assert_eq!(ok(r#""say \"hi\"""#), [r#"say "hi""#]);
        assert_eq!(ok("\u{201c}smart quotes\u{201d}"), ["smart quotes"]);
        assert_eq!(ok(r#""""#), [""]);
    }

    #[test]
    fn operators_are_errors_outside_quotes() {
        for (text, op) in [
            ("get pods; rm -rf /", ";"),
            ("get pods && id", "&&"),
            ("get pods | sh", "|"),
            ("get pods > /tmp/x", ">"),
            ("get pods &gt;&gt; x", ">>"),
            ("get `id`", "`"),
            ("get $(id)", "$("),
            ("get pods &amp; id", "&"),
        ] {
            assert_eq!(tokenize(text), Err(TokenizeError::Operator(op)), "{text}");
        }
    }

    #[test]
    fn newlines_and_unclosed_quotes_are_errors() {
        assert_eq!(tokenize("get pods\nid"), Err(TokenizeError::ControlChar));
        assert_eq!(
            tokenize("get 'pods"),
            Err(TokenizeError::UnclosedQuote('\''))
        );
        assert_eq!(
            tokenize("get \"pods"),
            Err(TokenizeError::UnclosedQuote('"'))
        );
    }

    #[test]
    fn plain_dollar_is_plain() {
        assert_eq!(ok("echo $HOME"), ["echo", "$HOME"]);
    }

    #[test]
    fn limits() {
        assert_eq!(tokenize(&"a ".repeat(100)), Err(TokenizeError::TooLong));
        assert_eq!(
            tokenize(&"a".repeat(MAX_TEXT_LEN + 1)),
            Err(TokenizeError::TooLong)
        );
    }
}
