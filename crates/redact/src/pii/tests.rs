use crate::PiiKind;

use super::*;

fn pii_kinds(text: &str) -> Vec<String> {
    let r = crate::tests::plain();
    r.find(text).into_iter().filter(|f| f.category == crate::Category::Pii).map(|f| f.kind).collect()
}

fn only(text: &str) -> Option<String> {
    let k = pii_kinds(text);
    assert!(k.len() <= 1, "{text}: {k:?}");
    k.into_iter().next()
}

#[test]
fn luhn_checksum() {
    assert!(luhn(b"4111111111111111"));
    assert!(luhn(b"79927398713"));
    assert!(!luhn(b"4111111111111112"));
    assert!(!luhn(b""));
}

#[test]
fn cards() {
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "6011111111111117",
        "2223000048400011",
    ] {
        assert_eq!(only(&format!("paid with {card} today")).as_deref(), Some("credit-card"), "{card}");
    }
    for not in [
        "4111111111111112",       // Luhn fails
        "1731600000000",          // epoch millis
        "4111 1111-1111 1111",    // mixed separators
        "9111111111111111",       // no such issuer
        "1234567890123456789012", // too long
    ] {
        assert_eq!(only(&format!("value {not} here")), None, "{not}");
    }
}

#[test]
fn ibans() {
    for iban in [
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
    ] {
        assert_eq!(only(&format!("pay to {iban}.")).as_deref(), Some("iban"), "{iban}");
    }
    assert_eq!(only("pay to DE89370400440532013001."), None);
    // Slovak IBANs start with `SK`, which is also a (Twilio) keyword.
    assert_eq!(only("pay to SK31 1200 0000 1987 4263 7541 ok").as_deref(), Some("iban"));
    assert_eq!(only("pay to ZZ89370400440532013000."), None);
    // Trailing upper-case words do not break detection.
    let k = pii_kinds("IBAN DE89 3704 0044 0532 0130 00 THANKS");
    assert_eq!(k, vec!["iban"]);
}

#[test]
fn ip_addresses() {
    assert_eq!(only("from 192.168.1.20:443").as_deref(), Some("ipv4"));
    assert_eq!(only("client=10.0.0.1,").as_deref(), Some("ipv4"));
    assert_eq!(only("listening on 127.0.0.1:7600"), None, "loopback names no one");
    assert_eq!(only("bind 0.0.0.0:80"), None);
    assert_eq!(only("version 1.2.3.4.5"), None);
    assert_eq!(only("bad 256.1.1.1"), None);
    for v6 in
        ["2001:db8::1", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::ffff:192.0.2.128"]
    {
        assert_eq!(only(&format!("addr {v6} up")).as_deref(), Some("ipv6"), "{v6}");
    }
    // `::1` is loopback: names no one, so it stays readable (like 127.0.0.1).
    for not in ["10:30:00", "00:1a:2b:3c:4d:5e", "std::io::Error", "Vec::new()", "[::]:8080 is all", "::1"] {
        let k = pii_kinds(&format!("x {not} y"));
        assert!(k.is_empty() || not.starts_with("[::]"), "{not}: {k:?}");
    }
}

#[test]
fn ssns() {
    assert_eq!(only("ssn 123-45-6789").as_deref(), Some("ssn"));
    for not in ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "2024-123-45-6789"] {
        assert_eq!(only(&format!("ssn {not} x")), None, "{not}");
    }
}

#[test]
fn phones() {
    for phone in [
        "+44 20 7946 0958",
        "+1 (415) 555-2671",
        "+33 6 12 34 56 78",
        "+4915112345678",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
    ] {
        assert_eq!(only(&format!("call {phone} now")).as_deref(), Some("phone"), "{phone}");
    }
    for not in [
        "2026-11-14 10:30:00",
        "+01:00",
        "+12345",
        "abc+12345678901/xyz",
        "version 415-555-26710",
        "id 123-456-7890-12",
        "2.0.415.555.2671",
    ] {
        assert_eq!(only(&format!("x {not} y")), None, "{not}");
    }
}

#[test]
fn emails() {
    for email in ["bob@example.com", "jane.doe+tag@mail.example.co.uk", "x_y-z@sub-domain.io"] {
        assert_eq!(only(&format!("<{email}>")).as_deref(), Some("email"), "{email}");
    }
    for not in ["user@localhost", "@mention", "a@b", "https://user:pw@host/", "git@github"] {
        assert!(pii_kinds(not).iter().all(|k| k != "email"), "{not}");
    }
}

#[test]
fn kinds_map_to_switches() {
    for p in PiiPattern::ALL {
        let expected = match p.kind() {
            "phone" => PiiKind::Phone,
            "credit-card" => PiiKind::CreditCard,
            "iban" => PiiKind::Iban,
            "ipv4" | "ipv6" => PiiKind::Ip,
            "ssn" => PiiKind::Ssn,
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(p.pii_kind(), expected);
    }
}
