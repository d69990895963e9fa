//! Cardinal numbers written as digits or spoken as English words.
//!
//! Range lists (`{timer_minutes}`, `{volume}`, ...) accept `10`, `ten`,
//! `twenty five` and `twenty-five` (the hyphen is split off by
//! normalization). The matcher asks for every number that *starts* at a
//! position, because `twenty five minutes` could be read as `twenty` followed
//! by `five minutes`; the template decides which reading fits.
//!
//! Supported: digit strings, `zero` to `nineteen`, tens with an optional unit
//! (`ninety nine`), hundreds (`one hundred [and] five`, `a hundred`,
//! `twelve hundred`) and thousands (`two thousand [and] twenty four`,
//! `a thousand`). Fractions such as `and a half` are template-level: Home
//! Assistant's timer rules spell them out (`{timer_minutes} and a {timer_half}`).

/// Most readings that can start at one position (`one hundred and twenty
/// five thousand ...` yields fewer than this).
const MAX_READINGS: usize = 8;

/// The readings of a number that start at the first token: `(tokens consumed,
/// value)` pairs, shortest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readings {
    items: [(usize, i64); MAX_READINGS],
    len: usize,
}

impl Readings {
    fn push(&mut self, consumed: usize, value: i64) {
        if self.len < MAX_READINGS && !self.as_slice().contains(&(consumed, value)) {
            self.items[self.len] = (consumed, value);
            self.len += 1;
        }
    }

    /// The readings found.
    pub(crate) fn as_slice(&self) -> &[(usize, i64)] {
        &self.items[..self.len]
    }
}

fn unit(word: &str) -> Option<i64> {
    Some(match word {
        "zero" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

fn teen(word: &str) -> Option<i64> {
    Some(match word {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

fn tens(word: &str) -> Option<i64> {
    Some(match word {
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

fn digits(word: &str) -> Option<i64> {
    if word.is_empty() || word.len() > 15 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// Numbers below 100 spelled in words, or any digit string.
fn below_hundred(words: &[&str], found: &mut dyn FnMut(usize, i64)) {
    let Some(&first) = words.first() else { return };
    if let Some(value) = digits(first)
        .or_else(|| unit(first))
        .or_else(|| teen(first))
    {
        found(1, value);
    } else if let Some(value) = tens(first) {
        found(1, value);
        if let Some(u) = words.get(1).and_then(|w| unit(w)).filter(|&u| u > 0) {
            found(2, value + u);
        }
    }
}

/// Numbers below 1000 (and "twelve hundred" style up to 9999).
fn below_thousand(words: &[&str], found: &mut dyn FnMut(usize, i64)) {
    below_hundred(words, found);
    let Some(&first) = words.first() else { return };
    let multiplier = match first {
        "a" | "an" => Some(1),
        w => unit(w).filter(|&u| u > 0).or_else(|| teen(w)),
    };
    let (Some(multiplier), Some(&"hundred")) = (multiplier, words.get(1)) else {
        return;
    };
    let base = multiplier * 100;
    found(2, base);
    let (skip, rest) = match words.get(2) {
        Some(&"and") => (3, &words[3.min(words.len())..]),
        _ => (2, &words[2.min(words.len())..]),
    };
    below_hundred(rest, &mut |n, v| {
        if v < 100 && !rest[0].bytes().all(|b| b.is_ascii_digit()) {
            found(skip + n, base + v);
        }
    });
}

/// Calls `found(consumed, value)` for every number starting at `words[0]`.
fn any_number(words: &[&str], found: &mut dyn FnMut(usize, i64)) {
    let thousands = |consumed: usize, value: i64, found: &mut dyn FnMut(usize, i64)| {
        if words.get(consumed) != Some(&"thousand") {
            return;
        }
        let base = value * 1000;
        found(consumed + 1, base);
        let mut start = consumed + 1;
        if words.get(start) == Some(&"and") {
            start += 1;
        }
        let rest = &words[start.min(words.len())..];
        below_thousand(rest, &mut |n, v| {
            if v < 1000 && !rest[0].bytes().all(|b| b.is_ascii_digit()) {
                found(start + n, base + v);
            }
        });
    };
    if matches!(words.first(), Some(&"a") | Some(&"an")) {
        thousands(1, 1, found);
    }
    below_thousand(words, &mut |n, v| {
        found(n, v);
        if v > 0 && v < 1000 && !words[0].bytes().all(|b| b.is_ascii_digit()) {
            thousands(n, v, found);
        }
    });
}

/// Every way a number can be read at the start of `words` (normalized
/// tokens): `twenty five minutes` gives `(1, 20)` and `(2, 25)`.
pub(crate) fn readings(words: &[&str]) -> Readings {
    let mut readings = Readings::default();
    any_number(words, &mut |n, v| readings.push(n, v));
    readings.items[..readings.len].sort_by_key(|&(n, _)| n);
    readings
}

/// Parses a whole phrase as one number: `"twenty-five"` → 25, `"10"` → 10.
///
/// Returns `None` unless every word of the phrase is part of the number.
pub fn parse_number(text: &str) -> Option<i64> {
    let words = super::normalize::words(text);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    readings(&words)
        .as_slice()
        .iter()
        .find(|&&(n, _)| n == words.len())
        .map(|&(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_phrases() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("10", Some(10)),
            ("100", Some(100)),
            ("zero", Some(0)),
            ("one", Some(1)),
            ("ten", Some(10)),
            ("nineteen", Some(19)),
            ("twenty", Some(20)),
            ("twenty five", Some(25)),
            ("twenty-five", Some(25)),
            ("Twenty-Five", Some(25)),
            ("ninety", Some(90)),
            ("ninety nine", Some(99)),
            ("one hundred", Some(100)),
            ("a hundred", Some(100)),
            ("a hundred and five", Some(105)),
            ("one hundred twenty three", Some(123)),
            ("twelve hundred", Some(1200)),
            ("a thousand", Some(1000)),
            ("two thousand and twenty four", Some(2024)),
            ("three thousand four hundred and fifty six", Some(3456)),
            ("1,000", Some(1000)),
            ("", None),
            ("a", None),
            ("an", None),
            ("hundred", None),
            ("five five", None),
            ("twenty twenty", None),
            ("twenty ten", None),
            ("twenty zero", None),
            ("one hundred and", None),
            ("1/2", None),
            ("2.5", None),
            ("half", None),
            ("minutes", None),
            ("ten minutes", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_number(text), expected, "{text:?}");
        }
    }

    #[test]
    fn readings_at_a_position() {
        type Case<'a> = (&'a [&'a str], &'a [(usize, i64)]);
        let cases: &[Case] = &[
            (&["twenty", "five", "minutes"], &[(1, 20), (2, 25)]),
            (&["5", "minutes"], &[(1, 5)]),
            (
                &["one", "hundred", "and", "five"],
                &[(1, 1), (2, 100), (4, 105)],
            ),
            (&["a", "minute"], &[]),
            (&["and", "five"], &[]),
            (&["ninety", "seconds"], &[(1, 90)]),
        ];
        for &(words, expected) in cases {
            assert_eq!(readings(words).as_slice(), expected, "{words:?}");
        }
    }
}
