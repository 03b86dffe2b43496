//! The secret rule table: one [`RuleDef`] per provider token format,
//! private-key block or credential assignment, each with the literal
//! keywords that must occur near a match (the prefilter) and a generated
//! positive example (checked by the tests).
//!
//! Ids and most regexes are adapted from gitleaks' MIT-licensed default
//! config. Regexes are written for `regex-automata`; `\b` is rewritten to
//! the ASCII word boundary at compile time so the lazy DFA never has to give
//! up on non-ASCII text.

mod context;
pub(crate) mod fake;
mod tokens;

/// Extra validation a regex match must pass before it becomes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The regex is specific enough on its own.
    None,
    /// A `key = value` assignment: the value must be a plausible secret (see
    /// [`crate::scan::assignment_value_ok`]); `digits_ok` admits all-digit
    /// values (PINs, numeric passwords) which for tokens are usually counts.
    Assignment {
        /// Whether an all-digit value counts as a secret.
        digits_ok: bool,
    },
    /// The value must mix at least two character classes (lower, upper,
    /// digit, symbol), so `Bearer authentication` in prose is left alone.
    Mixed,
    /// An email address, unless it is the userinfo of a URL
    /// (`https://key@host`), which the URL and DSN rules own.
    Email,
}

/// One secret rule.
#[derive(Debug, Clone)]
pub(crate) struct RuleDef {
    /// Rule id, used as the finding kind and in `[REDACTED:<id>]`.
    pub id: &'static str,
    /// Literals of which at least one occurs in every match (or within
    /// `lookbehind` bytes before it); the rule's regex only runs near them.
    pub keywords: &'static [&'static str],
    /// Whether the keywords are matched case-sensitively. Used for short
    /// upper-case prefixes (`SK`, `AC`) that would otherwise fire on every
    /// "task" or "access" in prose.
    pub case_sensitive: bool,
    /// The regex. A named group `s`, when present, is the part redacted
    /// (the value of an assignment); otherwise the whole match is.
    pub pattern: String,
    /// How many bytes before a keyword a match may start.
    pub lookbehind: usize,
    /// How many bytes after a keyword's start the rule's regex is given. A
    /// match that reaches the end of that window is retried with a larger
    /// one, so this bounds work, not match length.
    pub max_len: usize,
    /// Post-match validation.
    pub check: Check,
    /// For assignment rules, the value part of the pattern on its own.
    pub value: Option<String>,
    /// Whether the pattern is an [`assignment_pattern`]: the scanner then
    /// skips keywords not followed by an assignment operator without
    /// running the regex.
    pub assignment: bool,
    /// Builds a fake token this rule must match (tests, `doctor`).
    pub example: fn() -> String,
}

/// Window given to prefix-token rules: comfortably above every bounded
/// token format in the table.
const DEFAULT_MAX_LEN: usize = 512;

impl RuleDef {
    /// A rule whose match starts at (or just before) its keyword.
    pub(crate) fn token(
        id: &'static str,
        keywords: &'static [&'static str],
        pattern: &str,
        example: fn() -> String,
    ) -> Self {
        Self {
            id,
            keywords,
            case_sensitive: false,
            pattern: pattern.to_owned(),
            lookbehind: 0,
            max_len: DEFAULT_MAX_LEN,
            check: Check::None,
            value: None,
            assignment: false,
            example,
        }
    }

    /// A `<provider key name> = <value>` rule: the key must contain one of
    /// the keywords (alternatives in `key`), the value must match `value`.
    /// Only the value is redacted.
    pub(crate) fn context(
        id: &'static str,
        keywords: &'static [&'static str],
        key: &str,
        value: &str,
        example: fn() -> String,
    ) -> Self {
        Self {
            id,
            keywords,
            case_sensitive: false,
            pattern: assignment_pattern(key, value),
            lookbehind: 0,
            max_len: DEFAULT_MAX_LEN,
            check: Check::None,
            value: Some(value.to_owned()),
            assignment: true,
            example,
        }
    }

    /// Matches the keywords case-sensitively.
    pub(crate) fn case_sensitive(mut self) -> Self {
        self.case_sensitive = true;
        self
    }

    /// Sets how far before a keyword a match may start.
    pub(crate) fn behind(mut self, bytes: usize) -> Self {
        self.lookbehind = bytes;
        self
    }

    /// Sets the initial search window after a keyword.
    pub(crate) fn max_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// Sets the post-match validation.
    pub(crate) fn check(mut self, check: Check) -> Self {
        self.check = check;
        self
    }
}

/// The shared shape of assignment rules (as in gitleaks): key (with up to 25
/// more identifier characters, e.g. `_API_KEY`), optional closing quote,
/// an assignment operator, optional opening quote, the value in group `s`,
/// then a terminator so a prefix of a longer word is not taken.
pub(crate) fn assignment_pattern(key: &str, value: &str) -> String {
    format!(
        r#"(?i)(?:{key})[\w.-]{{0,25}}["'`]?[ \t]{{0,3}}(?:=|:=|:|=>)[ \t]{{0,3}}["'`]?(?P<s>{value})(?:["'`\s;,}}\])<&]|\\[nrt"]|$)"#
    )
}

/// Every rule, most specific first: on identical spans the earlier rule's
/// id is reported.
pub(crate) fn all() -> Vec<RuleDef> {
    let mut rules = tokens::rules();
    rules.extend(context::rules());
    rules
}

#[cfg(test)]
mod tests;
