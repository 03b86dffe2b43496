//! PII detectors: email, phone, card (Luhn), IBAN (mod-97), IPv4/IPv6 and
//! US SSN. Each is a loose regex (part of the one-pass trigger scan, or for
//! email a keyword rule on `@`) followed by a strict validator here, so
//! timestamps, ids, digests and version strings are rejected cheaply.

use std::ops::Range;
use std::str::FromStr as _;

use crate::PiiKind;
use crate::rules::{Check, RuleDef};

/// A PII pattern run in the trigger scan. Several patterns can serve one
/// [`PiiKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PiiPattern {
    /// `+` followed by a country code and 8–15 digits in total.
    PhoneIntl,
    /// North American `(555) 123-4567`, `555-123-4567`, `555.123.4567`.
    PhoneUs,
    /// 13–19 digits, optionally grouped by spaces or dashes.
    Card,
    /// Two letters, two check digits, up to 30 alphanumerics.
    Iban,
    /// Dotted quad.
    Ipv4,
    /// Full or `::`-compressed IPv6.
    Ipv6,
    /// `123-45-6789`.
    Ssn,
}

impl PiiPattern {
    /// Finding kind, used in `[REDACTED:<kind>]`.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::PhoneIntl | Self::PhoneUs => "phone",
            Self::Card => "credit-card",
            Self::Iban => "iban",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Ssn => "ssn",
        }
    }

    /// The switch this pattern belongs to.
    pub(crate) fn pii_kind(self) -> PiiKind {
        match self {
            Self::PhoneIntl | Self::PhoneUs => PiiKind::Phone,
            Self::Card => PiiKind::CreditCard,
            Self::Iban => PiiKind::Iban,
            Self::Ipv4 | Self::Ipv6 => PiiKind::Ip,
            Self::Ssn => PiiKind::Ssn,
        }
    }

    /// Every pattern, in trigger-scan priority order.
    pub(crate) const ALL: [PiiPattern; 7] =
        [Self::Card, Self::Iban, Self::Ssn, Self::PhoneUs, Self::PhoneIntl, Self::Ipv6, Self::Ipv4];

    /// The loose regex (before `\b` rewriting).
    pub(crate) fn regex(self) -> &'static str {
        match self {
            Self::PhoneIntl => r"\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{1,4}){1,5}\b",
            Self::PhoneUs => r"(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}\b",
            Self::Card => r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
            Self::Iban => r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,34}\b",
            Self::Ipv4 => {
                r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\b"
            }
            Self::Ipv6 => {
                r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b|\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6}::[0-9A-Fa-f:.]{0,45}|(?-u:\B)::[0-9A-Fa-f:.]{0,45}"
            }
            Self::Ssn => r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        }
    }

    /// Validates a trigger match; returns the range to redact (possibly
    /// shorter than the match) or `None` to discard it.
    pub(crate) fn validate(self, text: &str, m: Range<usize>) -> Option<Range<usize>> {
        let bytes = text.as_bytes();
        let cand = text.get(m.clone())?;
        let before = m.start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
        let after = bytes.get(m.end).copied();
        let after2 = bytes.get(m.end + 1).copied();
        let digit_follows_sep = matches!(after, Some(b'-' | b'.')) && after2.is_some_and(|b| b.is_ascii_digit());
        let ok = match self {
            Self::PhoneIntl => {
                let digits = cand.bytes().filter(u8::is_ascii_digit).count();
                (8..=15).contains(&digits)
                    && !before.is_some_and(|b| b.is_ascii_alphanumeric() || b"+/=_".contains(&b))
                    && !after.is_some_and(|b| b.is_ascii_digit())
            }
            Self::PhoneUs => {
                let seps: Vec<u8> = cand.bytes().filter(|b| b"-. ".contains(b)).collect();
                let consistent = cand.starts_with('(') || seps.windows(2).all(|w| w[0] == w[1]);
                consistent
                    && !digit_follows_sep
                    && !before.is_some_and(|b| b.is_ascii_alphanumeric() || b"-.+/".contains(&b))
            }
            Self::Card => valid_card(cand) && !digit_follows_sep && before != Some(b'.'),
            Self::Iban => return iban_end(text, m.start).map(|end| m.start..end),
            Self::Ipv4 => !matches!(before, Some(b'.')) && !digit_follows_sep,
            Self::Ipv6 => return ipv6_range(text, m),
            Self::Ssn => valid_ssn(cand) && !digit_follows_sep && !matches!(before, Some(b'-' | b'.')),
        };
        ok.then_some(m)
    }
}

/// The email detector, run like a secret rule on the `@` keyword.
#[rustfmt::skip]
pub(crate) fn email_rule() -> RuleDef {
    RuleDef::token(
        "email",
        &["@"],
        r"\b[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
        || "Contact jane.doe+steward@example.co.uk for access".to_owned(),
    )
    .behind(64)
    .max_len(320)
    .check(Check::Email)
}

/// Luhn checksum over ASCII digits (separators skipped).
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A card number: consistent grouping, a known issuer prefix with a length
/// that issuer uses, and a valid Luhn checksum. Millisecond timestamps and
/// most numeric ids fail the issuer check.
fn valid_card(cand: &str) -> bool {
    let digits: Vec<u8> = cand.bytes().filter(u8::is_ascii_digit).collect();
    let seps: Vec<u8> = cand.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    if let Some(&sep) = seps.first() {
        let groups: Vec<usize> = cand.split(char::from(sep)).map(str::len).collect();
        let Some((last, init)) = groups.split_last() else {
            return false;
        };
        if init.iter().any(|g| *g != 4 && *g != 6) || !(1..=6).contains(last) {
            return false;
        }
    }
    let n = digits.len();
    let prefix = |k: usize| -> u32 { digits.iter().take(k).fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')) };
    let issuer_ok = match digits.first() {
        Some(b'4') => matches!(n, 13 | 16 | 19),
        Some(b'5') => {
            (51..=55).contains(&prefix(2)) && n == 16 || matches!(prefix(2), 50 | 56..=58) && (12..=19).contains(&n)
        }
        Some(b'2') => (2221..=2720).contains(&prefix(4)) && n == 16,
        Some(b'3') => match prefix(2) {
            34 | 37 => n == 15,
            35 => (16..=19).contains(&n),
            30 | 36 | 38 | 39 => (14..=16).contains(&n),
            _ => false,
        },
        Some(b'6') => (16..=19).contains(&n),
        _ => false,
    };
    issuer_ok && luhn(&digits)
}

/// US SSN with the never-issued ranges excluded: area 000, 666 and 900–999,
/// group 00, serial 0000.
fn valid_ssn(cand: &str) -> bool {
    let mut parts = cand.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let area: u32 = area.parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != "00" && serial != "0000"
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// Where the IBAN starting at `start` ends, if it has its country's length
/// (spaces allowed between characters), is followed by a non-alphanumeric,
/// and passes the mod-97 check.
fn iban_end(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let country = text.get(start..start + 2)?;
    let want = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?.1;
    let mut chars: Vec<u8> = Vec::with_capacity(want);
    let mut end = start;
    while chars.len() < want {
        match bytes.get(end) {
            Some(b) if b.is_ascii_uppercase() || b.is_ascii_digit() => chars.push(*b),
            Some(b' ') if !chars.is_empty() => {}
            _ => return None,
        }
        end += 1;
    }
    if bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    chars.rotate_left(4);
    let mut rem = 0u32;
    for c in chars {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    (rem == 1).then_some(end)
}

/// Trims a loose IPv6 candidate and accepts it if it parses, is delimited
/// by non-address characters, and is written in a form that cannot be a
/// timestamp or MAC address (`::` or all eight groups).
fn ipv6_range(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let bytes = text.as_bytes();
    let mut end = m.end;
    while end > m.start + 2 && matches!(bytes.get(end - 1), Some(b':' | b'.')) && text.get(end - 2..end) != Some("::") {
        end -= 1;
    }
    let cand = text.get(m.start..end)?;
    let before = m.start.checked_sub(1).and_then(|i| bytes.get(i));
    let after = bytes.get(end);
    let delimited = !before.is_some_and(|b| b.is_ascii_alphanumeric() || b":._-".contains(b))
        && !after.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b':' || *b == b'_');
    let shaped = cand.contains("::") || cand.bytes().filter(|b| *b == b':').count() == 7;
    let has_digit = cand.bytes().any(|b| b.is_ascii_hexdigit());
    (delimited && shaped && has_digit && std::net::Ipv6Addr::from_str(cand).is_ok()).then_some(m.start..end)
}

#[cfg(test)]
mod tests;
