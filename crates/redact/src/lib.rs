//! Pure, synchronous redaction engine: nothing steward writes (audit log,
//! agent logs, alerts, errors, backups) passes by without going through a
//! [`Redactor`].
//!
//! NOTE: this is the API skeleton; the full rule set lands with the redact work.

use std::borrow::Cow;
use std::ops::Range;

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

/// Builds a [`Redactor`].
#[derive(Debug, Default, Clone)]
pub struct RedactorBuilder {
    secrets: Vec<(String, String)>,
}

impl RedactorBuilder {
    /// All rules on, every PII detector on, no known secrets.
    pub fn new() -> Self {
        Self::default()
    }
    /// Registers a known secret value (and its encoded forms) under `name`.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.to_owned(), value.to_owned()));
        self
    }
    /// Switches one PII detector.
    pub fn pii(self, _kind: PiiKind, _enabled: bool) -> Self {
        self
    }
    /// Compiles the automata.
    pub fn build(self) -> Redactor {
        Redactor { secrets: self.secrets }
    }
}

/// A compiled, immutable redactor. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Every finding, non-overlapping, in order.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        for (_, value) in &self.secrets {
            if value.is_empty() {
                continue;
            }
            for (start, _) in text.match_indices(value.as_str()) {
                out.push(Finding {
                    kind: "credential".into(),
                    range: start..start + value.len(),
                    category: Category::KnownSecret,
                });
            }
        }
        out.sort_by_key(|f| f.range.start);
        out
    }
    /// Findings of the secret rules only (no PII, no known secrets): used to
    /// spot literal secrets in config files and git-tracked files.
    pub fn find_secrets(&self, text: &str) -> Vec<Finding> {
        self.find(text).into_iter().filter(|f| f.category == Category::Secret).collect()
    }
    /// `text` with every finding replaced by `[REDACTED:kind]`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let findings = self.find(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in findings {
            if f.range.start < last {
                continue;
            }
            out.push_str(&text[last..f.range.start]);
            out.push_str("[REDACTED:");
            out.push_str(&f.kind);
            out.push(']');
            last = f.range.end;
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }
    /// Redacts a JSON document in place: values under sensitive keys
    /// (authorization, api_key, token, password, secret, cookie, ...) are
    /// replaced whole, every other string goes through [`Redactor::redact`].
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }
}
