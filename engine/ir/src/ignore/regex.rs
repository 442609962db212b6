//! A small implementation of the part of Go's `regexp` syntax that
//! patternmatcher's generated expressions can contain.
//!
//! patternmatcher translates a pattern into a Go regular expression but
//! passes `[`, `]`, `^` and backslash escapes through unchanged, so user
//! input reaches Go's regexp parser: `[...]` are Go character classes
//! (ranges, `[:alpha:]`, `\d`, negation with `^`), `\b` is a word boundary,
//! `\Q...\E` quotes, and so on. Reproducing the matcher exactly therefore
//! means parsing Go regexp syntax. Supported: literals, `.`, `^`, `$`,
//! classes, groups, `|`, `*`, `+`, `?` (and their lazy forms), the escapes
//! Go accepts, `\A`, `\z`, `\b`, `\B`, `\Q...\E`, the Perl classes and
//! `{n}`, `{n,}`, `{n,m}` repetition. Not supported (reported as errors):
//! `\p{...}` Unicode classes and `(?flags)` — the latter cannot occur in
//! generated expressions, as patternmatcher escapes `(`.
//!
//! Matching is a Thompson NFA simulation: linear in the text for a given
//! expression, with no backtracking.

const MAX_NESTING: usize = 1000;

/// Largest program accepted. Go rejects very large expressions too ("expression
/// too large"), with a different measure; only absurd patterns (many `{1000}`
/// repetitions) come near either limit.
const MAX_PROGRAM: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    BeginText,
    EndText,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Empty,
    Lit(u32),
    /// sorted, non-overlapping inclusive ranges
    Class(Vec<(u32, u32)>),
    AnyNotNl,
    Look(Look),
    Concat(Vec<Node>),
    Alternate(Vec<Node>),
    /// `min` to `max` (`None`: unbounded) repetitions
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inst {
    Char(u32),
    Class(usize),
    AnyNotNl,
    Look(Look),
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regex {
    prog: Vec<Inst>,
    classes: Vec<Vec<(u32, u32)>>,
    /// For small programs without word-boundary tests: the epsilon closure
    /// of every instruction as a bit set, for each combination of "at the
    /// start" and "at the end" of the text (see [`Regex::variant`]).
    closures: Option<Vec<[u128; 4]>>,
}

/// One level of grouping while parsing: finished alternatives plus the
/// concatenation being built.
#[derive(Default)]
struct Group {
    alternatives: Vec<Node>,
    concat: Vec<Node>,
}

impl Group {
    fn finish(mut self) -> Node {
        let last = concat_node(std::mem::take(&mut self.concat));
        if self.alternatives.is_empty() {
            return last;
        }
        self.alternatives.push(last);
        Node::Alternate(self.alternatives)
    }
}

fn concat_node(mut items: Vec<Node>) -> Node {
    match items.len() {
        0 => Node::Empty,
        1 => items.pop().unwrap_or(Node::Empty),
        _ => Node::Concat(items),
    }
}

struct Parser {
    t: Vec<char>,
    i: usize,
}

/// Character set of `\d`, `\s`, `\w` (ASCII only, as in Go).
fn perl_class(c: char) -> Option<(Vec<(u32, u32)>, bool)> {
    let digit = vec![(0x30, 0x39)];
    let space = vec![(0x9, 0xA), (0xC, 0xD), (0x20, 0x20)];
    let word = vec![(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
    Some(match c {
        'd' => (digit, false),
        'D' => (digit, true),
        's' => (space, false),
        'S' => (space, true),
        'w' => (word, false),
        'W' => (word, true),
        _ => return None,
    })
}

/// POSIX `[:name:]` classes (ASCII only, as in Go).
fn posix_class(name: &str) -> Option<(Vec<(u32, u32)>, bool)> {
    let (negated, name) = match name.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let ranges: Vec<(u32, u32)> = match name {
        "alnum" => vec![(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha" => vec![(0x41, 0x5A), (0x61, 0x7A)],
        "ascii" => vec![(0x0, 0x7F)],
        "blank" => vec![(0x9, 0x9), (0x20, 0x20)],
        "cntrl" => vec![(0x0, 0x1F), (0x7F, 0x7F)],
        "digit" => vec![(0x30, 0x39)],
        "graph" => vec![(0x21, 0x7E)],
        "lower" => vec![(0x61, 0x7A)],
        "print" => vec![(0x20, 0x7E)],
        "punct" => vec![(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space" => vec![(0x9, 0xD), (0x20, 0x20)],
        "upper" => vec![(0x41, 0x5A)],
        "word" => vec![(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
        "xdigit" => vec![(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some((ranges, negated))
}

/// Sort and merge ranges.
fn normalize(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn negate(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut next = 0u32;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi.saturating_add(1);
    }
    if next <= 0x10FFFF {
        out.push((next, 0x10FFFF));
    }
    out
}

fn add_group(class: &mut Vec<(u32, u32)>, ranges: Vec<(u32, u32)>, negated: bool) {
    if negated {
        class.extend(negate(&normalize(ranges)));
    } else {
        class.extend(ranges);
    }
}

fn unhex(c: char) -> Option<u32> {
    c.to_digit(16)
}

impl Parser {
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.t.get(self.i + offset).copied()
    }

    fn parse(mut self) -> Result<Node, String> {
        let mut stack: Vec<Group> = vec![Group::default()];
        let mut last_was_repeat = false;
        while let Some(c) = self.peek_at(0) {
            let mut repeat = false;
            match c {
                '(' => {
                    if self.peek_at(1) == Some('?') {
                        return Err("unsupported perl flags".to_string());
                    }
                    if stack.len() > MAX_NESTING {
                        return Err("expression nests too deeply".to_string());
                    }
                    stack.push(Group::default());
                    self.i += 1;
                }
                '|' => {
                    let Some(top) = stack.last_mut() else {
                        return Err("internal error".to_string());
                    };
                    let done = concat_node(std::mem::take(&mut top.concat));
                    top.alternatives.push(done);
                    self.i += 1;
                }
                ')' => {
                    if stack.len() < 2 {
                        return Err("unexpected )".to_string());
                    }
                    let Some(group) = stack.pop() else {
                        return Err("internal error".to_string());
                    };
                    let node = group.finish();
                    push(&mut stack, node)?;
                    self.i += 1;
                }
                '^' => {
                    push(&mut stack, Node::Look(Look::BeginText))?;
                    self.i += 1;
                }
                '$' => {
                    push(&mut stack, Node::Look(Look::EndText))?;
                    self.i += 1;
                }
                '.' => {
                    push(&mut stack, Node::AnyNotNl)?;
                    self.i += 1;
                }
                '[' => {
                    let class = self.class()?;
                    push(&mut stack, Node::Class(class))?;
                }
                '*' | '+' | '?' | '{' => {
                    let (min, max) = match c {
                        '*' => (0, None),
                        '+' => (1, None),
                        '?' => (0, Some(1)),
                        _ => match self.counted_repeat() {
                            Some(bounds) => bounds?,
                            None => {
                                // not a valid `{n,m}`: a literal brace
                                push(&mut stack, Node::Lit(u32::from('{')))?;
                                self.i += 1;
                                last_was_repeat = false;
                                continue;
                            }
                        },
                    };
                    if c != '{' {
                        self.i += 1;
                    }
                    if self.peek_at(0) == Some('?') {
                        self.i += 1; // lazy: same language
                    }
                    if last_was_repeat {
                        return Err("invalid nested repetition operator".to_string());
                    }
                    let Some(top) = stack.last_mut() else {
                        return Err("internal error".to_string());
                    };
                    let Some(operand) = top.concat.pop() else {
                        return Err("missing argument to repetition operator".to_string());
                    };
                    top.concat.push(Node::Repeat(Box::new(operand), min, max));
                    repeat = true;
                }
                '\\' => self.escape_at_top(&mut stack)?,
                other => {
                    push(&mut stack, Node::Lit(other as u32))?;
                    self.i += 1;
                }
            }
            last_was_repeat = repeat;
        }
        if stack.len() != 1 {
            return Err("missing closing )".to_string());
        }
        match stack.pop() {
            Some(group) => Ok(group.finish()),
            None => Err("internal error".to_string()),
        }
    }

    /// Go's `parseRepeat` at a `{`: `None` if the text is not a repetition
    /// (then the brace is literal), an error if its bounds are invalid;
    /// otherwise consumes it.
    fn counted_repeat(&mut self) -> Option<Result<(u32, Option<u32>), String>> {
        let mut j = self.i + 1;
        let min = self.int_at(&mut j)?;
        let max = match self.t.get(j) {
            Some(',') => {
                j += 1;
                match self.t.get(j)? {
                    '}' => None,
                    _ => Some(self.int_at(&mut j)?),
                }
            }
            Some(_) => Some(min),
            None => return None,
        };
        if self.t.get(j) != Some(&'}') {
            return None;
        }
        let span: String = self.t[self.i..=j].iter().collect();
        self.i = j + 1;
        let too_big = |n: Option<u64>| n.is_none_or(|n| n > 1000);
        if too_big(min) || max.is_some_and(too_big) {
            return Some(Err(format!("invalid repeat count: {span}")));
        }
        let min = min.unwrap_or(0) as u32;
        let max = max.map(|m| m.unwrap_or(0) as u32);
        if max.is_some_and(|m| m < min) {
            return Some(Err(format!("invalid repeat count: {span}")));
        }
        Some(Ok((min, max)))
    }

    /// Go's `parseInt`: decimal digits without a leading zero; the value is
    /// `None` when it is too large to matter (>= 10^8).
    fn int_at(&self, j: &mut usize) -> Option<Option<u64>> {
        let start = *j;
        let first = self.t.get(start)?;
        if !first.is_ascii_digit() {
            return None;
        }
        if *first == '0' && self.t.get(start + 1).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut value: Option<u64> = Some(0);
        while let Some(d) = self.t.get(*j).and_then(|c| c.to_digit(10)) {
            value = match value {
                Some(v) if v < 100_000_000 => Some(v * 10 + u64::from(d)),
                _ => None,
            };
            *j += 1;
        }
        Some(value)
    }

    fn escape_at_top(&mut self, stack: &mut [Group]) -> Result<(), String> {
        let look = match self.peek_at(1) {
            Some('A') => Some(Look::BeginText),
            Some('z') => Some(Look::EndText),
            Some('b') => Some(Look::WordBoundary),
            Some('B') => Some(Look::NotWordBoundary),
            Some('C') => return Err("invalid escape sequence: \\C".to_string()),
            Some('Q') => {
                // literal text up to `\E` or the end
                self.i += 2;
                while let Some(c) = self.peek_at(0) {
                    if c == '\\' && self.peek_at(1) == Some('E') {
                        self.i += 2;
                        break;
                    }
                    push(stack, Node::Lit(c as u32))?;
                    self.i += 1;
                }
                return Ok(());
            }
            Some('p' | 'P') => return Err("unicode classes are not supported".to_string()),
            _ => None,
        };
        if let Some(look) = look {
            self.i += 2;
            return push(stack, Node::Look(look));
        }
        if let Some((ranges, negated)) = self.peek_at(1).and_then(perl_class) {
            self.i += 2;
            let mut class = Vec::new();
            add_group(&mut class, ranges, negated);
            return push(stack, Node::Class(normalize(class)));
        }
        let c = self.escape()?;
        push(stack, Node::Lit(c))
    }

    /// A single-character escape at `self.i` (which holds the backslash).
    fn escape(&mut self) -> Result<u32, String> {
        let invalid = |s: &Parser| {
            let end = (s.i + 2).min(s.t.len());
            let text: String = s.t[s.i..end].iter().collect();
            Err(format!("invalid escape sequence: {text}"))
        };
        let Some(c) = self.peek_at(1) else {
            return Err("trailing backslash at end of expression".to_string());
        };
        let is_octal = |c: Option<char>| matches!(c, Some('0'..='7'));
        match c {
            '1'..='7' | '0' => {
                if c != '0' && !is_octal(self.peek_at(2)) {
                    // a backreference, which Go does not support
                    return invalid(self);
                }
                self.i += 2;
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek_at(0) {
                        Some(d @ '0'..='7') => {
                            r = r * 8 + (d as u32 - '0' as u32);
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                Ok(r)
            }
            'x' => {
                let start = self.i;
                self.i += 2;
                let Some(first) = self.peek_at(0) else {
                    self.i = start;
                    return invalid(self);
                };
                self.i += 1;
                if first == '{' {
                    let mut r: u32 = 0;
                    let mut digits = 0;
                    loop {
                        let Some(d) = self.peek_at(0) else {
                            self.i = start;
                            return invalid(self);
                        };
                        self.i += 1;
                        if d == '}' {
                            break;
                        }
                        let Some(v) = unhex(d) else {
                            self.i = start;
                            return invalid(self);
                        };
                        r = r * 16 + v;
                        if r > 0x10FFFF {
                            self.i = start;
                            return invalid(self);
                        }
                        digits += 1;
                    }
                    if digits == 0 {
                        self.i = start;
                        return invalid(self);
                    }
                    return Ok(r);
                }
                let second = self.peek_at(0);
                self.i += 1;
                match (unhex(first), second.and_then(unhex)) {
                    (Some(x), Some(y)) => Ok(x * 16 + y),
                    _ => {
                        self.i = start;
                        invalid(self)
                    }
                }
            }
            'a' | 'f' | 'n' | 'r' | 't' | 'v' => {
                self.i += 2;
                Ok(match c {
                    'a' => 7,
                    'f' => 12,
                    'n' => 10,
                    'r' => 13,
                    't' => 9,
                    _ => 11,
                })
            }
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => {
                self.i += 2;
                Ok(c as u32)
            }
            _ => invalid(self),
        }
    }

    /// A `[...]` class starting at `self.i`.
    fn class(&mut self) -> Result<Vec<(u32, u32)>, String> {
        let missing = || Err("missing closing ]".to_string());
        self.i += 1;
        let mut negated = false;
        if self.peek_at(0) == Some('^') {
            negated = true;
            self.i += 1;
        }
        let mut class: Vec<(u32, u32)> = Vec::new();
        let mut first = true;
        loop {
            match self.peek_at(0) {
                Some(']') if !first => break,
                None => return missing(),
                _ => {}
            }
            first = false;
            // [:alpha:] and friends; `[:` without a later `:]` is literal
            if self.peek_at(0) == Some('[')
                && self.peek_at(1) == Some(':')
                && self.peek_at(2).is_some()
            {
                let rest = &self.t[self.i + 2..];
                if let Some(k) = rest.windows(2).position(|w| w == [':', ']']) {
                    let name: String = rest[..k].iter().collect();
                    let Some((ranges, neg)) = posix_class(&name) else {
                        return Err(format!("invalid character class range: [:{name}:]"));
                    };
                    add_group(&mut class, ranges, neg);
                    self.i += 2 + k + 2;
                    continue;
                }
            }
            if self.peek_at(0) == Some('\\') {
                match self.peek_at(1) {
                    Some('p' | 'P') => return Err("unicode classes are not supported".to_string()),
                    Some(c) => {
                        if let Some((ranges, neg)) = perl_class(c) {
                            add_group(&mut class, ranges, neg);
                            self.i += 2;
                            continue;
                        }
                    }
                    None => {}
                }
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.peek_at(0) == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.i += 1;
                hi = self.class_char()?;
                if hi < lo {
                    return Err("invalid character class range".to_string());
                }
            }
            class.push((lo, hi));
        }
        self.i += 1; // the closing ]
        let class = normalize(class);
        Ok(if negated { negate(&class) } else { class })
    }

    fn class_char(&mut self) -> Result<u32, String> {
        match self.peek_at(0) {
            None => Err("missing closing ]".to_string()),
            Some('\\') => self.escape(),
            Some(c) => {
                self.i += 1;
                Ok(c as u32)
            }
        }
    }
}

fn push(stack: &mut [Group], node: Node) -> Result<(), String> {
    match stack.last_mut() {
        Some(top) => {
            top.concat.push(node);
            Ok(())
        }
        None => Err("internal error".to_string()),
    }
}

struct Compiler {
    prog: Vec<Inst>,
    classes: Vec<Vec<(u32, u32)>>,
    too_large: bool,
}

impl Compiler {
    fn emit(&mut self, inst: Inst) -> usize {
        self.prog.push(inst);
        self.prog.len() - 1
    }

    /// Nesting depth is bounded by the parser, so recursion is bounded too.
    fn node(&mut self, node: &Node) {
        if self.prog.len() > MAX_PROGRAM {
            self.too_large = true;
            return;
        }
        match node {
            Node::Empty => {}
            Node::Lit(c) => {
                self.emit(Inst::Char(*c));
            }
            Node::Class(ranges) => {
                self.classes.push(ranges.clone());
                let idx = self.classes.len() - 1;
                self.emit(Inst::Class(idx));
            }
            Node::AnyNotNl => {
                self.emit(Inst::AnyNotNl);
            }
            Node::Look(l) => {
                self.emit(Inst::Look(*l));
            }
            Node::Concat(items) => items.iter().for_each(|n| self.node(n)),
            Node::Alternate(alternatives) => {
                let mut jumps = Vec::new();
                let count = alternatives.len();
                for (k, alt) in alternatives.iter().enumerate() {
                    if k + 1 < count {
                        let split = self.emit(Inst::Split(0, 0));
                        self.node(alt);
                        jumps.push(self.emit(Inst::Jmp(0)));
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.node(alt);
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat(inner, min, max) => {
                for _ in 0..*min {
                    self.node(inner);
                }
                match max {
                    None => {
                        let split = self.emit(Inst::Split(0, 0));
                        self.node(inner);
                        self.emit(Inst::Jmp(split));
                        let end = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, end);
                    }
                    Some(max) => {
                        for _ in *min..*max {
                            let split = self.emit(Inst::Split(0, 0));
                            self.node(inner);
                            let end = self.prog.len();
                            self.prog[split] = Inst::Split(split + 1, end);
                        }
                    }
                }
            }
        }
    }
}

/// Compile a Go regular expression (Perl flags, as `regexp.Compile`).
pub fn compile(expr: &str) -> Result<Regex, String> {
    let node = Parser {
        t: expr.chars().collect(),
        i: 0,
    }
    .parse()?;
    let mut c = Compiler {
        prog: Vec::new(),
        classes: Vec::new(),
        too_large: false,
    };
    c.node(&node);
    if c.too_large {
        return Err("expression too large".to_string());
    }
    c.emit(Inst::Match);
    let mut re = Regex {
        prog: c.prog,
        classes: c.classes,
        closures: None,
    };
    re.closures = re.closure_table();
    Ok(re)
}

fn is_word(c: Option<u32>) -> bool {
    matches!(c, Some(0x30..=0x39 | 0x41..=0x5A | 0x5F | 0x61..=0x7A))
}

/// Set of program counters with O(1) insert/test and cheap clearing.
struct PcSet {
    dense: Vec<usize>,
    stamp: Vec<u32>,
    generation: u32,
}

impl PcSet {
    fn new(size: usize) -> Self {
        PcSet {
            dense: Vec::new(),
            stamp: vec![0; size],
            generation: 1,
        }
    }

    fn clear(&mut self) {
        self.dense.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }

    /// Returns false if already present.
    fn insert(&mut self, pc: usize) -> bool {
        if self.stamp[pc] == self.generation {
            return false;
        }
        self.stamp[pc] = self.generation;
        self.dense.push(pc);
        true
    }
}

/// What an assertion can see at a position.
#[derive(Clone, Copy)]
struct Context {
    before: Option<u32>,
    after: Option<u32>,
}

impl Regex {
    /// Whether the expression matches anywhere in `text` (Go's
    /// `MatchString`; anchors are explicit in the expression).
    pub fn is_match(&self, text: &str) -> bool {
        if let Some(closures) = &self.closures {
            return self.is_match_small(closures, text);
        }
        // patternmatcher's expressions start with `^`: then a match can
        // only start at the beginning, and the search ends once no thread
        // is alive
        let anchored = matches!(self.prog.first(), Some(Inst::Look(Look::BeginText)));
        let mut current = PcSet::new(self.prog.len());
        let mut next = PcSet::new(self.prog.len());
        let mut work = Vec::new();
        let mut chars = text.chars().map(u32::from);
        let mut ctx = Context {
            before: None,
            after: chars.next(),
        };
        loop {
            if (ctx.before.is_none() || !anchored) && self.add(&mut current, &mut work, 0, ctx) {
                return true;
            }
            let Some(c) = ctx.after else { return false };
            if anchored && current.dense.is_empty() {
                return false;
            }
            let following = Context {
                before: Some(c),
                after: chars.next(),
            };
            next.clear();
            for k in 0..current.dense.len() {
                let pc = current.dense[k];
                let advance = match &self.prog[pc] {
                    Inst::Char(x) => *x == c,
                    Inst::AnyNotNl => c != u32::from('\n'),
                    Inst::Class(idx) => in_ranges(&self.classes[*idx], c),
                    _ => false,
                };
                if advance && self.add(&mut next, &mut work, pc + 1, following) {
                    return true;
                }
            }
            std::mem::swap(&mut current, &mut next);
            ctx = following;
        }
    }

    fn variant(ctx: Context) -> usize {
        usize::from(ctx.before.is_none()) | usize::from(ctx.after.is_none()) << 1
    }

    fn closure_table(&self) -> Option<Vec<[u128; 4]>> {
        let small = self.prog.len() <= 128;
        let plain = !self
            .prog
            .iter()
            .any(|i| matches!(i, Inst::Look(Look::WordBoundary | Look::NotWordBoundary)));
        if !small || !plain {
            return None;
        }
        let contexts = [
            Context {
                before: Some(0),
                after: Some(0),
            },
            Context {
                before: None,
                after: Some(0),
            },
            Context {
                before: Some(0),
                after: None,
            },
            Context {
                before: None,
                after: None,
            },
        ];
        let mut table = Vec::with_capacity(self.prog.len());
        let mut work = Vec::new();
        for pc in 0..self.prog.len() {
            let mut row = [0u128; 4];
            for (variant, ctx) in contexts.iter().enumerate() {
                let mut set = PcSet::new(self.prog.len());
                self.closure(&mut set, &mut work, pc, *ctx);
                row[variant] = set.dense.iter().fold(0u128, |acc, &pc| acc | 1u128 << pc);
            }
            table.push(row);
        }
        Some(table)
    }

    /// The simulation with precomputed closures: per character, one test
    /// and one bit-or per live thread, no allocation.
    fn is_match_small(&self, closures: &[[u128; 4]], text: &str) -> bool {
        let anchored = matches!(self.prog.first(), Some(Inst::Look(Look::BeginText)));
        let match_bits = self
            .prog
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i, Inst::Match))
            .fold(0u128, |acc, (pc, _)| acc | 1u128 << pc);
        let mut current: u128 = 0;
        let mut chars = text.chars().map(u32::from);
        let mut ctx = Context {
            before: None,
            after: chars.next(),
        };
        loop {
            if ctx.before.is_none() || !anchored {
                current |= closures[0][Self::variant(ctx)];
            }
            if current & match_bits != 0 {
                return true;
            }
            let Some(c) = ctx.after else { return false };
            if current == 0 && anchored {
                return false;
            }
            let following = Context {
                before: Some(c),
                after: chars.next(),
            };
            let variant = Self::variant(following);
            let mut next: u128 = 0;
            let mut bits = current;
            while bits != 0 {
                let pc = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let advance = match &self.prog[pc] {
                    Inst::Char(x) => *x == c,
                    Inst::AnyNotNl => c != u32::from('\n'),
                    Inst::Class(idx) => in_ranges(&self.classes[*idx], c),
                    _ => false,
                };
                if advance {
                    next |= closures.get(pc + 1).map_or(0, |row| row[variant]);
                }
            }
            current = next;
            ctx = following;
        }
    }

    /// Add `pc` and its complete epsilon closure to `set`.
    fn closure(&self, set: &mut PcSet, work: &mut Vec<usize>, pc: usize, ctx: Context) {
        work.clear();
        work.push(pc);
        while let Some(pc) = work.pop() {
            if !set.insert(pc) {
                continue;
            }
            match &self.prog[pc] {
                Inst::Jmp(to) => work.push(*to),
                Inst::Split(a, b) => {
                    work.push(*b);
                    work.push(*a);
                }
                Inst::Look(look) => {
                    if look_holds(*look, ctx) {
                        work.push(pc + 1);
                    }
                }
                Inst::Match | Inst::Char(_) | Inst::Class(_) | Inst::AnyNotNl => {}
            }
        }
    }

    /// Add `pc` and its epsilon closure; true when it reaches `Match`.
    fn add(&self, set: &mut PcSet, work: &mut Vec<usize>, pc: usize, ctx: Context) -> bool {
        work.clear();
        work.push(pc);
        while let Some(pc) = work.pop() {
            if !set.insert(pc) {
                continue;
            }
            match &self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(to) => work.push(*to),
                Inst::Split(a, b) => {
                    work.push(*b);
                    work.push(*a);
                }
                Inst::Look(look) => {
                    if look_holds(*look, ctx) {
                        work.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Class(_) | Inst::AnyNotNl => {}
            }
        }
        false
    }
}

fn look_holds(look: Look, ctx: Context) -> bool {
    match look {
        Look::BeginText => ctx.before.is_none(),
        Look::EndText => ctx.after.is_none(),
        Look::WordBoundary => is_word(ctx.before) != is_word(ctx.after),
        Look::NotWordBoundary => is_word(ctx.before) == is_word(ctx.after),
    }
}

fn in_ranges(ranges: &[(u32, u32)], c: u32) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::compile;

    fn m(expr: &str, text: &str) -> bool {
        compile(expr)
            .unwrap_or_else(|e| panic!("{expr:?}: {e}"))
            .is_match(text)
    }

    #[test]
    fn basics() {
        assert!(m("^a[^/]*$", "abc"));
        assert!(!m("^a[^/]*$", "ab/c"));
        assert!(m("^(.*/)?foo$", "foo"));
        assert!(m("^(.*/)?foo$", "a/b/foo"));
        assert!(!m("^(.*/)?foo$", "a/bfoo"));
        assert!(m("^a.*$", "a\u{1F600}b"));
        assert!(!m("^.*$", "a\nb"), "dot does not match newline");
        assert!(m("^[^a]$", "\n"), "negated classes do match newline");
        assert!(m("^[[:alpha:]]+\\d$", "ab1"));
        assert!(
            m("^[[^/]*]$", "[^/]"),
            "class swallowing a generated fragment"
        );
        assert!(m("^\\Qa.b$", "a.b$"), "quoted text runs to the end");
        assert!(!m("^a\\bb", "a-b"));
        assert!(m("^\\x41\\x{42}\\101$", "ABA"));
        assert!(m("^a|b$", "zb"));
        assert!(m("^a{2}$", "aa") && !m("^a{2}$", "aaa"));
        assert!(m("^a{2,}$", "aaaa") && !m("^a{2,}$", "a"));
        assert!(m("^a{1,2}b$", "aab") && !m("^a{1,2}b$", "aaab"));
        assert!(m("^a{,2}$", "a{,2}"), "not a repetition: literal brace");
        assert!(m("^a{01}$", "a{01}"));
    }

    #[test]
    fn errors() {
        for expr in [
            // `\\pL` is valid Go but unsupported here
            "^[z-a]$",
            "^\\y$",
            "^\\1$",
            "^\\8$",
            "^[[:foo:]]$",
            "^\\pL$",
            "^a**$",
            "^(a$",
            "^a)$",
            "^[a$",
            "^\\",
            "^\\x{110000}$",
            "^\\xZ1$",
            "^[]$",
            "^a{2}*$",
            "^a{3,2}$",
            "^a{1001}$",
            "^a{100000000}$",
        ] {
            assert!(compile(expr).is_err(), "{expr:?} should not compile");
        }
        let huge = format!("^{}$", "a{1000}".repeat(101));
        assert_eq!(compile(&huge).unwrap_err(), "expression too large");
        for expr in [
            "^*$",
            "^{2}$",
            "^a{2}?$",
            "^a*?$",
            "^[]a]$",
            "^[a-]$",
            "^\\_$",
            "^\\12$",
            "^[\\d-z]$",
            "^[[:]$",
        ] {
            assert!(compile(expr).is_ok(), "{expr:?} should compile");
        }
    }
}
