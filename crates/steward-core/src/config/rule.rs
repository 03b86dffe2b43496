//! The `match = "METHOD PATH"` syntax of a `[[tools]]` entry.
//!
//! Only the syntax is checked here; matching a request against a rule is the
//! `policy` module's job. Checking it at load time means a typo such as
//! `POTS /statuses` or `/users/{id` stops steward at startup instead of
//! silently never matching, which would leave the call to the `[unmatched]` policy.

/// Methods a rule may name, besides `*`. A fixed list, so a misspelt method
/// is refused rather than accepted as a method nobody sends.
pub(crate) const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];

/// A rule that does not parse: what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RuleError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

/// A parsed `METHOD PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    /// An entry of [`METHODS`] or `*`.
    pub method: String,
    /// Starts with `/`; segments are literal, `{name}`, or a final `{*name}`.
    pub path: String,
}

/// Parses `"POST /api/v1/statuses"`.
pub(super) fn parse_rule(text: &str) -> Result<Rule, RuleError> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [method, path] = parts.as_slice() else {
        return Err(RuleError {
            message: format!("match {text:?} is not METHOD PATH"),
            help: "write the method and the path separated by one space, like \
                   match = \"GET /api/v1/statuses/{id}\" (method * matches any)"
                .to_owned(),
        });
    };
    if *method != "*" && !METHODS.contains(method) {
        let upper = method.to_ascii_uppercase();
        let help = if METHODS.contains(&upper.as_str()) {
            format!("write the method in upper case: \"{upper} {path}\"")
        } else {
            format!("use one of {} or * for any method", METHODS.join(", "))
        };
        return Err(RuleError { message: format!("{method:?} in match {text:?} is not an HTTP method"), help });
    }
    check_path(path).map_err(|problem| RuleError {
        message: format!("path {path:?} in match {text:?} {problem}"),
        help: "a path starts with /, its segments are literal text or a whole {name}, and a \
               final {*rest} matches the remainder, like \"/api/v1/statuses/{id}\" or \
               \"/files/{*rest}\""
            .to_owned(),
    })?;
    Ok(Rule { method: (*method).to_owned(), path: (*path).to_owned() })
}

/// Checks the path pattern; the error completes the sentence "path X ...".
fn check_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("does not start with /".to_owned());
    };
    if path.contains(['?', '#']) {
        return Err("contains a query or fragment; rules match the path only".to_owned());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut names: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            if i == last {
                // A trailing slash is a literal part of the path.
                continue;
            }
            return Err("has an empty segment (//)".to_owned());
        }
        let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            if segment.contains(['{', '}']) {
                return Err(format!("has segment {segment:?}; a placeholder must be a whole segment like {{id}}"));
            }
            continue;
        };
        let (name, catch_all) = match inner.strip_prefix('*') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if catch_all && i != last {
            return Err(format!("has {segment:?} before the end; {{*name}} must be the last segment"));
        }
        if !is_identifier(name) {
            return Err(format!("has placeholder {segment:?}; names are letters, digits and _, like {{id}}"));
        }
        if names.contains(&name) {
            return Err(format!("uses the placeholder name {name:?} twice"));
        }
        names.push(name);
    }
    // Requests are matched on their canonical path; a pattern that is not one
    // (`..`, `\\`, `%2F`, `;`) could never match and would hide a typo.
    canonical_path::CanonicalPath::parse(path).map_err(|e| format!("can never match a request: {e}"))?;
    Ok(())
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, String) {
        let rule = parse_rule(text).unwrap();
        (rule.method, rule.path)
    }

    #[test]
    fn valid_rules() {
        assert_eq!(ok("POST /api/v1/statuses"), ("POST".into(), "/api/v1/statuses".into()));
        assert_eq!(ok("GET /api/v1/statuses/{id}"), ("GET".into(), "/api/v1/statuses/{id}".into()));
        assert_eq!(ok("* /files/{*rest}"), ("*".into(), "/files/{*rest}".into()));
        assert_eq!(ok("  DELETE   /a/{x}/b/{y_2}/  "), ("DELETE".into(), "/a/{x}/b/{y_2}/".into()));
        assert_eq!(ok("GET /"), ("GET".into(), "/".into()));
        assert_eq!(ok("GET /{*all}"), ("GET".into(), "/{*all}".into()));
    }

    #[test]
    fn invalid_rules_say_what_and_how() {
        for (text, needle) in [
            ("POST", "is not METHOD PATH"),
            ("POST /a /b", "is not METHOD PATH"),
            ("", "is not METHOD PATH"),
            ("POTS /a", "is not an HTTP method"),
            ("post /a", "is not an HTTP method"),
            ("GET a/b", "does not start with /"),
            ("GET /a?x=1", "query or fragment"),
            ("GET /a//b", "empty segment"),
            ("GET /v{version}", "must be a whole segment"),
            ("GET /a/{id", "must be a whole segment"),
            ("GET /{*rest}/more", "must be the last segment"),
            ("GET /{}", "names are letters"),
            ("GET /{1a}", "names are letters"),
            ("GET /{a-b}", "names are letters"),
            ("GET /{id}/{id}", "twice"),
            ("POST /echo/..\\api", "can never match"),
            ("GET /a/../b", "can never match"),
            ("GET /a%2Fb", "can never match"),
            ("GET /a;v=1", "can never match"),
        ] {
            let err = parse_rule(text).unwrap_err();
            assert!(err.message.contains(needle), "{text:?}: {}", err.message);
            assert!(!err.help.is_empty());
        }
        assert_eq!(parse_rule("post /a").unwrap_err().help, "write the method in upper case: \"POST /a\"");
    }
}
