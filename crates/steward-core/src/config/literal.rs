//! Literal secrets in text that belongs in version control: the config file
//! (refused at load) and every git-tracked file (`steward doctor`).
//!
//! Both use the redactor's secret rules through one shared, lazily built
//! scanner (building the rule set takes far longer than a scan), minus one
//! class of false positive: `credential = "social"` names a credential
//! section. The generic credential-assignment rule cannot know that, and
//! without this exception every config that injects a credential would be
//! refused. A value counts as such a name when a `[credentials.NAME]` header
//! of the same text declares it, or when it looks like a name rather than a
//! token: short and lower-case (a mistyped name then gets validation's
//! "credential is not defined" instead of a misleading "literal secret").
//! The same holds for an `[mcp.*] env` value `credential:NAME`, whatever
//! the variable is called (`SOCIAL_TOKEN = "credential:social"`).

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Rule id of the generic `credential = ...` assignment.
const CREDENTIAL_ASSIGNMENT: &str = "credential-assignment";

/// Undeclared values shorter than this, in lower case, digits, `_ . -`, are
/// taken for credential names: generated tokens are longer or mixed-case.
const MAX_NAME_LIKE_LEN: usize = 16;

/// The scanner: no known secrets, no PII, only the secret rules matter.
fn scanner() -> &'static redact::Redactor {
    static SCANNER: OnceLock<redact::Redactor> = OnceLock::new();
    SCANNER.get_or_init(|| redact::RedactorBuilder::new().build())
}

/// Secret-rule findings in `text`, in order, except references to
/// credentials the text itself declares.
pub fn find_literal_secrets(text: &str) -> Vec<redact::Finding> {
    let declared = declared_credentials(text);
    scanner()
        .find_secrets(text)
        .into_iter()
        .filter(|finding| {
            let value = text.get(finding.range.clone()).unwrap_or_default().trim_matches(['"', '\'']);
            let names_credential = |name: &str| declared.contains(name) || name_like(name);
            // `[mcp.*] env = { TOKEN = "credential:social" }` names one too, under any variable name.
            if let Some(name) = value.strip_prefix(crate::config::CREDENTIAL_REF_PREFIX) {
                return !names_credential(name);
            }
            !(finding.kind == CREDENTIAL_ASSIGNMENT && names_credential(value))
        })
        .collect()
}

/// Short, lower-case, the characters of a credential name.
fn name_like(value: &str) -> bool {
    value.len() < MAX_NAME_LIKE_LEN
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

/// Names of the `[credentials.NAME]` headers in `text` (bare or quoted, and
/// commented-out ones, whose references are commented out alike).
fn declared_credentials(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter_map(|line| {
            let header = line.trim().trim_start_matches('#').trim_start().strip_prefix('[')?.trim_start();
            let rest = header.strip_prefix("credentials")?.trim_start().strip_prefix('.')?;
            let name = rest.split(']').next()?.trim().trim_matches(['"', '\'']);
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_references_are_not_secrets_but_literals_are() {
        let token = format!("ghp_{}", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6");
        let text = format!(
            "[credentials.social]\nsource = \"env:SOCIAL\"\n[credentials.\"llm-key\"]\nsource = \"env:K\"\n\
             [upstreams.social]\ncredential = \"social\"\n[llm.x]\ncredential = \"llm-key\"\n\
             [upstreams.other]\ncredential = \"Zq8xW2vB7nM4kP1s\"\n# token = \"{token}\"\n\
             [upstreams.typo]\ncredential = \"socail\"\n[upstreams.long]\ncredential = \"a1b2c3d4e5f6a7b8c9d0\"\n"
        );
        let kinds: Vec<(String, &str)> =
            find_literal_secrets(&text).into_iter().map(|f| (f.kind.clone(), &text[f.range])).collect();
        assert!(kinds.iter().any(|(_, v)| v.contains("Zq8xW2vB7nM4kP1s")), "{kinds:?}");
        assert!(kinds.iter().any(|(_, v)| v.contains(&token)), "{kinds:?}");
        assert!(kinds.iter().any(|(_, v)| v.contains("a1b2c3d4e5f6a7b8c9d0")), "{kinds:?}");
        assert!(!kinds.iter().any(|(_, v)| ["social", "llm-key", "socail"].contains(v)), "{kinds:?}");
        let mcp = "[credentials.social]\nsource = \"env:S\"\n[mcp.s]\ncommand = [\"x\"]\n\
                   env = { SOCIAL_TOKEN = \"credential:social\", API_KEY = \"credential:other\" }\n";
        assert!(find_literal_secrets(mcp).is_empty(), "{:?}", find_literal_secrets(mcp));
    }
}
