//! Parser for Home Assistant's sentence template syntax.
//!
//! Syntax (see <https://developers.home-assistant.io/docs/voice/intent-recognition/template-sentence-syntax/>):
//! * `(a|b|c)` alternatives, nestable; `[x]` optional (`[a|b]` is an optional
//!   alternative);
//! * `(a;b)` permutation: `a b` or `b a`;
//! * `<rule>` expansion rule, `{list}` / `{list:slot}` list reference;
//! * anything else is text. Groups glued to text form one word:
//!   `timer[s]` is `timer` or `timers`.
//!
//! [`parse`] builds a character-level [`Expr`]; [`inline_rules`] replaces
//! `<rule>` references; [`to_node`] turns the result into a token-level
//! [`Node`] tree where every word is normalized like spoken input.

use super::normalize;

/// Character-level template syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// Literal text, spaces included.
    Text(String),
    /// Items in order.
    Seq(Vec<Expr>),
    /// One of the branches (a group; `[x]` is `Alt([x, Seq([])])`).
    Alt(Vec<Expr>),
    /// All items, in any order, separated by spaces.
    Perm(Vec<Expr>),
    /// `<name>`.
    Rule(String),
    /// `{list}` or `{list:slot}`.
    Slot { list: String, slot: String },
}

/// Token-level tree the matcher compiles.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// One normalized word.
    Word(String),
    /// Items in order.
    Seq(Vec<Node>),
    /// One of the branches.
    Alt(Vec<Node>),
    /// A list reference filling `slot`.
    Slot { list: String, slot: String },
}

/// Parses one template.
pub(crate) fn parse(template: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        chars: template.chars().collect(),
        pos: 0,
    };
    let expr = parser.alternatives(None)?;
    match parser.peek() {
        None => Ok(expr),
        Some(c) => Err(format!("unexpected '{c}' at column {}", parser.pos + 1)),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Branches separated by `|` or `;` up to `close` (not consumed).
    fn alternatives(&mut self, close: Option<char>) -> Result<Expr, String> {
        let mut items = vec![self.sequence()?];
        let mut separator = None;
        while let Some(c @ ('|' | ';')) = self.peek() {
            if separator.is_some_and(|s| s != c) {
                return Err(format!(
                    "'|' and ';' mixed in one group at column {}",
                    self.pos + 1
                ));
            }
            separator = Some(c);
            self.pos += 1;
            items.push(self.sequence()?);
        }
        match (self.peek(), close) {
            (Some(c), Some(close)) if c == close => {}
            (None, None) => {}
            (Some(c @ (')' | ']')), None) => {
                return Err(format!("unmatched '{c}' at column {}", self.pos + 1));
            }
            (None, Some(close)) => return Err(format!("missing '{close}'")),
            (Some(c), _) => return Err(format!("unexpected '{c}' at column {}", self.pos + 1)),
        }
        Ok(match separator {
            Some(';') => Expr::Perm(items),
            _ if items.len() == 1 && close.is_none() => items.remove(0),
            _ => Expr::Alt(items),
        })
    }

    /// Items up to `|`, `;`, `)`, `]` or the end.
    fn sequence(&mut self) -> Result<Expr, String> {
        let mut items = Vec::new();
        let mut text = String::new();
        while let Some(c) = self.peek() {
            match c {
                '|' | ';' | ')' | ']' => break,
                '(' | '[' => {
                    flush_text(&mut text, &mut items);
                    let start = self.pos;
                    self.pos += 1;
                    let close = if c == '(' { ')' } else { ']' };
                    let group = self
                        .alternatives(Some(close))
                        .map_err(|e| format!("{e} (group opened at column {})", start + 1))?;
                    self.pos += 1;
                    items.push(if c == '[' {
                        Expr::Alt(vec![group, Expr::Seq(Vec::new())])
                    } else {
                        group
                    });
                }
                '<' => {
                    flush_text(&mut text, &mut items);
                    let name = self.delimited('>')?;
                    items.push(Expr::Rule(name));
                }
                '{' => {
                    flush_text(&mut text, &mut items);
                    let body = self.delimited('}')?;
                    let (list, slot) = match body.split_once(':') {
                        Some((list, slot)) => (list.trim(), slot.trim()),
                        None => (body.trim(), body.trim()),
                    };
                    if list.is_empty() || slot.is_empty() {
                        return Err(format!("empty list reference {{{body}}}"));
                    }
                    items.push(Expr::Slot {
                        list: list.to_owned(),
                        slot: slot.to_owned(),
                    });
                }
                '>' | '}' => return Err(format!("unmatched '{c}' at column {}", self.pos + 1)),
                _ => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        flush_text(&mut text, &mut items);
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Seq(items)
        })
    }

    /// The text up to `close`, consuming both delimiters.
    fn delimited(&mut self, close: char) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == close {
                let name = out.trim();
                if name.is_empty() {
                    return Err(format!("empty reference at column {}", start + 1));
                }
                return Ok(name.to_owned());
            }
            if matches!(c, '(' | ')' | '[' | ']' | '<' | '{' | '|') {
                break;
            }
            out.push(c);
        }
        Err(format!(
            "missing '{close}' for reference opened at column {}",
            start + 1
        ))
    }
}

fn flush_text(text: &mut String, items: &mut Vec<Expr>) {
    if !text.is_empty() {
        items.push(Expr::Text(std::mem::take(text)));
    }
}

/// Replaces every `<rule>` with its definition, looked up through `lookup`.
pub(crate) fn inline_rules(
    expr: &Expr,
    lookup: &dyn Fn(&str) -> Option<Expr>,
    stack: &mut Vec<String>,
) -> Result<Expr, String> {
    Ok(match expr {
        Expr::Rule(name) => {
            if stack.contains(name) {
                return Err(format!(
                    "expansion rule <{name}> refers to itself (via {})",
                    stack.join(" → ")
                ));
            }
            let body = lookup(name).ok_or_else(|| format!("unknown expansion rule <{name}>"))?;
            stack.push(name.clone());
            let inlined = inline_rules(&body, lookup, stack)?;
            stack.pop();
            // A rule is a group of its own: `<a>|<b>` inside a sentence must
            // not split the sentence.
            Expr::Alt(vec![inlined])
        }
        Expr::Seq(items) => Expr::Seq(map_all(items, lookup, stack)?),
        Expr::Alt(items) => Expr::Alt(map_all(items, lookup, stack)?),
        Expr::Perm(items) => Expr::Perm(map_all(items, lookup, stack)?),
        Expr::Text(_) | Expr::Slot { .. } => expr.clone(),
    })
}

fn map_all(
    items: &[Expr],
    lookup: &dyn Fn(&str) -> Option<Expr>,
    stack: &mut Vec<String>,
) -> Result<Vec<Expr>, String> {
    items
        .iter()
        .map(|e| inline_rules(e, lookup, stack))
        .collect()
}

/// Most spellings one glued word (`timer[s]`, `[[of ](the|my)]`) may expand to.
const MAX_GLUED_EXPANSIONS: usize = 256;

/// Converts a rule-free expression into a token-level tree.
pub(crate) fn to_node(expr: &Expr) -> Result<Node, String> {
    Ok(simplify(match expr {
        Expr::Text(text) => words_node(text),
        Expr::Slot { list, slot } => Node::Slot {
            list: list.clone(),
            slot: slot.clone(),
        },
        Expr::Alt(items) => Node::Alt(items.iter().map(to_node).collect::<Result<_, _>>()?),
        Expr::Perm(items) => to_node(&expand_permutation(items))?,
        Expr::Rule(name) => return Err(format!("expansion rule <{name}> was not expanded")),
        Expr::Seq(items) => {
            let mut nodes = Vec::new();
            for unit in glued_units(items) {
                nodes.push(match unit.as_slice() {
                    [single] => to_node(single)?,
                    _ => expand_glued(&unit)?,
                });
            }
            Node::Seq(nodes)
        }
    }))
}

fn words_node(text: &str) -> Node {
    let mut words: Vec<Node> = normalize::words(text).into_iter().map(Node::Word).collect();
    if words.len() == 1 {
        words.remove(0)
    } else {
        Node::Seq(words)
    }
}

/// `(a;b;c)` as the alternatives of every order, items separated by spaces.
fn expand_permutation(items: &[Expr]) -> Expr {
    fn permute(rest: &mut Vec<Expr>, prefix: &mut Vec<Expr>, out: &mut Vec<Expr>) {
        if rest.is_empty() {
            let mut seq = Vec::new();
            for (i, item) in prefix.iter().enumerate() {
                if i > 0 {
                    seq.push(Expr::Text(" ".into()));
                }
                seq.push(item.clone());
            }
            out.push(Expr::Seq(seq));
            return;
        }
        for i in 0..rest.len() {
            let item = rest.remove(i);
            prefix.push(item.clone());
            permute(rest, prefix, out);
            prefix.pop();
            rest.insert(i, item);
        }
    }
    let mut out = Vec::new();
    permute(&mut items.to_vec(), &mut Vec::new(), &mut out);
    Expr::Alt(out)
}

/// Splits a sequence at whitespace into words; a word may hold several items
/// when groups are glued to text or to each other (`timer[s]`).
fn glued_units(items: &[Expr]) -> Vec<Vec<Expr>> {
    let mut units = Vec::new();
    let mut current = Vec::new();
    let close = |current: &mut Vec<Expr>, units: &mut Vec<Vec<Expr>>| {
        if !current.is_empty() {
            units.push(std::mem::take(current));
        }
    };
    for item in items {
        match item {
            Expr::Text(text) => {
                if text.starts_with(char::is_whitespace) {
                    close(&mut current, &mut units);
                }
                for (i, word) in text.split_whitespace().enumerate() {
                    if i > 0 {
                        close(&mut current, &mut units);
                    }
                    current.push(Expr::Text(word.to_owned()));
                }
                if text.ends_with(char::is_whitespace) {
                    close(&mut current, &mut units);
                }
            }
            other => current.push(other.clone()),
        }
    }
    close(&mut current, &mut units);
    units
}

/// A piece of one spelled-out glued word.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Slot { list: String, slot: String },
}

/// Expands glued items into the alternatives of all their spellings.
fn expand_glued(unit: &[Expr]) -> Result<Node, String> {
    let spellings = spell(&Expr::Seq(unit.to_vec()))?;
    let mut branches: Vec<Node> = Vec::new();
    for pieces in spellings {
        let mut seq = Vec::new();
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Slot { list, slot } => {
                    seq.push(words_node(&std::mem::take(&mut text)));
                    seq.push(Node::Slot { list, slot });
                }
            }
        }
        seq.push(words_node(&text));
        let node = simplify(Node::Seq(seq));
        if !branches.contains(&node) {
            branches.push(node);
        }
    }
    Ok(Node::Alt(branches))
}

/// Every spelling of `expr` as text and slot pieces.
fn spell(expr: &Expr) -> Result<Vec<Vec<Piece>>, String> {
    let too_many = || format!("a glued word expands to more than {MAX_GLUED_EXPANSIONS} spellings");
    Ok(match expr {
        Expr::Text(t) => vec![vec![Piece::Text(t.clone())]],
        Expr::Slot { list, slot } => vec![vec![Piece::Slot {
            list: list.clone(),
            slot: slot.clone(),
        }]],
        Expr::Rule(name) => return Err(format!("expansion rule <{name}> was not expanded")),
        Expr::Perm(items) => spell(&expand_permutation(items))?,
        Expr::Alt(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(spell(item)?);
                if out.len() > MAX_GLUED_EXPANSIONS {
                    return Err(too_many());
                }
            }
            out
        }
        Expr::Seq(items) => {
            let mut out: Vec<Vec<Piece>> = vec![Vec::new()];
            for item in items {
                let tails = spell(item)?;
                if out.len() * tails.len() > MAX_GLUED_EXPANSIONS {
                    return Err(too_many());
                }
                out = out
                    .iter()
                    .flat_map(|head| {
                        tails.iter().map(move |tail| {
                            let mut v = head.clone();
                            v.extend(tail.iter().cloned());
                            v
                        })
                    })
                    .collect();
            }
            out
        }
    })
}

/// Flattens nested sequences and drops one-item wrappers.
fn simplify(node: Node) -> Node {
    match node {
        Node::Seq(items) => {
            let mut flat = Vec::new();
            for item in items {
                match simplify(item) {
                    Node::Seq(inner) => flat.extend(inner),
                    other => flat.push(other),
                }
            }
            if flat.len() == 1 {
                flat.remove(0)
            } else {
                Node::Seq(flat)
            }
        }
        Node::Alt(items) => {
            let mut branches: Vec<Node> = Vec::new();
            for item in items {
                let item = simplify(item);
                if !branches.contains(&item) {
                    branches.push(item);
                }
            }
            if branches.len() == 1 {
                branches.remove(0)
            } else {
                Node::Alt(branches)
            }
        }
        other => other,
    }
}

/// Every spelling of a slot-free node as word sequences (list values).
pub(crate) fn word_sequences(node: &Node, limit: usize) -> Result<Vec<Vec<String>>, String> {
    Ok(match node {
        Node::Word(w) => vec![vec![w.clone()]],
        Node::Slot { list, .. } => {
            return Err(format!("list reference {{{list}}} inside a list value"))
        }
        Node::Alt(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(word_sequences(item, limit)?);
            }
            out
        }
        Node::Seq(items) => {
            let mut out = vec![Vec::new()];
            for item in items {
                let tails = word_sequences(item, limit)?;
                if out.len() * tails.len() > limit {
                    return Err(format!("value expands to more than {limit} spellings"));
                }
                out = out
                    .iter()
                    .flat_map(|head: &Vec<String>| {
                        tails
                            .iter()
                            .map(move |tail| [head.as_slice(), tail.as_slice()].concat())
                    })
                    .collect();
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(template: &str) -> Node {
        let expr = parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        to_node(&expr).unwrap_or_else(|e| panic!("{template}: {e}"))
    }

    fn spellings(template: &str) -> Vec<String> {
        let mut out: Vec<String> = word_sequences(&compile(template), 1000)
            .unwrap_or_else(|e| panic!("{template}: {e}"))
            .into_iter()
            .map(|w| w.join(" "))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn expands_syntax() {
        let cases: &[(&str, &[&str])] = &[
            ("what time is it", &["what time is it"]),
            ("timer[s] status", &["timer status", "timers status"]),
            ("(a|b) c", &["a c", "b c"]),
            ("[a|the] x", &["a x", "the x", "x"]),
            (
                "all [[of ](the|my)] timers",
                &[
                    "all my timers",
                    "all of my timers",
                    "all of the timers",
                    "all the timers",
                    "all timers",
                ],
            ),
            ("(off;x) y", &["off x y", "x off y"]),
            ("What's today's date?", &["whats todays date"]),
            ("((a|b)[c]|d)", &["a", "ac", "b", "bc", "d"]),
            ("up-to-date", &["up to date"]),
        ];
        for (template, expected) in cases {
            assert_eq!(spellings(template), *expected, "{template}");
        }
    }

    #[test]
    fn slots_and_rules() {
        assert_eq!(
            compile("{timer_minutes:minutes} minute[s]"),
            Node::Seq(vec![
                Node::Slot {
                    list: "timer_minutes".into(),
                    slot: "minutes".into()
                },
                Node::Alt(vec![
                    Node::Word("minutes".into()),
                    Node::Word("minute".into())
                ]),
            ])
        );
        let rule = parse("(a|b)").unwrap();
        let lookup = |name: &str| (name == "r").then(|| rule.clone());
        let inlined = inline_rules(&parse("x <r>|y").unwrap(), &lookup, &mut Vec::new()).unwrap();
        let mut got: Vec<String> = word_sequences(&to_node(&inlined).unwrap(), 10)
            .unwrap()
            .into_iter()
            .map(|w| w.join(" "))
            .collect();
        got.sort();
        assert_eq!(got, ["x a", "x b", "y"]);
    }

    #[test]
    fn reports_errors() {
        for bad in ["(a|b", "a]", "[a", "<rule", "{list", "{}", "(a|b;c)", "a)"] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let self_ref = |_: &str| Some(Expr::Rule("loop".into()));
        assert!(inline_rules(&Expr::Rule("loop".into()), &self_ref, &mut Vec::new()).is_err());
        assert!(inline_rules(&Expr::Rule("nope".into()), &|_| None, &mut Vec::new()).is_err());
    }
}
