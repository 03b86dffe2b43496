//! The scanning engine: one lazy-DFA pass over the text finds every
//! *trigger* (a rule keyword, the first bytes of a known-secret form, a PII
//! shape, or an existing `[REDACTED:...]` marker); rules then run only at
//! their keywords. Clean text therefore costs one DFA pass however many
//! rules there are.
//!
//! The trigger pass reports one leftmost match at a time, so nothing that
//! starts at or inside a trigger may be lost:
//! - after a literal (keyword or known-secret) hit the search resumes one
//!   byte later; the other literals that can start at the same byte are
//!   precomputed per trigger and compared directly, and a PII shape
//!   starting there is checked with an anchored search;
//! - a validated PII match is skipped whole, and its span is rescanned
//!   with overlapping Aho-Corasick automata for keywords and known secrets;
//! - a marker is skipped whole: nothing inside it is redacted again.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Mutex, OnceLock, PoisonError};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::meta::{Cache, Regex};
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

use crate::checks::{assignment_key_ok, assignment_value_start, check_ok, is_placeholder, operator_follows};
use crate::pii::PiiPattern;
use crate::rules::{Check, RuleDef};
use crate::{BuildError, Category};

/// Literal that opens a redaction marker.
pub(crate) const MARKER_OPEN: &str = "[REDACTED:";

/// Longest kind accepted inside a marker; longer bracketed text is not ours.
const MAX_MARKER_KIND: usize = 64;

/// A trigger match shorter than this that fails PII validation is retried
/// one byte later (a valid match may start inside it); longer ones are
/// skipped whole so pathological input stays linear.
const RETRY_LIMIT: usize = 64;

/// Appended to the trigger of a keyword whose rules are all assignments:
/// the keyword fires only when an assignment operator follows on the same
/// line, which keeps ordinary prose and logs from triggering it at all.
const ASSIGNMENT_TAIL: &str = r#"[0-9A-Za-z_.\-]*["'`]?[ \t]{0,3}[=:]"#;

/// [`ASSIGNMENT_TAIL`] for `token`, which also skips the plural key of a
/// count (`"input_tokens": 12`), present in every LLM audit record.
const COUNT_SAFE_ASSIGNMENT_TAIL: &str =
    r#"(?:|[0-9A-Za-rt-z_.\-][0-9A-Za-z_.\-]*|[sS][0-9A-Za-z_.\-]+)["'`]?[ \t]{0,3}[=:]"#;

/// Bytes of a known-secret form used as its trigger; the rest is compared
/// at each hit. Eight bytes of a secret rarely occur by chance.
const KNOWN_TRIGGER_LEN: usize = 8;

/// The longest prefix of `s` of at most `n` bytes ending on a char boundary.
fn char_prefix(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or(s)
}

/// A rule ready for window searches. Its regexes are compiled on the
/// rule's first keyword hit, not when the redactor is built: a rule runs
/// only at its keywords, most never fire in a process's life, and compiling
/// all of them eagerly was ~90% of a redactor's build time (which every CLI
/// command, `steward stop` included, pays) and most of its memory.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    /// Finding kind.
    pub id: &'static str,
    /// Secret rules and the email detector share this machinery.
    pub category: Category,
    /// The rule's pattern (ASCII boundaries applied).
    pattern: String,
    /// For assignment rules: the value pattern alone, anchored.
    value_pattern: Option<String>,
    /// The compiled regexes; `Err` if they failed to compile (a bug in a
    /// built-in rule), in which case every window of the rule is withheld.
    regexes: OnceLock<Result<RuleRegexes, String>>,
    /// Bytes before a keyword where a match may start.
    lookbehind: usize,
    /// Initial window length after a keyword.
    max_len: usize,
    /// Post-match validation.
    check: Check,
    /// Keyword must be followed by an assignment operator.
    assignment: bool,
}

/// A rule's compiled regexes.
#[derive(Debug)]
struct RuleRegexes {
    /// The rule's regex, searched only inside windows.
    regex: Regex,
    /// Whether the regex has a group `s` marking the part to redact.
    has_secret_group: bool,
    /// For assignment rules: the value regex alone. The value's start is
    /// found by parsing the `key = ` prefix, which avoids a capturing
    /// search on every candidate.
    value_regex: Option<Regex>,
}

impl CompiledRule {
    /// The rule's regexes, compiled on first use.
    fn regexes(&self) -> Result<&RuleRegexes, &str> {
        self.regexes
            .get_or_init(|| {
                let detail = |e: BuildError| match e {
                    BuildError::Regex { detail } => detail,
                    other => other.to_string(),
                };
                let regex = compile(std::slice::from_ref(&self.pattern)).map_err(detail)?;
                let has_secret_group = regex.group_info().to_index(regex_automata::PatternID::ZERO, "s").is_some();
                let value_regex = match &self.value_pattern {
                    Some(v) => Some(compile(std::slice::from_ref(v)).map_err(detail)?),
                    None => None,
                };
                Ok(RuleRegexes { regex, has_secret_group, value_regex })
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// A part of the engine built on its first use by `build`. `Err` holds why
/// it could not be built (a bug in a built-in table); callers then fail
/// closed.
struct Lazy<T> {
    cell: OnceLock<Result<T, String>>,
    build: Box<dyn Fn() -> Result<T, BuildError> + Send + Sync>,
}

impl<T> Lazy<T> {
    fn new(build: impl Fn() -> Result<T, BuildError> + Send + Sync + 'static) -> Self {
        Self { cell: OnceLock::new(), build: Box::new(build) }
    }

    fn get(&self) -> Result<&T, &str> {
        self.cell.get_or_init(|| (self.build)().map_err(|e| e.to_string())).as_ref().map_err(String::as_str)
    }
}

impl<T> std::fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy").field("built", &self.cell.get().is_some()).finish()
    }
}

/// What a trigger-pattern id stands for.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// A keyword or known-secret literal: index into `Engine::literals`.
    Literal(usize),
    /// The opening of a `[REDACTED:` marker.
    Marker,
    /// A PII shape to validate.
    Pii(PiiPattern),
}

/// What an occurrence of a literal at some position means.
#[derive(Debug, Clone)]
enum LiteralHit {
    /// A keyword: these rules run around it.
    Rules(Vec<usize>),
    /// A known-secret form.
    Known,
}

/// One literal that may occur at a trigger's start position.
#[derive(Debug, Clone)]
struct PrefixLiteral {
    /// Its length in bytes.
    len: usize,
    /// The text it must equal (exactly, or ASCII case-insensitively).
    text: String,
    /// Whether the comparison is case-sensitive.
    exact: bool,
    /// What it means.
    hit: LiteralHit,
}

/// Keyword automaton plus, per keyword, the rules it triggers.
#[derive(Debug)]
struct KeywordSet {
    /// Overlapping automaton over the keywords.
    ac: AhoCorasick,
    /// Per keyword (pattern id): the rules it triggers.
    rules: Vec<Vec<usize>>,
}

/// Raw results of one scan, before overlap resolution.
#[derive(Debug, Default)]
pub(crate) struct RawScan {
    /// Known-secret occurrences (possibly overlapping).
    pub known: Vec<Range<usize>>,
    /// Rule and PII candidates: (range, kind, category, priority).
    pub candidates: Vec<Candidate>,
    /// Existing markers, protected from further redaction.
    pub markers: Vec<Range<usize>>,
}

/// One candidate finding from a rule or PII pattern.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Range to redact.
    pub range: Range<usize>,
    /// Finding kind.
    pub kind: &'static str,
    /// Finding category.
    pub category: Category,
    /// Lower wins on identical spans (rule-table order, PII last).
    pub priority: usize,
}

/// The trigger scan's search caches, taken for one scan and put back.
///
/// The trigger regex is one lazy DFA over hundreds of patterns. Its states
/// are built as text first reaches them and kept in the cache the search
/// used: a cold cache costs a line of a few hundred bytes ~50 µs, a warm
/// one ~2 µs, and it takes a few thousand lines of varied text (ids,
/// digests, timestamps) to warm. `regex`'s own pool keys its caches by
/// thread, so a quiet daemon, whose calls land on whichever of its threads
/// is free, spreads its lines over several caches and keeps them all cold.
/// Here a scan takes the cache put back last, so at rest every scan reuses
/// the warmest one, and a warm-up (lines redacted on any thread, as
/// steward's daemon does after it starts) warms the cache later calls
/// use; concurrent scans each get their own, and the pool keeps as many as
/// ever ran at once.
#[derive(Debug, Default)]
struct TriggerCaches {
    idle: Mutex<Vec<Cache>>,
}

impl TriggerCaches {
    /// The cache put back last, or a fresh one for `regex`.
    fn take(&self, regex: &Regex) -> Cache {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_else(|| regex.create_cache())
    }

    /// Puts `cache` back, to be taken first.
    fn put(&self, cache: Cache) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(cache);
    }
}

/// The compiled engine.
#[derive(Debug)]
pub(crate) struct Engine {
    /// Secret rules, then the email detector; indexes are priorities.
    rules: Vec<CompiledRule>,
    /// The one-pass scanner: keyword and known-secret literals, the
    /// marker opening, PII shapes.
    trigger: Regex,
    /// The trigger scan's search caches (its lazy DFA's states), most
    /// recently used last: see [`TriggerCaches`].
    trigger_caches: TriggerCaches,
    /// What each trigger pattern id stands for.
    triggers: Vec<Trigger>,
    /// The enabled PII shapes alone, with their pattern ids, for anchored
    /// checks where a literal won the trigger scan at a byte where a PII
    /// match could also start (the IBAN `SK31...` and Twilio's `SK`).
    /// Compiled on first use (see [`CompiledRule`] for why).
    pii_only: Option<Lazy<(Regex, Vec<PiiPattern>)>>,
    /// Per literal trigger: every literal that can start where it matched
    /// (itself included). The scan reports one pattern per position; the
    /// others starting there are read from here and compared directly.
    literals: Vec<Vec<PrefixLiteral>>,
    /// Case-insensitive keywords, for rescanning spans that a PII match
    /// skipped.
    /// Compiled on first use: only spans a PII match skipped need it.
    keywords_ci: Option<Lazy<KeywordSet>>,
    /// Case-sensitive keywords (`SK`, `AC`, `:AA`), likewise.
    keywords_cs: Option<Lazy<KeywordSet>>,
    /// Longest keyword: how far past a skipped span a rescan must read.
    max_keyword_len: usize,
    /// Every known-secret form, for rescanning skipped spans.
    known: Option<AhoCorasick>,
    /// Longest known-secret form, likewise.
    max_known_len: usize,
    /// Kinds this engine can emit, sorted: only markers with these kinds
    /// are protected from redaction.
    marker_kinds: Vec<&'static str>,
}

/// Rewrites `\b`, `\w` and `\d` to their ASCII forms (inside and outside
/// character classes). Unicode `\w` makes counted repetitions enormous,
/// and a Unicode `\b` makes the lazy DFA give up on non-ASCII input.
pub(crate) fn ascii_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('b') if !in_class => out.push_str(r"(?-u:\b)"),
                Some('w') if in_class => out.push_str("0-9A-Za-z_"),
                Some('w') => out.push_str("[0-9A-Za-z_]"),
                Some('d') if in_class => out.push_str("0-9"),
                Some('d') => out.push_str("[0-9]"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` or `^]` right after the opening bracket is literal.
                let rest = chars.as_str();
                for lit in ["^]", "]", "^"] {
                    if rest.starts_with(lit) {
                        out.push_str(lit);
                        for _ in 0..lit.len() {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Cheap test whether a PII shape can start at `s`: an IBAN's two capitals
/// and two digits, a digit, `+` or `(` (cards, phones, SSNs, IPv4), or a
/// hex digit followed by `:` within five bytes (IPv6).
fn may_start_pii(bytes: &[u8], s: usize) -> bool {
    let at = |i: usize| bytes.get(s + i).copied().unwrap_or(0);
    let iban =
        at(0).is_ascii_uppercase() && at(1).is_ascii_uppercase() && at(2).is_ascii_digit() && at(3).is_ascii_digit();
    let numeric = at(0).is_ascii_digit() || at(0) == b'+' || at(0) == b'(';
    let ipv6 = at(0).is_ascii_hexdigit() && (1..=5).any(|i| at(i) == b':');
    iban || numeric || ipv6
}

/// Escapes a literal for use in a regex (ASCII punctuation as `\x`).
fn escape_literal(lit: &str, case_insensitive: bool) -> String {
    let mut out = String::with_capacity(lit.len() * 2 + 4);
    if case_insensitive {
        out.push_str("(?i:");
    }
    for c in lit.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push_str(&format!(r"\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    if case_insensitive {
        out.push(')');
    }
    out
}

/// Compiles one regex for `&str` haystacks.
pub(crate) fn compile(patterns: &[String]) -> Result<Regex, BuildError> {
    compile_with(patterns, true)
}

/// [`compile`] without literal extraction for a prefilter: for the trigger
/// scan, whose hundreds of alternated literals made the extraction
/// quadratic (`Seq::union`'s dedup: ~85% of a redactor's build time) for a
/// prefilter that the lazy DFA scan does not need.
fn compile_unfiltered(patterns: &[String]) -> Result<Regex, BuildError> {
    compile_with(patterns, false)
}

fn compile_with(patterns: &[String], auto_prefilter: bool) -> Result<Regex, BuildError> {
    // No one-pass DFA: built eagerly for every rule, it doubled the
    // redactor's memory (21 MB -> 12.8 MB without) for ~4% fewer
    // instructions on secret-dense text. The bounded backtracker stays: it
    // allocates only when used, and without it capture searches cost +33%.
    Regex::builder()
        .configure(Regex::config().onepass(false).auto_prefilter(auto_prefilter))
        .syntax(syntax::Config::new().utf8(true))
        .build_many(patterns)
        .map_err(|e| {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            BuildError::Regex { detail }
        })
}

impl Engine {
    /// Compiles the rules, the PII patterns and the known-secret forms.
    pub(crate) fn new(
        defs: Vec<(RuleDef, Category)>,
        pii: &[PiiPattern],
        known_forms: &[String],
        extra_marker_kinds: &[&'static str],
    ) -> Result<Self, BuildError> {
        let mut rules = Vec::with_capacity(defs.len());
        let mut ci: Vec<(String, Vec<usize>)> = Vec::new();
        let mut cs: Vec<(String, Vec<usize>)> = Vec::new();
        let mut marker_kinds: HashSet<&'static str> = extra_marker_kinds.iter().copied().collect();
        for (idx, (def, category)) in defs.into_iter().enumerate() {
            let pattern = ascii_boundaries(&def.pattern);
            let value_pattern = def.value.as_ref().map(|v| ascii_boundaries(&format!("^(?i:{v})$")));
            for kw in def.keywords {
                let (list, key) =
                    if def.case_sensitive { (&mut cs, (*kw).to_owned()) } else { (&mut ci, kw.to_ascii_lowercase()) };
                match list.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, ids)) => ids.push(idx),
                    None => list.push((key, vec![idx])),
                }
            }
            marker_kinds.insert(def.id);
            rules.push(CompiledRule {
                id: def.id,
                category,
                pattern,
                value_pattern,
                regexes: OnceLock::new(),
                lookbehind: def.lookbehind,
                max_len: def.max_len,
                check: def.check,
                assignment: def.assignment,
            });
        }
        for p in PiiPattern::ALL {
            marker_kinds.insert(p.kind());
        }

        // Every literal the trigger scan looks for: keywords (with the rules
        // they trigger) and known-secret forms.
        let mut all: Vec<PrefixLiteral> = Vec::new();
        let mut assignment_only: HashSet<String> = HashSet::new();
        for (list, exact) in [(&ci, false), (&cs, true)] {
            for (kw, ids) in list {
                if ids.iter().all(|i| rules.get(*i).is_some_and(|r| r.assignment)) {
                    assignment_only.insert(kw.clone());
                }
                all.push(PrefixLiteral { len: kw.len(), text: kw.clone(), exact, hit: LiteralHit::Rules(ids.clone()) });
            }
        }
        for form in known_forms {
            all.push(PrefixLiteral { len: form.len(), text: form.clone(), exact: true, hit: LiteralHit::Known });
        }
        // The trigger pattern of each literal: a keyword as is (plus the
        // assignment tail where that applies), a known-secret form by its
        // first bytes only; long literals would bloat the DFA and slow the
        // scan of every byte. Whole literals are compared at each hit.
        let mut specs: Vec<(String, bool, bool)> = Vec::new();
        for lit in &all {
            let spec = match lit.hit {
                LiteralHit::Known => (char_prefix(&lit.text, KNOWN_TRIGGER_LEN).to_owned(), true, false),
                LiteralHit::Rules(_) => (lit.text.clone(), lit.exact, assignment_only.contains(&lit.text)),
            };
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
        // Longest first: at one start position the earlier pattern wins,
        // and every other literal that can start there comes from
        // `literals`.
        specs.sort_by_key(|(t, _, _)| std::cmp::Reverse(t.len()));
        let mut patterns: Vec<String> = Vec::new();
        let mut triggers: Vec<Trigger> = Vec::new();
        let mut literals: Vec<Vec<PrefixLiteral>> = Vec::new();
        for (text, exact, tail) in &specs {
            // Literals consistent with the trigger text over their common
            // length (ASCII case-insensitively: a case-insensitive trigger
            // may match text that an exact literal matches too).
            let candidates: Vec<PrefixLiteral> = all
                .iter()
                .filter(|p| {
                    let n = p.len.min(text.len());
                    matches!((text.as_bytes().get(..n), p.text.as_bytes().get(..n)), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
                })
                .cloned()
                .collect();
            let mut pattern = escape_literal(text, !exact);
            if *tail {
                pattern.push_str(if text == "token" { COUNT_SAFE_ASSIGNMENT_TAIL } else { ASSIGNMENT_TAIL });
            }
            patterns.push(pattern);
            triggers.push(Trigger::Literal(literals.len()));
            literals.push(candidates);
        }
        let kws: Vec<&String> = ci.iter().chain(cs.iter()).map(|(k, _)| k).collect();
        patterns.push(escape_literal(MARKER_OPEN, false));
        triggers.push(Trigger::Marker);
        for p in pii {
            patterns.push(ascii_boundaries(p.regex()));
            triggers.push(Trigger::Pii(*p));
        }
        // Literals precede PII shapes in priority (the other order costs a
        // third more instructions per byte on clean text); a PII match
        // starting at a literal's byte is recovered by `pii_at`.
        let pii_only = if pii.is_empty() {
            None
        } else {
            let list: Vec<String> = pii.iter().map(|p| ascii_boundaries(p.regex())).collect();
            let pii = pii.to_vec();
            Some(Lazy::new(move || Ok((compile(&list)?, pii.clone()))))
        };
        // A compile error for the trigger could quote a known secret, so
        // it is reported without detail when secrets are involved.
        let trigger =
            compile_unfiltered(&patterns).map_err(|e| if known_forms.is_empty() { e } else { BuildError::TooLarge })?;

        let max_keyword_len = kws.iter().map(|k| k.len()).max().unwrap_or(0);
        let keywords_ci = (!ci.is_empty()).then(|| Lazy::new(move || keyword_set(&ci, true)));
        let keywords_cs = (!cs.is_empty()).then(|| Lazy::new(move || keyword_set(&cs, false)));
        let max_known_len = known_forms.iter().map(String::len).max().unwrap_or(0);
        let known = if known_forms.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(known_forms)
                    .map_err(|e| BuildError::Automaton { detail: e.to_string() })?,
            )
        };
        let mut marker_kinds: Vec<&'static str> = marker_kinds.into_iter().collect();
        marker_kinds.sort_unstable();
        Ok(Self {
            rules,
            trigger_caches: TriggerCaches::default(),
            trigger,
            triggers,
            literals,
            pii_only,
            keywords_ci,
            keywords_cs,
            max_keyword_len,
            known,
            max_known_len,
            marker_kinds,
        })
    }

    /// How many trigger-scan caches are idle in the pool.
    #[cfg(test)]
    pub(crate) fn idle_trigger_caches(&self) -> usize {
        self.trigger_caches.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Compiles every rule now, reporting the first that fails: tests and
    /// `steward doctor`'s self-check see a broken built-in rule at once
    /// instead of on its first keyword hit.
    #[cfg(test)]
    pub(crate) fn compile_all(&self) -> Result<(), BuildError> {
        for rule in &self.rules {
            rule.regexes().map_err(|detail| BuildError::Rule { id: rule.id, detail: detail.to_owned() })?;
        }
        let failed = |detail: &str| BuildError::Automaton { detail: detail.to_owned() };
        if let Some(pii) = &self.pii_only {
            pii.get().map_err(failed)?;
        }
        for set in [&self.keywords_ci, &self.keywords_cs].into_iter().flatten() {
            set.get().map_err(failed)?;
        }
        Ok(())
    }

    /// Number of compiled rules (secret rules plus the email detector).
    pub(crate) fn rule_count(&self, category: Category) -> usize {
        self.rules.iter().filter(|r| r.category == category).count()
    }

    /// Scans `text`. With `secrets_only`, PII and known secrets are skipped.
    pub(crate) fn scan(&self, text: &str, secrets_only: bool) -> RawScan {
        let mut raw = RawScan::default();
        let mut hits: Vec<(usize, usize)> = Vec::new();
        let len = text.len();
        let mut at = 0usize;
        let mut kept_until = 0usize;
        let mut pii_until = 0usize;
        let mut cache = self.trigger_caches.take(&self.trigger);
        while at < len {
            let input = Input::new(text).span(at..len);
            let Some(m) = self.trigger.search_with(&mut cache, &input) else {
                break;
            };
            let (s, e) = (m.start(), m.end());
            let trigger = self.triggers.get(m.pattern().as_usize()).copied();
            if let Some(Trigger::Marker) = trigger {
                // A marker is skipped whole: nothing inside it is redacted
                // again, which keeps redaction idempotent and cheap.
                if let Some(end) = self.marker_end(text, s) {
                    raw.markers.push(s..end);
                    kept_until = kept_until.max(end);
                    at = end;
                    continue;
                }
            }
            at = match trigger {
                Some(Trigger::Literal(idx)) => {
                    for p in self.literals.get(idx).into_iter().flatten() {
                        let Some(found) = text.as_bytes().get(s..s + p.len) else {
                            continue;
                        };
                        let same = if p.exact {
                            found == p.text.as_bytes()
                        } else {
                            found.eq_ignore_ascii_case(p.text.as_bytes())
                        };
                        match &p.hit {
                            LiteralHit::Rules(rules) if same => hits.extend(rules.iter().map(|r| (*r, s))),
                            LiteralHit::Known if same && !secrets_only => raw.known.push(s..s + p.len),
                            _ => {}
                        }
                    }
                    if !secrets_only && may_start_pii(text.as_bytes(), s) {
                        self.pii_at(text, s, &mut raw.candidates);
                    }
                    // Literals starting later, even inside this one, are
                    // found by the next search.
                    s + 1
                }
                Some(Trigger::Pii(p)) => {
                    let valid = if secrets_only { None } else { p.validate(text, s..e, pii_until) };
                    match valid {
                        Some(range) => {
                            pii_until = range.end;
                            raw.candidates.push(Candidate {
                                range,
                                kind: p.kind(),
                                category: Category::Pii,
                                priority: usize::MAX,
                            });
                        }
                        None if e - s <= RETRY_LIMIT => {
                            at = s + 1;
                            continue;
                        }
                        None => {}
                    }
                    // Skipping the span would hide literals starting inside
                    // it: find those with the overlapping automata.
                    let from = s.max(kept_until);
                    if from < e {
                        self.rescan(text, from..e, secrets_only, &mut hits, &mut raw.known);
                        kept_until = e;
                    }
                    e
                }
                _ => s + 1,
            };
        }
        self.trigger_caches.put(cache);
        self.run_rules(text, hits, secrets_only, &mut raw.candidates);
        raw
    }

    /// A validated PII match starting exactly at `s`, if any.
    fn pii_at(&self, text: &str, s: usize, out: &mut Vec<Candidate>) {
        let Some(pii_only) = &self.pii_only else {
            return;
        };
        let Ok((regex, patterns)) = pii_only.get() else {
            // Fail closed: the rest of the text is withheld.
            out.push(Candidate {
                range: s..text.len(),
                kind: crate::FAILED_KIND,
                category: Category::Pii,
                priority: 0,
            });
            return;
        };
        let input = Input::new(text).span(s..text.len()).anchored(Anchored::Yes);
        let Some(m) = regex.search(&input) else {
            return;
        };
        let Some(p) = patterns.get(m.pattern().as_usize()) else {
            return;
        };
        if let Some(range) = p.validate(text, m.range(), 0) {
            out.push(Candidate { range, kind: p.kind(), category: Category::Pii, priority: usize::MAX });
        }
    }

    /// Overlapping keyword and known-secret search over the text starting
    /// in `span` (matches may run past its end).
    fn rescan(
        &self,
        text: &str,
        span: Range<usize>,
        secrets_only: bool,
        hits: &mut Vec<(usize, usize)>,
        known: &mut Vec<Range<usize>>,
    ) {
        let len = text.len();
        let kw_end = (span.end + self.max_keyword_len).min(len);
        for set in [&self.keywords_ci, &self.keywords_cs].into_iter().flatten() {
            let Ok(set) = set.get() else {
                // Fail closed: the span is withheld as if it were a secret.
                known.push(span.start..kw_end);
                continue;
            };
            let input = aho_corasick::Input::new(text).span(span.start..kw_end);
            for m in set.ac.find_overlapping_iter(input) {
                if m.start() >= span.end {
                    continue;
                }
                if let Some(rules) = set.rules.get(m.pattern().as_usize()) {
                    hits.extend(rules.iter().map(|r| (*r, m.start())));
                }
            }
        }
        if secrets_only {
            return;
        }
        if let Some(ac) = &self.known {
            let end = (span.end + self.max_known_len).min(len);
            let input = aho_corasick::Input::new(text).span(span.start..end);
            for m in ac.find_overlapping_iter(input) {
                if m.start() < span.end {
                    known.push(m.range());
                }
            }
        }
    }

    /// End of a well-formed marker starting at `start`: `[REDACTED:<kind>]`
    /// with a kind this redactor can emit. Anything else is ordinary text,
    /// so a secret cannot hide inside a fake marker.
    fn marker_end(&self, text: &str, start: usize) -> Option<usize> {
        let rest = text.get(start + MARKER_OPEN.len()..)?;
        let close = rest.bytes().take(MAX_MARKER_KIND + 1).position(|b| b == b']')?;
        let kind = rest.get(..close)?;
        self.marker_kinds.binary_search(&kind).is_ok().then_some(start + MARKER_OPEN.len() + close + 1)
    }

    /// Runs each triggered rule over the merged windows around its keyword
    /// hits.
    fn run_rules(&self, text: &str, mut hits: Vec<(usize, usize)>, secrets_only: bool, out: &mut Vec<Candidate>) {
        hits.sort_unstable();
        hits.dedup();
        let len = text.len();
        // End of the last match of the rule being processed: a keyword
        // inside it (`glpat-glpat-...`) would only re-find a suffix, and
        // skipping it keeps pathological input linear.
        let mut covered: (usize, usize) = (usize::MAX, 0);
        let mut i = 0;
        while i < hits.len() {
            let Some(&(rule_idx, kw)) = hits.get(i) else {
                break;
            };
            let Some(rule) = self.rules.get(rule_idx) else {
                break;
            };
            let mut window = kw.saturating_sub(rule.lookbehind)..(kw + rule.max_len).min(len);
            i += 1;
            if rule.assignment && !operator_follows(text, kw) {
                continue;
            }
            if rule.lookbehind == 0 {
                // The match starts at the keyword: one anchored attempt per
                // hit fails within a few bytes on ordinary text.
                if covered.0 == rule_idx && kw < covered.1 {
                    continue;
                }
                if !(secrets_only && rule.category != Category::Secret) {
                    let end = self.search_window(text, rule_idx, rule, window, Anchored::Yes, out);
                    covered = (rule_idx, end);
                }
                continue;
            }
            while let Some(&(r, next)) = hits.get(i) {
                if r != rule_idx || next.saturating_sub(rule.lookbehind) > window.end {
                    break;
                }
                window.end = (next + rule.max_len).min(len);
                i += 1;
            }
            if secrets_only && rule.category != Category::Secret {
                continue;
            }
            self.search_window(text, rule_idx, rule, window, Anchored::No, out);
        }
    }

    /// All matches of one rule inside `window`, growing the window when a
    /// match reaches its end (the match may continue).
    fn search_window(
        &self,
        text: &str,
        rule_idx: usize,
        rule: &CompiledRule,
        mut window: Range<usize>,
        anchored: Anchored,
        out: &mut Vec<Candidate>,
    ) -> usize {
        let len = text.len();
        let Ok(RuleRegexes { regex, has_secret_group, value_regex }) = rule.regexes() else {
            // Fail closed: a rule that cannot run withholds its window.
            out.push(Candidate {
                range: window.clone(),
                kind: crate::FAILED_KIND,
                category: rule.category,
                priority: rule_idx,
            });
            return window.end;
        };
        let mut caps: Option<Captures> = None;
        let mut pos = window.start;
        let mut matched_until = 0;
        while pos < window.end {
            let input = Input::new(text).span(pos..window.end).anchored(anchored);
            let Some(m) = regex.search(&input) else {
                break;
            };
            if m.end() == window.end && window.end < len {
                window.end = (window.end + (window.end - window.start).max(rule.max_len)).min(len);
                continue;
            }
            matched_until = matched_until.max(m.end());
            // An anchored search tries the keyword position only.
            pos = if anchored == Anchored::Yes { window.end } else { m.end().max(m.start() + 1) };
            if let Check::Assignment { .. } = rule.check
                && !assignment_key_ok(text, m.start())
            {
                continue;
            }
            let value = value_regex.as_ref().and_then(|value_regex| {
                // The match ends with a terminator of 0 to 4 bytes (`$`, a
                // quote, `\n`, Unicode whitespace): the value is the longest
                // candidate the value regex matches whole.
                let start = assignment_value_start(text, m.start());
                (0..=4)
                    .filter_map(|t| m.end().checked_sub(t))
                    .filter(|end| *end > start)
                    .find(|end| text.get(start..*end).is_some_and(|v| value_regex.is_match(v)))
                    .map(|end| start..end)
            });
            let secret = if value.is_some() {
                value
            } else if *has_secret_group {
                let caps = caps.get_or_insert_with(|| regex.create_captures());
                let exact = Input::new(text).span(m.range()).anchored(Anchored::Yes);
                regex.search_captures(&exact, caps);
                caps.get_group_by_name("s").map(|span| span.range())
            } else {
                Some(m.range())
            };
            let Some(secret) = secret else { continue };
            let Some(value) = text.get(secret.clone()) else {
                continue;
            };
            if secret.is_empty() || is_placeholder(value) || !check_ok(rule.check, text, m.range(), &secret) {
                continue;
            }
            out.push(Candidate { range: secret, kind: rule.id, category: rule.category, priority: rule_idx });
        }
        matched_until
    }
}

/// Builds one overlapping keyword automaton. A DFA: it is searched many
/// times over short spans, where its start-up cost matters most.
fn keyword_set(list: &[(String, Vec<usize>)], insensitive: bool) -> Result<KeywordSet, BuildError> {
    let (words, rules): (Vec<String>, Vec<Vec<usize>>) = list.iter().cloned().unzip();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(insensitive)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&words)
        .map_err(|e| BuildError::Automaton { detail: e.to_string() })?;
    Ok(KeywordSet { ac, rules })
}
