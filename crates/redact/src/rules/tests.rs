use std::collections::HashSet;

use super::*;
use crate::RedactorBuilder;
use crate::scan::{ascii_boundaries, compile};

#[test]
fn table_has_at_least_100_rules_with_unique_ids() {
    let rules = all();
    assert!(rules.len() >= 100, "only {} rules", rules.len());
    let ids: HashSet<&str> = rules.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rules.len(), "duplicate rule ids");
    assert_eq!(RedactorBuilder::new().build().rule_count(), rules.len());
}

/// Rules compile on their first keyword hit; every built-in one must
/// compile (with the email rule and a known secret in the same engine).
#[test]
fn every_rule_compiles() {
    let redactor = RedactorBuilder::new().secret("canary", "canary-0123456789").build();
    let engine = redactor.engine.as_ref().map(|e| e.compile_all());
    assert!(matches!(engine, Some(Ok(()))), "{engine:?}");
}

#[test]
fn every_rule_has_keywords_that_occur_in_its_example() {
    for rule in all() {
        assert!(!rule.keywords.is_empty(), "{} has no keywords", rule.id);
        let example = (rule.example)();
        assert!(
            rule.keywords.iter().any(|kw| if rule.case_sensitive {
                example.contains(kw)
            } else {
                example.to_ascii_lowercase().contains(&kw.to_ascii_lowercase())
            }),
            "{}: no keyword in example",
            rule.id
        );
    }
}

#[test]
fn every_rule_regex_matches_its_example() {
    for rule in all() {
        let re = compile(&[ascii_boundaries(&rule.pattern)]).unwrap_or_else(|e| panic!("{}: {e}", rule.id));
        let example = (rule.example)();
        assert!(re.is_match(&example), "{}: regex does not match {example:?}", rule.id);
    }
}

#[test]
fn every_example_is_reported_under_its_own_rule() {
    let r = crate::tests::plain();
    assert!(r.try_build_ok(), "redactor failed to build");
    assert_eq!(r.self_check(), Vec::<&str>::new());
}

#[test]
fn every_example_is_redacted_and_leaves_no_secret_behind() {
    let r = crate::tests::plain();
    for rule in all() {
        let example = (rule.example)();
        let re = compile(&[ascii_boundaries(&rule.pattern)]).unwrap();
        let mut caps = re.create_captures();
        re.captures(example.as_str(), &mut caps);
        let secret_span = caps.get_group_by_name("s").or_else(|| caps.get_group(0)).unwrap();
        let secret = &example[secret_span.range()];
        let out = r.redact(&example);
        assert!(!out.contains(secret), "{}: {secret:?} survived in {out:?}", rule.id);
        assert!(out.contains(&format!("[REDACTED:{}]", rule.id)), "{}: {out}", rule.id);
    }
}

impl crate::Redactor {
    fn try_build_ok(&self) -> bool {
        !self.is_failed()
    }
}
