//! Deterministic fake token material for rule examples and tests. Tokens are
//! assembled at run time so the repository itself holds nothing that looks
//! like a live secret to scanners.

/// Lower-case letters and digits.
pub(crate) const LOWER_ALNUM: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
/// Letters of both cases and digits.
pub(crate) const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Upper-case letters and digits.
pub(crate) const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Lower-case hex digits.
pub(crate) const HEX: &str = "0123456789abcdef";
/// Decimal digits.
pub(crate) const DIGITS: &str = "0123456789";
/// URL-safe base64 alphabet.
pub(crate) const B64URL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
/// Standard base64 alphabet.
pub(crate) const B64: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";

/// `n` characters drawn from `alphabet` by a fixed-seed generator: varied
/// enough to look random, identical on every run.
pub(crate) fn chars(alphabet: &str, n: usize, seed: u64) -> String {
    let pool: Vec<char> = alphabet.chars().collect();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = String::with_capacity(n);
    for _ in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let idx = usize::try_from(state % pool.len().max(1) as u64).unwrap_or(0);
        if let Some(c) = pool.get(idx) {
            out.push(*c);
        }
    }
    out
}

/// `n` mixed-case alphanumerics.
pub(crate) fn alnum(n: usize, seed: u64) -> String {
    chars(ALNUM, n, seed)
}

/// `n` lower-case hex digits.
pub(crate) fn hex(n: usize, seed: u64) -> String {
    chars(HEX, n, seed)
}

/// A UUID-shaped string of lower-case hex.
pub(crate) fn uuid(seed: u64) -> String {
    format!("{}-{}-{}-{}-{}", hex(8, seed), hex(4, seed + 1), hex(4, seed + 2), hex(4, seed + 3), hex(12, seed + 4))
}
