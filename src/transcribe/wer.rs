//! Word error rate (WER) with text normalisation, for scoring transcripts against references.
//!
//! [`normalize`] maps both texts to a canonical form so that only real recognition errors
//! count:
//!
//! * lower case; curly quotes and apostrophes unified, then apostrophes dropped
//!   (`Don't` → `dont`, `LINNELL'S` → `linnells`);
//! * punctuation removed; hyphens and slashes separate words (`well-known` → `well known`);
//! * numbers unified to digits: `ten` → `10`, `twenty-five` / `twenty five` → `25`,
//!   `one hundred and five` → `105`, `a thousand` → `1000`, `1,000` → `1000`,
//!   `nineteen eighty four` → `1984`, `twenty first` / `21st` → `21st`, `3.5` and
//!   `three point five` → `3 point 5`;
//! * symbols spelled out: `%` → `percent`, `$5` → `5 dollars`, `&` → `and`;
//! * a few spoken/written variants unified: `mister` → `mr`, `okay` → `ok`.
//!
//! [`wer`] is the word-level Levenshtein distance between the normalised texts divided by the
//! number of reference words; [`word_errors`] gives the breakdown.

/// Substitutions, deletions and insertions of one alignment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WordErrors {
    /// Reference words replaced by a different word.
    pub substitutions: usize,
    /// Reference words missing from the hypothesis.
    pub deletions: usize,
    /// Hypothesis words not in the reference.
    pub insertions: usize,
    /// Words in the normalised reference.
    pub reference_words: usize,
}

impl WordErrors {
    /// Total edits.
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Errors divided by reference words. With an empty reference: 0.0 if the hypothesis is
    /// empty too, else 1.0.
    pub fn wer(&self) -> f64 {
        match (self.reference_words, self.errors()) {
            (0, 0) => 0.0,
            (0, _) => 1.0,
            (n, e) => e as f64 / n as f64,
        }
    }
}

/// Word error rate of `hypothesis` against `reference`, after [`normalize`]-ing both.
/// 0.0 is perfect; it can exceed 1.0 when the hypothesis has many extra words.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    word_errors(reference, hypothesis).wer()
}

/// The minimum-edit alignment of the normalised texts, broken down by kind of error.
pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    let r: Vec<&str> = r.split(' ').filter(|w| !w.is_empty()).collect();
    let h: Vec<&str> = h.split(' ').filter(|w| !w.is_empty()).collect();
    align(&r, &h)
}

/// Levenshtein alignment over words, one row at a time. Ties prefer substitution, then
/// deletion, then insertion.
fn align(r: &[&str], h: &[&str]) -> WordErrors {
    // Each cell: (total cost, substitutions, deletions, insertions).
    type Cell = (usize, usize, usize, usize);
    let mut prev: Vec<Cell> = (0..=h.len()).map(|j| (j, 0, 0, j)).collect();
    let mut cur: Vec<Cell> = vec![(0, 0, 0, 0); h.len() + 1];
    for (i, rw) in r.iter().enumerate() {
        cur[0] = (i + 1, 0, i + 1, 0);
        for (j, hw) in h.iter().enumerate() {
            let diag = prev[j];
            let same = rw == hw;
            let sub = (
                diag.0 + usize::from(!same),
                diag.1 + usize::from(!same),
                diag.2,
                diag.3,
            );
            let up = prev[j + 1];
            let del = (up.0 + 1, up.1, up.2 + 1, up.3);
            let left = cur[j];
            let ins = (left.0 + 1, left.1, left.2, left.3 + 1);
            cur[j + 1] = [sub, del, ins]
                .into_iter()
                .min_by_key(|c| c.0)
                .unwrap_or(sub);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let (_, substitutions, deletions, insertions) = prev[h.len()];
    WordErrors {
        substitutions,
        deletions,
        insertions,
        reference_words: r.len(),
    }
}

/// Normalises `text` for WER scoring (see the [module docs](self)); words are separated by
/// single spaces.
pub fn normalize(text: &str) -> String {
    let cleaned = clean_characters(text);
    let words: Vec<String> = cleaned
        .split_whitespace()
        .flat_map(split_token)
        .map(|w| canonical_word(&w).to_string())
        .collect();
    numbers_to_digits(&words).join(" ")
}

/// Lower-cases, unifies quote characters, and turns punctuation into separators, keeping the
/// characters that carry meaning inside numbers (`.`, `,`, `$`, `%`) for [`split_token`].
fn clean_characters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            '\'' | '\u{2019}' | '\u{2018}' | '\u{02bc}' | '`' | '\u{b4}' => {} // apostrophes
            '&' => out.push_str(" and "),
            '%' => out.push_str(" percent "),
            '.' | ',' | '$' | '\u{a3}' | '\u{20ac}' => out.push(c),
            c if c.is_alphanumeric() => out.push(c),
            _ => out.push(' '), // hyphens, dashes, slashes, other punctuation
        }
    }
    out
}

/// Splits one whitespace-free token on its remaining `.`/`,`/currency characters, keeping
/// numbers intact: `1,000` → `1000`, `3.5` → `3 point 5`, `$20` → `20 dollars`, `end.` → `end`.
fn split_token(token: &str) -> Vec<String> {
    let chars: Vec<char> = token.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    let mut currency: Option<&str> = None;
    for (i, &c) in chars.iter().enumerate() {
        let digit_before = i > 0 && chars[i - 1].is_ascii_digit();
        let digit_after = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        match c {
            ',' if digit_before && digit_after && is_thousands_group(&chars[i + 1..]) => {}
            '.' if digit_before && digit_after => {
                words.push(std::mem::take(&mut current));
                words.push("point".to_string());
            }
            '$' | '\u{a3}' | '\u{20ac}' => {
                words.push(std::mem::take(&mut current));
                currency = Some(match c {
                    '$' => "dollars",
                    '\u{a3}' => "pounds",
                    _ => "euros",
                });
            }
            '.' | ',' => words.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    words.push(current);
    words.retain(|w| !w.is_empty());
    if let Some(unit) = currency {
        words.push(unit.to_string());
    }
    words
}

/// True if `rest` starts with exactly three digits followed by a non-digit or the end.
fn is_thousands_group(rest: &[char]) -> bool {
    rest.len() >= 3
        && rest[..3].iter().all(char::is_ascii_digit)
        && !rest.get(3).is_some_and(char::is_ascii_digit)
}

/// Unifies common spoken/written variants of the same word.
fn canonical_word(word: &str) -> &str {
    match word {
        "mister" => "mr",
        "missus" | "missis" => "mrs",
        "okay" => "ok",
        other => other,
    }
}

/// The role of a word inside a spoken number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumWord {
    /// 0–9.
    Unit(u64),
    /// 10–19.
    Teen(u64),
    /// 20, 30, … 90.
    Tens(u64),
    /// "hundred".
    Hundred,
    /// "thousand", "million", "billion".
    Scale(u64),
}

/// Classifies a number word, and whether it is an ordinal (`fifth`, `twentieth`).
fn number_word(word: &str) -> Option<(NumWord, bool)> {
    const UNITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    const UNIT_ORDINALS: [&str; 10] = [
        "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
        "ninth",
    ];
    const TEENS: [&str; 10] = [
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let position = |list: &[&str], w: &str| list.iter().position(|x| *x == w).map(|i| i as u64);
    if let Some(n) = position(&UNITS, word) {
        return Some((NumWord::Unit(n), false));
    }
    if let Some(n) = position(&UNIT_ORDINALS, word) {
        return Some((NumWord::Unit(n), true));
    }
    if let Some(n) = position(&TEENS, word) {
        return Some((NumWord::Teen(10 + n), false));
    }
    if let Some(stem) = word.strip_suffix("th") {
        // tenth … nineteenth; "twelfth" is irregular.
        let stem = if stem == "twelf" { "twelve" } else { stem };
        if let Some(n) = position(&TEENS, stem) {
            return Some((NumWord::Teen(10 + n), true));
        }
    }
    if let Some(n) = position(&TENS, word) {
        return Some((NumWord::Tens(20 + 10 * n), false));
    }
    if let Some(stem) = word.strip_suffix("ieth") {
        let spelled = format!("{stem}y");
        if let Some(n) = position(&TENS, &spelled) {
            return Some((NumWord::Tens(20 + 10 * n), true));
        }
    }
    match word {
        "hundred" => Some((NumWord::Hundred, false)),
        "hundredth" => Some((NumWord::Hundred, true)),
        "thousand" => Some((NumWord::Scale(1_000), false)),
        "thousandth" => Some((NumWord::Scale(1_000), true)),
        "million" => Some((NumWord::Scale(1_000_000), false)),
        "millionth" => Some((NumWord::Scale(1_000_000), true)),
        "billion" => Some((NumWord::Scale(1_000_000_000), false)),
        "billionth" => Some((NumWord::Scale(1_000_000_000), true)),
        _ => None,
    }
}

/// Accumulates one spoken number, e.g. "three hundred and twenty one thousand".
#[derive(Debug, Default)]
struct SpokenNumber {
    /// Completed thousands/millions/billions.
    total: u64,
    /// The part below the last scale word.
    current: u64,
    last: Option<NumWord>,
    /// Smallest scale used so far (scales must decrease: "million thousand" is two numbers).
    min_scale: Option<u64>,
    /// Two-digit groups seen, for years ("nineteen eighty four").
    pairs: Vec<u64>,
    ordinal: bool,
    words: usize,
}

impl SpokenNumber {
    /// Adds `w` if it continues this number; returns false if it must start a new one.
    fn push(&mut self, w: NumWord) -> bool {
        use NumWord::*;
        let ok = match (self.last, w) {
            (None, _) => true,
            // "twenty five", "hundred five", "thousand five"
            (Some(Tens(_) | Hundred | Scale(_)), Unit(_)) => self.current.is_multiple_of(10),
            (Some(Hundred | Scale(_)), Teen(_) | Tens(_)) => self.current.is_multiple_of(100),
            (Some(Unit(_) | Teen(_) | Tens(_)), Hundred) => {
                self.current < 100 && self.pairs.is_empty()
            }
            (Some(Unit(_) | Teen(_) | Tens(_) | Hundred), Scale(s)) => {
                self.pairs.is_empty() && self.min_scale.is_none_or(|m| s < m)
            }
            // "nineteen eighty", "twenty twenty": a year, kept as two-digit pairs.
            (Some(Teen(_) | Tens(_) | Unit(_)), Teen(_) | Tens(_)) => {
                self.total == 0 && (10..100).contains(&self.current) && self.pairs.is_empty()
            }
            _ => false,
        };
        if !ok {
            return false;
        }
        match w {
            Unit(n) | Teen(n) | Tens(n) => {
                if matches!(w, Teen(_) | Tens(_)) && (10..100).contains(&self.current) {
                    self.pairs.push(self.current);
                    self.current = 0;
                }
                self.current += n;
            }
            Hundred => self.current = self.current.max(1) * 100,
            Scale(s) => {
                self.total = self
                    .total
                    .saturating_add(self.current.max(1).saturating_mul(s));
                self.current = 0;
                self.min_scale = Some(s);
            }
        }
        self.last = Some(w);
        self.words += 1;
        true
    }

    fn value(&self) -> u64 {
        match self.pairs.first() {
            Some(&high) => high * 100 + self.current,
            None => self.total.saturating_add(self.current),
        }
    }

    fn render(&self) -> String {
        let n = self.value();
        if !self.ordinal {
            return n.to_string();
        }
        let suffix = match (n % 100, n % 10) {
            (11..=13, _) => "th",
            (_, 1) => "st",
            (_, 2) => "nd",
            (_, 3) => "rd",
            _ => "th",
        };
        format!("{n}{suffix}")
    }
}

/// Replaces runs of number words with digits; "and" inside a number and "a" before
/// "hundred"/"thousand"/… are absorbed.
fn numbers_to_digits(words: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut number = SpokenNumber::default();
        let mut j = i;
        // "a hundred", "a thousand"
        if words[j] == "a" {
            if let Some((w @ (NumWord::Hundred | NumWord::Scale(_)), ord)) =
                words.get(j + 1).and_then(|w| number_word(w))
            {
                number.push(NumWord::Unit(1));
                number.push(w);
                number.ordinal = ord;
                j += 2;
            }
        }
        while j < words.len() && !number.ordinal {
            if let Some((w, ord)) = number_word(&words[j]) {
                if !number.push(w) {
                    break;
                }
                number.ordinal = ord;
                j += 1;
            } else if words[j] == "and"
                && matches!(number.last, Some(NumWord::Hundred | NumWord::Scale(_)))
                && words
                    .get(j + 1)
                    .and_then(|w| number_word(w))
                    .is_some_and(|(w, _)| {
                        matches!(w, NumWord::Unit(_) | NumWord::Teen(_) | NumWord::Tens(_))
                    })
            {
                j += 1;
            } else {
                break;
            }
        }
        if number.words == 0 {
            out.push(words[i].clone());
            i += 1;
        } else {
            out.push(number.render());
            i = j;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let table = [
            ("Hello, World!", "hello world"),
            ("  spaced\tout\nwords  ", "spaced out words"),
            ("Don't stop", "dont stop"),
            ("Don\u{2019}t stop", "dont stop"),
            ("LINNELL'S PICTURES", "linnells pictures"),
            ("at 'em", "at em"),
            ("well-known", "well known"),
            ("and/or", "and or"),
            ("wait... what?", "wait what"),
            ("Set a timer for 10 minutes.", "set a timer for 10 minutes"),
            ("set a timer for ten minutes", "set a timer for 10 minutes"),
            ("twenty five", "25"),
            ("twenty-five", "25"),
            ("one hundred and five", "105"),
            ("a hundred people", "100 people"),
            ("a thousand", "1000"),
            ("two thousand and twenty four", "2024"),
            ("three hundred twenty one thousand four hundred", "321400"),
            ("1,000", "1000"),
            ("1,000,000 dollars", "1000000 dollars"),
            ("one million", "1000000"),
            ("nineteen eighty four", "1984"),
            ("twenty twenty five", "2025"),
            ("one two three", "1 2 3"),
            ("five six", "5 6"),
            ("3.5", "3 point 5"),
            ("three point five", "3 point 5"),
            ("first", "1st"),
            ("twenty first", "21st"),
            ("21st", "21st"),
            ("the twelfth of may", "the 12th of may"),
            ("one hundredth", "100th"),
            ("ninetieth", "90th"),
            ("fifty percent", "50 percent"),
            ("50%", "50 percent"),
            ("$20", "20 dollars"),
            ("rock & roll", "rock and roll"),
            ("Mr. Birket Foster", "mr birket foster"),
            ("MISTER BIRKET FOSTER", "mr birket foster"),
            ("okay", "ok"),
            ("end. Start", "end start"),
            ("3,14", "3 14"),
            ("", ""),
            ("!!!", ""),
        ];
        for (input, expected) in table {
            assert_eq!(normalize(input), expected, "normalize({input:?})");
        }
    }

    #[test]
    fn spelled_and_written_forms_compare_equal() {
        let pairs = [
            ("Set a timer for 10 minutes.", "set a timer for ten minutes"),
            ("It costs twenty five dollars", "It costs $25"),
            ("in 1984", "in nineteen eighty-four"),
            ("the 21st century", "the twenty-first century"),
            ("100 people", "a hundred people"),
            ("What's the date today?", "whats the date today"),
        ];
        for (a, b) in pairs {
            assert_eq!(
                wer(a, b),
                0.0,
                "{a:?} vs {b:?}: {} / {}",
                normalize(a),
                normalize(b)
            );
        }
    }

    #[test]
    fn wer_table() {
        let table = [
            ("the cat sat", "the cat sat", 0.0),
            ("the cat sat", "the cat", 1.0 / 3.0),
            ("the cat sat", "the dog sat", 1.0 / 3.0),
            ("the cat sat", "the cat sat down", 1.0 / 3.0),
            ("the cat sat", "", 1.0),
            ("a b c d", "x y", 1.0),
            ("a", "x y z", 3.0),
            ("", "", 0.0),
            ("", "something", 1.0),
            ("HE COULD WAIT NO LONGER", "He could wait no longer.", 0.0),
        ];
        for (r, h, expected) in table {
            let got = wer(r, h);
            assert!((got - expected).abs() < 1e-12, "wer({r:?}, {h:?}) = {got}");
        }
    }

    #[test]
    fn error_breakdown() {
        let e = word_errors("and so my fellow americans", "and my yellow americans too");
        assert_eq!(
            e,
            WordErrors {
                substitutions: 1,
                deletions: 1,
                insertions: 1,
                reference_words: 5
            }
        );
        assert_eq!(e.errors(), 3);
        assert!((e.wer() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn jfk_reference_against_whisper_output() {
        let reference = "And so, my fellow Americans, ask not what your country can do for \
                         you, ask what you can do for your country.";
        let whisper = " And so my fellow Americans ask not what your country can do for you \
                       ask what you can do for your country.";
        assert_eq!(wer(reference, whisper), 0.0);
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let text = "nine hundred ninety nine billion nine hundred ninety nine million";
        assert_eq!(normalize(text), "999999000000");
        let many = "billion ".repeat(50);
        assert!(!normalize(&many).is_empty());
        let digits = "9".repeat(60);
        assert_eq!(normalize(&digits), digits);
    }
}
