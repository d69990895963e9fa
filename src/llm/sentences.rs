//! Cutting a token stream into sentences, so speech can start after the first sentence.
//!
//! [`SentenceSplitter`] is a pure state machine: push each piece of text as the model
//! produces it and get back the sentences it completes; [`SentenceSplitter::finish`] returns
//! what is left. A sentence ends at `.`, `!`, `?`, `…` or a line break, once the next
//! character shows it really ended (whitespace, a closing quote then whitespace); a
//! decimal point (`3.5`), an abbreviation (`Dr.`, `e.g.`) or an initial (`J. R. R.`) does
//! not end one. A very long stretch without an ending is cut at a comma or a space, so a
//! rambling model cannot hold the speaker silent.

/// Abbreviations that do not end a sentence (lower case, without the final dot).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "approx",
    "no", "fig", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k",
];

/// The longest sentence, in characters, before it is cut at a comma or a space.
pub const MAX_SENTENCE_CHARS: usize = 240;

/// Splits streamed text into sentences.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    buf: String,
}

impl SentenceSplitter {
    /// A new, empty splitter.
    pub fn new() -> SentenceSplitter {
        SentenceSplitter::default()
    }

    /// Add a piece of text; returns the sentences it completed, trimmed, in order.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.buf.push_str(piece);
        let mut out = Vec::new();
        while let Some(end) = self.sentence_end() {
            let rest = self.buf.split_off(end);
            let sentence = std::mem::replace(&mut self.buf, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
        }
        out
    }

    /// The text after the last complete sentence, trimmed; `None` when there is none.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// Byte offset just after the first complete sentence in the buffer.
    fn sentence_end(&self) -> Option<usize> {
        let buf = &self.buf;
        let chars: Vec<(usize, char)> = buf.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            if c == '\n' {
                // A line break ends whatever came before it (lists, headings).
                if buf[..at].trim().is_empty() {
                    continue;
                }
                return Some(at + 1);
            }
            if !matches!(c, '.' | '!' | '?' | '…') {
                continue;
            }
            // Skip closing quotes and brackets, and runs of terminators ("?!", "...").
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '…') {
                j += 1;
            }
            while j < chars.len() && matches!(chars[j].1, '"' | '\'' | '”' | '’' | ')' | ']') {
                j += 1;
            }
            let Some(&(next_at, next)) = chars.get(j) else {
                // Not yet known whether the sentence ended: wait for more text.
                return None;
            };
            if !next.is_whitespace() {
                continue;
            }
            if c == '.' && j == i + 1 && self.is_abbreviation(at) {
                continue;
            }
            return Some(next_at);
        }
        if buf.len() > MAX_SENTENCE_CHARS {
            return Some(long_cut(buf));
        }
        None
    }

    /// Whether the dot at byte `dot` ends an abbreviation, an initial or a number.
    fn is_abbreviation(&self, dot: usize) -> bool {
        let before = &self.buf[..dot];
        let word = before
            .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
            .next()
            .unwrap_or("");
        if word.is_empty() {
            return false;
        }
        // A single capital letter: an initial.
        let mut letters = word.chars();
        if let (Some(first), None) = (letters.next(), letters.next()) {
            if first.is_uppercase() {
                return true;
            }
        }
        let lower = word.to_lowercase();
        ABBREVIATIONS.contains(&lower.as_str())
    }
}

/// Where to cut an over-long stretch: after the last comma, semicolon or colon in it,
/// else after the last space, else at the limit (on a character boundary).
fn long_cut(buf: &str) -> usize {
    let mut limit = MAX_SENTENCE_CHARS.min(buf.len());
    while !buf.is_char_boundary(limit) {
        limit -= 1;
    }
    let head = &buf[..limit];
    if let Some(i) = head.rfind([',', ';', ':']) {
        if i > MAX_SENTENCE_CHARS / 3 {
            return i + 1;
        }
    }
    if let Some(i) = head.rfind(' ') {
        if i > 0 {
            return i + 1;
        }
    }
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `pieces` one at a time; returns every sentence, the finish included.
    fn split(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    fn check(pieces: &[&str], expect: &[&str]) {
        assert_eq!(split(pieces), expect, "pieces: {pieces:?}");
    }

    #[test]
    fn sentences_end_at_terminators_followed_by_space() {
        check(
            &["Hello", " there.", " How are", " you? I'm", " fine!"],
            &["Hello there.", "How are you?", "I'm fine!"],
        );
    }

    #[test]
    fn a_sentence_is_emitted_as_soon_as_the_next_word_starts() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("It is ten.").is_empty(), "must wait: could be 10.5");
        assert_eq!(s.push(" Then"), vec!["It is ten."]);
        assert_eq!(s.finish().as_deref(), Some("Then"));
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_end_sentences() {
        check(
            &["Pi is 3.14 roughly. Dr. Smith met J. R. R. Tolkien, e.g. once. Done"],
            &[
                "Pi is 3.14 roughly.",
                "Dr. Smith met J. R. R. Tolkien, e.g. once.",
                "Done",
            ],
        );
    }

    #[test]
    fn quotes_ellipses_and_runs_of_terminators() {
        check(
            &["He said \"stop.\" Then... nothing?! Yes"],
            &["He said \"stop.\"", "Then...", "nothing?!", "Yes"],
        );
    }

    #[test]
    fn line_breaks_end_list_items() {
        check(&["Items:\n- milk\n- eggs"], &["Items:", "- milk", "- eggs"]);
    }

    #[test]
    fn split_across_pieces_is_the_same_as_whole() {
        let text = "The time is 10:30. A timer is set for 5 minutes! Anything else? No";
        let whole = split(&[text]);
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(split(&refs), whole);
        assert_eq!(whole.len(), 4);
    }

    #[test]
    fn long_text_without_endings_is_cut() {
        let clause = "and then it went on ".repeat(30);
        let out = split(&[&clause]);
        assert!(out.len() >= 2, "{out:?}");
        assert!(out.iter().all(|s| s.len() <= MAX_SENTENCE_CHARS), "{out:?}");
        assert_eq!(out.join(" "), clause.trim());
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "é".repeat(400);
        let out = split(&[&text]);
        assert_eq!(out.concat(), text);
    }

    #[test]
    fn empty_and_whitespace_give_nothing() {
        check(&["", "  ", "\n\n"], &[]);
    }
}
