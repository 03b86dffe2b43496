//! `[store]`: absent is the embedded store; `url` makes a fleet's, with its
//! defaults; every mistake points at the value and names the fix.

use std::time::Duration;

use super::tests::{MINIMAL, err, ok, render};
use super::*;

#[test]
fn without_store_url_the_store_is_the_embedded_file() {
    assert!(ok(MINIMAL).store.fleet.is_none());
    assert!(ok(&format!("{MINIMAL}[store]\n")).store.fleet.is_none());
}

#[test]
fn store_url_makes_a_fleet_with_its_defaults() {
    let c = ok(&format!("{MINIMAL}[store]\nurl = \"env:STEWARD_STORE_URL\"\n"));
    let fleet = c.store.fleet.unwrap();
    assert_eq!(fleet.url, CredentialSource::Env("STEWARD_STORE_URL".into()));
    assert!(!fleet.instance.is_empty(), "the instance defaults to the host name");
    assert!(fleet.instance.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
    assert_eq!((fleet.pool, fleet.lease), (8, Duration::from_secs(30)));
    let c = ok(&format!(
        "{MINIMAL}[store]\nurl = \"file:/etc/steward/store.url\"\ninstance = \"web-2\"\npool = 4\nlease = \"10s\"\n"
    ));
    let fleet = c.store.fleet.as_ref().unwrap();
    assert_eq!((fleet.instance.as_str(), fleet.pool, fleet.lease), ("web-2", 4, Duration::from_secs(10)));
    // The URL is a secret reference: resolved, and so redacted, like one.
    assert!(
        crate::outbound::secret_references(&c).iter().any(|(label, _)| label == STORE_URL_LABEL),
        "the store URL is among the references steward resolves"
    );
}

#[test]
fn every_store_mistake_points_at_the_value_and_says_the_fix() {
    let cases = [
        (
            "url = \"postgresql://steward:hunter2@db:5432/steward\"\n",
            "url is written literally; it carries a secret and must be a reference",
            "STEWARD_STORE_URL",
        ),
        (
            "url = \"env:U\"\ninstance = \"web 1\"\n",
            "is not a name of 1 to 63 letters, digits, _ . -",
            "instance = \"web-1\"",
        ),
        ("url = \"env:U\"\npool = 0\n", "[store] pool 0 is not between 1 and 256", "pool = 8"),
        ("url = \"env:U\"\nlease = \"2s\"\n", "[store] lease 2s is under 5 s", "lease = \"30s\""),
        ("instance = \"web-1\"\n", "[store] instance is set but [store] url is not", "url = \"env:STEWARD_STORE_URL\""),
        ("pool = 3\n", "[store] pool is set but [store] url is not", "embedded store has one instance"),
        ("urll = \"env:U\"\n", "unknown key `urll` in [store]", "url"),
    ];
    for (body, message, help) in cases {
        let text = render(&err(&format!("{MINIMAL}[store]\n{body}")));
        assert!(text.contains(message), "{body}: {text}");
        assert!(text.contains(help), "{body}: {text}");
        assert!(!text.contains("hunter2"), "the literal password is masked: {text}");
    }
}
