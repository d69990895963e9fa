//! Compiled templates and the backtracking matcher.
//!
//! Each template becomes a small program over interned words (a token-level
//! NFA without loops): `Word` consumes one word, `Fork` tries alternatives,
//! `List` consumes a list value, a number or a wildcard span. The matcher
//! walks every path depth-first, keeps the best complete match and prunes
//! paths that cannot beat it. Before running a program, a template is
//! skipped unless the input contains every word the template always needs.
//!
//! The best match is the one whose wildcards cover the fewest words, then
//! the one that skipped the fewest skip words ("please"), then the earliest
//! template. So "add apples to my shopping list" goes to the shopping list
//! (every word literal) rather than a to-do list named "shopping".

use std::collections::HashMap;

use super::numbers;
use super::slots::SlotValue;
use super::template::Node;

/// An interned normalized word.
pub(crate) type Sym = u32;

/// The symbol of input words no template contains.
pub(crate) const UNKNOWN: Sym = u32::MAX;

/// Word interner shared by all templates and lists of a router.
#[derive(Debug, Default)]
pub(crate) struct Vocab {
    map: HashMap<String, Sym>,
}

impl Vocab {
    pub(crate) fn intern(&mut self, word: &str) -> Sym {
        let next = self.map.len() as Sym;
        *self.map.entry(word.to_owned()).or_insert(next)
    }

    pub(crate) fn get(&self, word: &str) -> Sym {
        self.map.get(word).copied().unwrap_or(UNKNOWN)
    }
}

/// A compiled slot list.
#[derive(Debug)]
pub(crate) enum List {
    /// Fixed values; each spelling is a word sequence.
    Values {
        entries: Vec<(Vec<Sym>, SlotValue)>,
        by_first: HashMap<Sym, Vec<usize>>,
    },
    /// Numbers from `from` to `to` in steps of `step`, multiplied on output.
    Range {
        from: i64,
        to: i64,
        step: i64,
        multiplier: Option<f64>,
    },
    /// Any non-empty run of words.
    Wildcard,
}

impl List {
    /// A values list from `(spelling, value)` pairs.
    pub(crate) fn values(entries: Vec<(Vec<Sym>, SlotValue)>) -> List {
        let mut by_first: HashMap<Sym, Vec<usize>> = HashMap::new();
        for (i, (words, _)) in entries.iter().enumerate() {
            if let Some(&first) = words.first() {
                by_first.entry(first).or_default().push(i);
            }
        }
        List::Values { entries, by_first }
    }

    fn range_value(&self, value: i64) -> Option<SlotValue> {
        let List::Range {
            from,
            to,
            step,
            multiplier,
        } = *self
        else {
            return None;
        };
        if value < from || value > to || (value - from) % step.max(1) != 0 {
            return None;
        }
        Some(match multiplier {
            None => SlotValue::Int(value),
            Some(m) => {
                let scaled = value as f64 * m;
                if scaled.fract() == 0.0 && scaled.abs() < 9e15 {
                    SlotValue::Int(scaled as i64)
                } else {
                    SlotValue::Float(scaled)
                }
            }
        })
    }
}

#[derive(Debug, Clone)]
enum Inst {
    Word(Sym),
    Fork(Box<[usize]>),
    Jump(usize),
    List { list: usize, slot: usize },
    Match,
}

/// One compiled template.
#[derive(Debug)]
pub(crate) struct Program {
    insts: Vec<Inst>,
    /// Words every spelling of the template contains (sorted).
    required: Vec<Sym>,
}

/// What the compiler needs to resolve names.
pub(crate) struct CompileEnv<'a> {
    pub vocab: &'a mut Vocab,
    /// List name → list index.
    pub lists: &'a HashMap<String, usize>,
    /// Slot names, interned (index = slot id).
    pub slot_names: &'a mut Vec<String>,
}

impl Program {
    /// Compiles a token-level tree.
    pub(crate) fn compile(node: &Node, env: &mut CompileEnv<'_>) -> Result<Program, String> {
        let mut insts = Vec::new();
        emit(node, env, &mut insts)?;
        insts.push(Inst::Match);
        let mut required = required_words(node, env.vocab);
        required.sort_unstable();
        required.dedup();
        Ok(Program { insts, required })
    }

    /// Whether the (sorted) input words contain every required word.
    pub(crate) fn may_match(&self, sorted_input: &[Sym]) -> bool {
        self.required
            .iter()
            .all(|w| sorted_input.binary_search(w).is_ok())
    }
}

fn emit(node: &Node, env: &mut CompileEnv<'_>, out: &mut Vec<Inst>) -> Result<(), String> {
    match node {
        Node::Word(w) => out.push(Inst::Word(env.vocab.intern(w))),
        Node::Seq(items) => {
            for item in items {
                emit(item, env, out)?;
            }
        }
        Node::Alt(branches) => {
            let fork = out.len();
            out.push(Inst::Fork(Box::new([])));
            let mut starts = Vec::with_capacity(branches.len());
            let mut jumps = Vec::with_capacity(branches.len());
            for branch in branches {
                starts.push(out.len());
                emit(branch, env, out)?;
                jumps.push(out.len());
                out.push(Inst::Jump(0));
            }
            let end = out.len();
            for j in jumps {
                out[j] = Inst::Jump(end);
            }
            out[fork] = Inst::Fork(starts.into_boxed_slice());
        }
        Node::Slot { list, slot } => {
            let list = *env
                .lists
                .get(list)
                .ok_or_else(|| format!("unknown list {{{list}}}"))?;
            let slot = match env.slot_names.iter().position(|s| s == slot) {
                Some(i) => i,
                None => {
                    env.slot_names.push(slot.clone());
                    env.slot_names.len() - 1
                }
            };
            out.push(Inst::List { list, slot });
        }
    }
    Ok(())
}

/// Words present in every spelling of `node`.
fn required_words(node: &Node, vocab: &mut Vocab) -> Vec<Sym> {
    match node {
        Node::Word(w) => vec![vocab.intern(w)],
        Node::Slot { .. } => Vec::new(),
        Node::Seq(items) => items
            .iter()
            .flat_map(|i| required_words(i, vocab))
            .collect(),
        Node::Alt(branches) => {
            let mut iter = branches.iter();
            let Some(first) = iter.next() else {
                return Vec::new();
            };
            let mut common = required_words(first, vocab);
            for branch in iter {
                let words = required_words(branch, vocab);
                common.retain(|w| words.contains(w));
            }
            common
        }
    }
}

/// A sentence prepared for matching.
pub(crate) struct Input<'t> {
    /// Interned words ([`UNKNOWN`] for words no template knows).
    pub syms: Vec<Sym>,
    /// Normalized words (for numbers).
    pub words: Vec<&'t str>,
    /// `syms`, sorted and deduplicated.
    pub sorted: Vec<Sym>,
}

impl<'t> Input<'t> {
    pub(crate) fn new(words: Vec<&'t str>, vocab: &Vocab) -> Self {
        let syms: Vec<Sym> = words.iter().map(|w| vocab.get(w)).collect();
        let mut sorted = syms.clone();
        sorted.sort_unstable();
        sorted.dedup();
        Input {
            syms,
            words,
            sorted,
        }
    }
}

/// A slot filled during matching; turned into a [`SlotValue`] at the end.
#[derive(Debug, Clone)]
pub(crate) enum Captured {
    /// Entry `entry` of values list `list`.
    Entry { list: usize, entry: usize },
    /// A number read for range list `list`.
    Number { list: usize, value: i64 },
    /// Input words `start..end` (a wildcard).
    Span { start: usize, end: usize },
}

/// A complete match of one template.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// (words covered by wildcards, skip words dropped): lower is better.
    pub score: (usize, usize),
    /// Index of the template that matched.
    pub template: usize,
    /// Slot id and value, in sentence order.
    pub captures: Vec<(usize, Captured)>,
}

/// Depth-first search of one input over many programs.
pub(crate) struct Search<'a, 't> {
    lists: &'a [List],
    skip_words: &'a [Vec<Sym>],
    input: &'a Input<'t>,
    captures: Vec<(usize, Captured)>,
    template: usize,
    /// Best match so far, over all templates tried.
    pub best: Option<Found>,
}

impl<'a, 't> Search<'a, 't> {
    pub(crate) fn new(lists: &'a [List], skip_words: &'a [Vec<Sym>], input: &'a Input<'t>) -> Self {
        Search {
            lists,
            skip_words,
            input,
            captures: Vec::new(),
            template: 0,
            best: None,
        }
    }

    /// Tries template number `template`; keeps it if it beats the best so far.
    pub(crate) fn run(&mut self, template: usize, program: &Program) {
        if !program.may_match(&self.input.sorted) {
            return;
        }
        self.template = template;
        self.captures.clear();
        self.step(&program.insts, 0, 0, (0, 0));
    }

    /// The value of a capture.
    pub(crate) fn value(lists: &[List], captured: &Captured) -> Option<SlotValue> {
        match *captured {
            Captured::Entry { list, entry } => match lists.get(list)? {
                List::Values { entries, .. } => entries.get(entry).map(|(_, v)| v.clone()),
                _ => None,
            },
            Captured::Number { list, value } => lists.get(list)?.range_value(value),
            Captured::Span { .. } => None,
        }
    }

    fn hopeless(&self, score: (usize, usize)) -> bool {
        self.best.as_ref().is_some_and(|b| score >= b.score)
    }

    /// Also tries dropping skip words ("please", "can you") at `pos`.
    fn skip_and_step(&mut self, insts: &[Inst], pc: usize, pos: usize, score: (usize, usize)) {
        let (input, skip_words) = (self.input, self.skip_words);
        let syms = &input.syms[pos..];
        for phrase in skip_words {
            if syms.starts_with(phrase) {
                let len = phrase.len();
                self.step(insts, pc, pos + len, (score.0, score.1 + len));
            }
        }
    }

    fn step(&mut self, insts: &[Inst], mut pc: usize, mut pos: usize, score: (usize, usize)) {
        if self.hopeless(score) {
            return;
        }
        let n = self.input.syms.len();
        loop {
            match &insts[pc] {
                Inst::Word(sym) => {
                    self.skip_and_step(insts, pc, pos, score);
                    if pos < n && self.input.syms[pos] == *sym {
                        pc += 1;
                        pos += 1;
                    } else {
                        return;
                    }
                }
                Inst::Jump(target) => pc = *target,
                Inst::Fork(targets) => {
                    for &target in targets.iter() {
                        self.step(insts, target, pos, score);
                    }
                    return;
                }
                Inst::List { list, slot } => {
                    self.list(insts, pc, pos, score, *list, *slot);
                    return;
                }
                Inst::Match => {
                    self.skip_and_step(insts, pc, pos, score);
                    if pos == n && !self.hopeless(score) {
                        self.best = Some(Found {
                            score,
                            template: self.template,
                            captures: self.captures.clone(),
                        });
                    }
                    return;
                }
            }
        }
    }

    fn with_capture(
        &mut self,
        insts: &[Inst],
        next: (usize, usize),
        score: (usize, usize),
        capture: (usize, Captured),
    ) {
        self.captures.push(capture);
        self.step(insts, next.0, next.1, score);
        self.captures.pop();
    }

    fn list(
        &mut self,
        insts: &[Inst],
        pc: usize,
        pos: usize,
        score: (usize, usize),
        list: usize,
        slot: usize,
    ) {
        let (input, lists) = (self.input, self.lists);
        let n = input.syms.len();
        let Some(kind) = lists.get(list) else { return };
        match kind {
            List::Wildcard => {
                for end in pos + 1..=n {
                    let score = (score.0 + (end - pos), score.1);
                    if self.hopeless(score) {
                        break;
                    }
                    let capture = (slot, Captured::Span { start: pos, end });
                    self.with_capture(insts, (pc + 1, end), score, capture);
                }
            }
            List::Values { entries, by_first } => {
                self.skip_and_step(insts, pc, pos, score);
                let Some(candidates) = input.syms.get(pos).and_then(|s| by_first.get(s)) else {
                    return;
                };
                for &entry in candidates {
                    let words = &entries[entry].0;
                    if input.syms[pos..].starts_with(words) {
                        let capture = (slot, Captured::Entry { list, entry });
                        self.with_capture(insts, (pc + 1, pos + words.len()), score, capture);
                    }
                }
            }
            List::Range { .. } => {
                self.skip_and_step(insts, pc, pos, score);
                let readings = numbers::readings(&input.words[pos..]);
                for &(len, value) in readings.as_slice() {
                    if kind.range_value(value).is_some() {
                        let capture = (slot, Captured::Number { list, value });
                        self.with_capture(insts, (pc + 1, pos + len), score, capture);
                    }
                }
            }
        }
    }
}
