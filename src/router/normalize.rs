//! Text normalization shared by templates and spoken input.
//!
//! Both sides go through [`tokenize`], so a template written as `what's` and
//! Whisper's `What's` or `whats` all become the token `whats`.
//!
//! Rules, applied per character:
//! * letters and digits are kept, lowercased;
//! * apostrophes inside a word are dropped (`today's` → `todays`);
//! * `/` and `.` between two digits are kept (`1/2`, `2.5`); a `,` followed
//!   by exactly three digits is a thousands separator and is dropped;
//! * `%` and `°` are tokens of their own;
//! * everything else (spaces, hyphens, punctuation) separates tokens, so
//!   `twenty-five` is `twenty five`.

use std::ops::Range;

/// One normalized word and where it came from in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Normalized text of the word.
    pub text: String,
    /// Byte range of the word in the original text.
    pub span: Range<usize>,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{00b4}')
}

/// Splits `text` into normalized tokens.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut span = 0..0;

    let flush = |current: &mut String, span: &Range<usize>, tokens: &mut Vec<Token>| {
        if !current.is_empty() {
            tokens.push(Token {
                text: std::mem::take(current),
                span: span.clone(),
            });
        }
    };

    for (i, &(at, c)) in chars.iter().enumerate() {
        let next_is_digit = chars.get(i + 1).is_some_and(|&(_, n)| n.is_ascii_digit());
        let prev_is_digit = current.ends_with(|p: char| p.is_ascii_digit());
        if c.is_alphanumeric() {
            if current.is_empty() {
                span.start = at;
            }
            current.extend(c.to_lowercase());
            span.end = at + c.len_utf8();
        } else if is_apostrophe(c) && !current.is_empty() {
            // Dropped: the word goes on.
        } else if (c == '/' || c == '.') && prev_is_digit && next_is_digit {
            current.push(c);
        } else if c == ',' && prev_is_digit && is_thousands_group(&chars[i + 1..]) {
            // Thousands separator: dropped.
        } else if c == '%' || c == '°' {
            flush(&mut current, &span, &mut tokens);
            tokens.push(Token {
                text: c.to_string(),
                span: at..at + c.len_utf8(),
            });
        } else {
            flush(&mut current, &span, &mut tokens);
        }
    }
    flush(&mut current, &span, &mut tokens);
    tokens
}

/// Whether `rest` starts with exactly three digits (then a non-digit or the end).
fn is_thousands_group(rest: &[(usize, char)]) -> bool {
    rest.len() >= 3
        && rest[..3].iter().all(|&(_, c)| c.is_ascii_digit())
        && rest.get(3).is_none_or(|&(_, c)| !c.is_ascii_digit())
}

/// Normalized words of `text`, without spans.
pub(crate) fn words(text: &str) -> Vec<String> {
    tokenize(text).into_iter().map(|t| t.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_whisper_output() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Set a timer for 10 minutes.",
                &["set", "a", "timer", "for", "10", "minutes"],
            ),
            ("What's the weather?", &["whats", "the", "weather"]),
            ("what\u{2019}s today's date", &["whats", "todays", "date"]),
            ("twenty-five", &["twenty", "five"]),
            ("1/2 an hour", &["1/2", "an", "hour"]),
            (
                "1 hour, 15 minutes, and 30 seconds",
                &["1", "hour", "15", "minutes", "and", "30", "seconds"],
            ),
            ("2.5 hours", &["2.5", "hours"]),
            ("1,000 things", &["1000", "things"]),
            ("5,10", &["5", "10"]),
            ("50%", &["50", "%"]),
            ("  'quoted'  ", &["quoted"]),
            ("", &[]),
        ];
        for (input, expected) in cases {
            assert_eq!(words(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn spans_point_into_the_original() {
        let text = "Add Milk, eggs to my list!";
        let tokens = tokenize(text);
        assert_eq!(&text[tokens[1].span.clone()], "Milk");
        assert_eq!(&text[tokens[5].span.clone()], "list");
    }
}
