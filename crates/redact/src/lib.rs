//! Pure, synchronous redaction engine: nothing steward writes (audit log,
//! agent logs, alerts, errors, backups) passes by without going through a
//! [`Redactor`].
//!
//! # Layout
//! - `known`: registered credential values and their
//!   encoded forms (base64, percent-encoding, JSON escaping).
//! - `rules`: the secret rule table (provider tokens, private keys,
//!   credential assignments), each rule with prefilter keywords and an
//!   example.
//! - `pii`: email, phone, card, IBAN, IP and SSN detectors with their
//!   validators (Luhn, mod-97, range checks).
//! - `scan`: the one-pass trigger scan and the windowed rule search.
//! - `checks`: post-match validation (placeholders, assignment keys and
//!   values).
//! - `resolve`: overlap resolution into non-overlapping findings.
//! - `decode`: decoded views (percent-encoding, JSON escapes) whose
//!   findings are mapped back onto the escaped bytes of the original.
//! - `json`: [`Redactor::redact_json`].
//! - `stream`: [`StreamRedactor`], redaction of text arriving in chunks.
//! - `scrub`: [`CredentialScrubber`] and [`ScrubStream`], removal of the
//!   loaded credential values alone from bytes relayed to the agent.
//!
//! Replacement text is always `[REDACTED:<kind>]`; such markers are never
//! redacted again, so `redact(redact(x)) == redact(x)`.
//!
//! ```
//! use redact::RedactorBuilder;
//!
//! let redactor = RedactorBuilder::new().secret("mastodon", "s3cr3t-mastodon-token").build();
//! let line = "posting with s3cr3t-mastodon-token as bob@example.com";
//! assert_eq!(
//!     redactor.redact(line),
//!     "posting with [REDACTED:credential] as [REDACTED:email]"
//! );
//! // Clean text is returned borrowed, without allocating.
//! assert!(matches!(redactor.redact("all clear"), std::borrow::Cow::Borrowed(_)));
//! ```
//!
//! # Performance
//! One lazy-DFA pass finds every *trigger* (rule keywords, the first bytes
//! of known-secret forms, PII shapes, existing markers); rule regexes then
//! run anchored at their keywords only. See `BENCHMARKS.md` for numbers.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

mod checks;
mod decode;
mod json;
mod known;
mod pii;
mod resolve;
mod rules;
mod scan;
mod scrub;
mod stream;

pub use scrub::{CredentialScrubber, SCRUBBER_FAILED_KIND, ScrubStream};
pub use stream::{DEFAULT_TAIL, MAX_HOLD, StreamRedactor};

/// Every form under which `value` is matched as a known secret: the value,
/// its base64 encodings (four alphabets, and the stable core at each byte
/// alignment inside a larger blob), percent-encodings, hex and JSON escapes.
/// Empty for values shorter than 4 bytes. For callers that must recognise a
/// secret without redacting text: the agent's environment hygiene, and
/// stripping the agent token from query strings.
pub fn encoded_forms(value: &str) -> Vec<String> {
    known::forms(value)
}

use scan::{Candidate, Engine};

/// Kind reported when the redactor could not be built: the whole text is
/// withheld (fail closed).
pub const FAILED_KIND: &str = "redactor-error";

/// Upper bound on extra redaction passes in [`Redactor::redact`]. Replacing
/// a match can create a boundary next to text that did not match before
/// (a token glued to a known secret becomes `[REDACTED:credential]AKIA...`);
/// a further pass catches it. Validators already treat text being redacted
/// as a boundary, so chains longer than one extra pass need contrived
/// input; the bound guarantees termination.
const MAX_EXTRA_PASSES: usize = 8;

/// What kind of thing a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The exact value (or an encoding of it) of a credential steward loaded.
    KnownSecret,
    /// Matches a provider-token / private-key / password rule.
    Secret,
    /// Personal data: email, phone, card, IBAN, IP, SSN.
    Pii,
}

/// PII detectors that can be switched on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    /// Email addresses.
    Email,
    /// Phone numbers.
    Phone,
    /// Card numbers (Luhn-checked).
    CreditCard,
    /// IBANs (mod-97 checked).
    Iban,
    /// IPv4 / IPv6 addresses.
    Ip,
    /// US social security numbers.
    Ssn,
}

/// One match in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Rule id, used in the replacement `[REDACTED:kind]`.
    pub kind: String,
    /// Byte range in the scanned text.
    pub range: Range<usize>,
    /// Broad class of the match.
    pub category: Category,
}

/// Why a [`Redactor`] could not be compiled. Messages never contain a
/// registered secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A rule's regex does not compile (a bug in the rule table).
    #[error("redaction rule `{id}` does not compile: {detail}")]
    Rule {
        /// The rule id.
        id: &'static str,
        /// The regex compiler's message.
        detail: String,
    },
    /// A built-in regex does not compile.
    #[error("redaction pattern does not compile: {detail}")]
    Regex {
        /// The regex compiler's message.
        detail: String,
    },
    /// The trigger scanner exceeded a size limit (too many or too long
    /// known secrets). Carries no detail: it would quote the secrets.
    #[error("redaction trigger automaton is too large; register fewer or shorter secrets")]
    TooLarge,
    /// An Aho-Corasick automaton could not be built.
    #[error("redaction automaton could not be built: {detail}")]
    Automaton {
        /// The builder's message (pattern ids only, never contents).
        detail: String,
    },
}

/// Builds a [`Redactor`].
#[derive(Default, Clone)]
pub struct RedactorBuilder {
    /// `(name, value)` of each registered credential; names only ever
    /// appear in `Debug` output, values never do.
    secrets: Vec<(String, String)>,
    /// PII detectors switched off; everything is on by default.
    disabled_pii: HashSet<PiiKind>,
}

impl fmt::Debug for RedactorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.secrets.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RedactorBuilder").field("secrets", &names).field("disabled_pii", &self.disabled_pii).finish()
    }
}

impl RedactorBuilder {
    /// All rules on, every PII detector on, no known secrets.
    pub fn new() -> Self {
        Self::default()
    }
    /// Registers a known secret value (and its encoded forms) under `name`.
    /// Values shorter than 4 bytes are ignored: they would match ordinary
    /// text everywhere and protect nothing.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.to_owned(), value.to_owned()));
        self
    }
    /// Switches one PII detector.
    pub fn pii(mut self, kind: PiiKind, enabled: bool) -> Self {
        if enabled {
            self.disabled_pii.remove(&kind);
        } else {
            self.disabled_pii.insert(kind);
        }
        self
    }
    /// Compiles the automata, reporting why if that fails.
    pub fn try_build(self) -> Result<Redactor, BuildError> {
        let mut defs: Vec<(rules::RuleDef, Category)> =
            rules::all().into_iter().map(|r| (r, Category::Secret)).collect();
        if !self.disabled_pii.contains(&PiiKind::Email) {
            defs.push((pii::email_rule(), Category::Pii));
        }
        let pii: Vec<pii::PiiPattern> =
            pii::PiiPattern::ALL.into_iter().filter(|p| !self.disabled_pii.contains(&p.pii_kind())).collect();
        let mut forms: Vec<String> = self.secrets.iter().flat_map(|(_, v)| known::forms(v)).collect();
        forms.sort();
        forms.dedup();
        let engine = Engine::new(defs, &pii, &forms, &[known::KNOWN_KIND, json::JSON_KEY_KIND, FAILED_KIND, "email"])?;
        let singles = decode::Singles::for_secrets(self.secrets.iter().map(|(_, v)| v.as_str()));
        Ok(Redactor { engine: Some(Box::new(engine)), secrets: self.secrets.len(), singles })
    }
    /// Compiles the automata. Never panics: if compilation fails (a bug, or
    /// an absurd number of secrets), the redactor fails closed and withholds
    /// every text whole as `[REDACTED:redactor-error]`. Use
    /// [`RedactorBuilder::try_build`] to see the error.
    pub fn build(self) -> Redactor {
        let secrets = self.secrets.len();
        self.try_build().unwrap_or(Redactor { engine: None, secrets, singles: decode::Singles::default() })
    }
}

/// A compiled, immutable redactor. Cheap to share behind an `Arc`.
pub struct Redactor {
    /// `None` when compilation failed: every text is withheld.
    pub(crate) engine: Option<Box<Engine>>,
    /// Number of registered secrets (for `Debug` only; values are not kept).
    secrets: usize,
    /// Which single-scheme decoded views the registered secrets need.
    singles: decode::Singles,
}

impl Default for Redactor {
    /// Every rule and PII detector, no known secrets.
    fn default() -> Self {
        RedactorBuilder::new().build()
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rule_count())
            .field("known_secrets", &self.secrets)
            .field("failed", &self.engine.is_none())
            .finish()
    }
}

impl Redactor {
    /// A redactor that withholds every non-empty text whole as
    /// `[REDACTED:redactor-error]`, as a redactor that failed to build does;
    /// it builds nothing, so it costs nothing. For a handle that is not
    /// meant to write free text at all (a read-only command's store): a
    /// write that happens anyway fails closed instead of storing text that
    /// was never checked.
    pub fn withhold_all() -> Self {
        Redactor { engine: None, secrets: 0, singles: decode::Singles::default() }
    }

    /// Number of secret rules (provider tokens, keys, assignments).
    pub fn rule_count(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.rule_count(Category::Secret))
    }

    /// Runs every secret rule's built-in example through this redactor and
    /// returns the ids of the rules whose example was not reported under
    /// that rule's id. Empty means healthy; `steward doctor` calls this.
    pub fn self_check(&self) -> Vec<&'static str> {
        rules::all()
            .into_iter()
            .filter(|rule| {
                let example = (rule.example)();
                !self.find_secrets(&example).iter().any(|f| f.kind == rule.id)
            })
            .map(|rule| rule.id)
            .collect()
    }

    /// Whether compilation failed and every text is being withheld.
    pub fn is_failed(&self) -> bool {
        self.engine.is_none()
    }

    /// Every finding, non-overlapping, in order.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        self.find_with(text, false)
    }

    /// Findings of the secret rules only (no PII, no known secrets): used to
    /// spot literal secrets in config files and git-tracked files.
    pub fn find_secrets(&self, text: &str) -> Vec<Finding> {
        self.find_with(text, true)
    }

    fn find_with(&self, text: &str, secrets_only: bool) -> Vec<Finding> {
        let Some(engine) = &self.engine else {
            let withheld = format!("[REDACTED:{FAILED_KIND}]");
            if text.is_empty() || text == withheld {
                return Vec::new();
            }
            return vec![Finding { kind: FAILED_KIND.to_owned(), range: 0..text.len(), category: Category::Secret }];
        };
        let mut raw = engine.scan(text, secrets_only);
        // A secret written with escapes (`%43ANARY...`) is found in a
        // decoded view; its finding covers the escaped bytes here, and
        // competes with the direct findings in one resolution.
        for view in decode::views(text, self.singles) {
            for found in resolve::resolve(&view.text, engine.scan(&view.text, secrets_only)) {
                let Some(range) = view.original(&found.range) else { continue };
                match found.category {
                    Category::KnownSecret => raw.known.push(range),
                    category => {
                        raw.candidates.push(Candidate { range, kind: found.kind, category, priority: usize::MAX });
                    }
                }
            }
        }
        resolve::resolve(text, raw)
            .into_iter()
            .map(|r| Finding { kind: r.kind.to_owned(), range: r.range, category: r.category })
            .collect()
    }

    /// `text` with every finding replaced by `[REDACTED:kind]`. Returns the
    /// input borrowed, without allocating, when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let findings = self.find(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = apply(text, &findings);
        for _ in 0..MAX_EXTRA_PASSES {
            let again = self.find(&out);
            if again.is_empty() {
                break;
            }
            out = apply(&out, &again);
        }
        Cow::Owned(out)
    }

    /// [`Redactor::redact`] for bytes that may not be UTF-8: each valid
    /// UTF-8 run is redacted, invalid bytes pass through unchanged.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return match self.redact(text) {
                Cow::Borrowed(_) => Cow::Borrowed(bytes),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            };
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut changed = false;
        for chunk in bytes.utf8_chunks() {
            match self.redact(chunk.valid()) {
                Cow::Borrowed(s) => out.extend_from_slice(s.as_bytes()),
                Cow::Owned(s) => {
                    changed = true;
                    out.extend_from_slice(s.as_bytes());
                }
            }
            out.extend_from_slice(chunk.invalid());
        }
        if changed { Cow::Owned(out) } else { Cow::Borrowed(bytes) }
    }
}

/// Replaces each (sorted, non-overlapping) finding with its marker.
fn apply(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len() + findings.len() * 16);
    let mut last = 0;
    for f in findings {
        if f.range.start < last {
            continue;
        }
        out.push_str(text.get(last..f.range.start).unwrap_or_default());
        out.push_str("[REDACTED:");
        out.push_str(&f.kind);
        out.push(']');
        last = f.range.end;
    }
    out.push_str(text.get(last..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests;
