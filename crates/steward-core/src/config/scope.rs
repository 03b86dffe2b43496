//! Scope patterns of `[policy] forbidden_scopes`: an exact scope (`admin`),
//! a prefix glob (`admin:*`) or `*` (any scope at all).
//!
//! Deliberately small: providers name scopes in different styles
//! (`write:statuses`, `repo`, `https://www.googleapis.com/auth/gmail.send`),
//! and an operator writing a deny list needs exact names and prefixes, not a
//! pattern language. Matching is ASCII case-insensitive, because providers
//! are inconsistent about case and a deny list must not be dodged by it.

/// Whether `pattern` matches `scope`.
pub fn scope_matches(pattern: &str, scope: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            scope.len() >= prefix.len() && scope.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        }
        None => pattern.eq_ignore_ascii_case(scope),
    }
}

/// The first of `patterns` that forbids `scope`, if any.
pub fn forbidden_by<'a>(patterns: &'a [String], scope: &str) -> Option<&'a str> {
    patterns.iter().map(String::as_str).find(|pattern| scope_matches(pattern, scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_star() {
        assert!(scope_matches("admin", "admin"));
        assert!(scope_matches("admin", "ADMIN"));
        assert!(!scope_matches("admin", "admin:read"));
        assert!(scope_matches("admin:*", "admin:read"));
        assert!(scope_matches("admin:*", "admin:"));
        assert!(!scope_matches("admin:*", "admin"));
        assert!(!scope_matches("admin:*", "read:admin"));
        assert!(scope_matches("*", "write:statuses"));
        let forbidden = vec!["admin".to_owned(), "admin:*".to_owned()];
        assert_eq!(forbidden_by(&forbidden, "admin:org"), Some("admin:*"));
        assert_eq!(forbidden_by(&forbidden, "write:statuses"), None);
    }
}
