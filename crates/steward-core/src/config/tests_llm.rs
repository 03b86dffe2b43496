//! Tests of the LLM sections: `[llm.NAME]`, `[spend]` and `[prices."MODEL"]`,
//! their defaults, and every validation error with its location and fix.

use std::time::Duration;

use super::tests::{MINIMAL, err, ok, render};
use super::*;

/// The documented example from the LLM brief, every key present.
const FULL_LLM: &str = r#"[agent]
name = "poster"

[credentials.openai]
source = "env:OPENAI_API_KEY"

[credentials.anthropic]
source = "env:ANTHROPIC_API_KEY"

[llm.openai]                  # name = the {provider} in /llm/{provider}/...
kind = "openai"               # openai | anthropic
base_url = "https://api.openai.com"
credential = "openai"         # must name a [credentials.*]
connect_timeout = "5s"        # default 5s
read_timeout = "120s"         # default 120s (long generations)

[llm.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com/"
credential = "anthropic"
connect_timeout = "2s"
read_timeout = "10m"

[spend]
daily_cap_usd = 5.00
alert_at_usd = 4.00           # optional, must be <= daily_cap_usd
timezone = "+02:00"           # an IANA name like "Europe/Berlin", "UTC" or a fixed offset like "+02:00"
default_max_output_tokens = 2048
history_days = 90             # per-call spend records kept for `steward spend --days`

[prices."gpt-4o-mini"]        # USD per 1M tokens
input = 0.15
output = 0.60
cached_input = 0.075          # optional, default = input
cache_write = 0.1875          # optional (Anthropic cache creation), default = input

[prices."llama3.2:3b"]        # a self-hosted model costs nothing but must be declared
input = 0
output = 0
max_input_tokens = 131072
"#;

/// `[agent]` and one credential named `key`, then `rest`.
fn with_credential(rest: &str) -> String {
    format!("{MINIMAL}[credentials.key]\nsource = \"env:K\"\n{rest}")
}

#[test]
fn full_llm_example_parses_to_the_expected_config() {
    let c = ok(FULL_LLM);
    assert_eq!(c.llm.len(), 2);
    let openai = &c.llm["openai"];
    assert_eq!(openai.kind, LlmKind::OpenAi);
    assert_eq!(openai.base_url, "https://api.openai.com");
    assert_eq!(openai.credential, "openai");
    assert_eq!(openai.connect_timeout, Duration::from_secs(5));
    assert_eq!(openai.read_timeout, Duration::from_secs(120));
    let anthropic = &c.llm["anthropic"];
    assert_eq!(anthropic.kind, LlmKind::Anthropic);
    assert_eq!(anthropic.kind.as_str(), "anthropic");
    assert_eq!(anthropic.base_url, "https://api.anthropic.com");
    assert_eq!(anthropic.connect_timeout, Duration::from_secs(2));
    assert_eq!(anthropic.read_timeout, Duration::from_secs(600));

    assert_eq!(c.spend.daily_cap_usd, Some(5.0));
    assert_eq!(c.spend.daily_cap(), Some(units::Usd::from_micros(5_000_000)));
    assert_eq!(c.spend.alert_at_usd, Some(4.0));
    assert_eq!(c.spend.alert_at(), Some(units::Usd::from_micros(4_000_000)));
    assert_eq!(c.spend.timezone, jiff::tz::TimeZone::fixed(jiff::tz::offset(2)));
    assert_eq!(c.spend.timezone_name, "+02:00");
    assert_eq!(c.spend.default_max_output_tokens, 2048);
    assert_eq!(c.spend.history_days, 90);

    let mini = c.prices["gpt-4o-mini"];
    assert_eq!(mini.input.micros(), 150_000);
    assert_eq!(mini.output.micros(), 600_000);
    assert_eq!(mini.cached_input.micros(), 75_000);
    assert_eq!(mini.cache_write.micros(), 187_500);
    assert_eq!(mini.cache_write_1h, None);
    assert_eq!(mini.cache_write_1h_price().micros(), 300_000, "2 x input");
    assert_eq!(mini.max_input_tokens, None);
    let llama = c.prices["llama3.2:3b"];
    assert_eq!(llama.input, units::Usd::ZERO);
    assert_eq!(llama.output, units::Usd::ZERO);
    assert_eq!(llama.max_input_tokens, Some(131_072));
}

#[test]
fn llm_sections_default_to_nothing_and_no_cap() {
    let c = ok(MINIMAL);
    assert!(c.llm.is_empty());
    assert!(c.prices.is_empty());
    assert_eq!(c.spend, SpendConfig::default());
    assert_eq!(c.spend.daily_cap_usd, None);
    assert_eq!(c.spend.daily_cap(), None);
    assert_eq!(c.spend.alert_at_usd, None);
    assert_eq!(c.spend.timezone, jiff::tz::TimeZone::UTC);
    assert_eq!(c.spend.default_max_output_tokens, DEFAULT_MAX_OUTPUT_TOKENS);
    assert_eq!(DEFAULT_MAX_OUTPUT_TOKENS, 4096);
    assert_eq!(c.spend.history_days, DEFAULT_SPEND_HISTORY_DAYS);
}

#[test]
fn llm_provider_timeouts_default_to_5s_and_120s() {
    let c = ok(&with_credential(
        "[llm.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11434\"\ncredential = \"key\"\n",
    ));
    let local = &c.llm["local"];
    assert_eq!(local.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(local.read_timeout, DEFAULT_LLM_READ_TIMEOUT);
    assert_eq!(local.read_timeout, Duration::from_secs(120));
}

#[test]
fn spend_accepts_whole_dollars_an_alert_without_cap_and_an_alert_equal_to_the_cap() {
    let c = ok(&format!("{MINIMAL}[spend]\ndaily_cap_usd = 5\nalert_at_usd = 5\n"));
    assert_eq!(c.spend.daily_cap_usd, Some(5.0));
    assert_eq!(c.spend.alert_at_usd, Some(5.0));
    let c = ok(&format!("{MINIMAL}[spend]\nalert_at_usd = 0.5\n"));
    assert_eq!(c.spend.daily_cap_usd, None);
    assert_eq!(c.spend.alert_at(), Some(units::Usd::from_micros(500_000)));
    let c = ok(&format!("{MINIMAL}[spend]\ntimezone = \"-05:30\"\n"));
    let offset = jiff::tz::Offset::from_seconds(-(5 * 3600 + 30 * 60)).unwrap();
    assert_eq!(c.spend.timezone, jiff::tz::TimeZone::fixed(offset));
}

#[test]
fn spend_timezone_takes_iana_names_and_the_day_follows_daylight_saving_time() {
    let c = ok(&format!("{MINIMAL}[spend]\ntimezone = \"Europe/Berlin\"\n"));
    assert_eq!(c.spend.timezone_name, "Europe/Berlin");
    let at = |rfc3339: &str| std::time::SystemTime::from(rfc3339.parse::<jiff::Timestamp>().unwrap());
    // 23:30 UTC is already the next day in Berlin: 00:30 in winter (CET), 01:30 in summer (CEST).
    assert_eq!(c.spend.day_of(at("2026-01-15T23:30:00Z"), 0), "2026-01-16");
    assert_eq!(c.spend.day_of(at("2026-07-15T22:30:00Z"), 0), "2026-07-16");
    assert_eq!(c.spend.day_of(at("2026-07-15T21:30:00Z"), 0), "2026-07-15");
    assert_eq!(c.spend.day_of(at("2026-03-01T12:00:00Z"), 1), "2026-02-28");
}

#[test]
fn price_defaults_follow_the_input_price() {
    let c = ok(&format!(
        "{MINIMAL}[prices.m]\ninput = 3\noutput = 15\n\
         [prices.w]\ninput = 3\noutput = 15\ncache_write = 7.5\n\
         [prices.x]\ninput = 3\noutput = 15\ncache_write_1h = 4\n"
    ));
    let m = c.prices["m"];
    assert_eq!(m.input.micros(), 3_000_000);
    assert_eq!(m.cached_input, m.input);
    assert_eq!(m.cache_write, m.input);
    assert_eq!(m.cache_write_1h, None);
    assert_eq!(m.cache_write_1h_price().micros(), 6_000_000);
    // A cache write price above twice the input is used for 1-hour writes too.
    assert_eq!(c.prices["w"].cache_write_1h_price().micros(), 7_500_000);
    assert_eq!(c.prices["x"].cache_write_1h.map(units::Usd::micros), Some(4_000_000));
}

/// One case of the validation table: the file, where the error must point
/// (1-based line, column), and text the message and the help must contain.
struct Case {
    source: String,
    at: (usize, usize),
    message: &'static str,
    help: &'static str,
}

fn case(source: impl Into<String>, at: (usize, usize), message: &'static str, help: &'static str) -> Case {
    Case { source: source.into(), at, message, help }
}

#[test]
fn every_llm_validation_error_points_at_the_value_and_says_the_fix() {
    // with_credential() ends on line 4; `rest` starts on line 5.
    let provider = |body: &str| with_credential(&format!("[llm.openai]\n{body}"));
    let good = "kind = \"openai\"\nbase_url = \"https://api.openai.com\"\ncredential = \"key\"\n";
    let spend = |body: &str| format!("{MINIMAL}[spend]\n{body}");
    let price = |body: &str| format!("{MINIMAL}[prices.\"m\"]\n{body}");
    let cases = vec![
        case(
            provider("kind = \"openai\"\nbase_url = \"https://api.openai.com\"\n"),
            (5, 1),
            "[llm.openai] is missing `credential`",
            "add credential = \"NAME\" (one of the [credentials.*] names)",
        ),
        case(
            provider("base_url = \"https://api.openai.com\"\ncredential = \"key\"\n"),
            (5, 1),
            "[llm.openai] is missing `kind`",
            "kind = \"openai\" (or \"anthropic\")",
        ),
        case(
            provider("kind = \"azure\"\nbase_url = \"https://x.example\"\ncredential = \"key\"\n"),
            (6, 8),
            "kind \"azure\" is not one of openai, anthropic",
            "write kind = \"openai\" or kind = \"anthropic\"",
        ),
        case(
            provider("kind = \"openai\"\nbase_url = \"https://x.example\"\ncredential = \"oai\"\n"),
            (8, 14),
            "credential \"oai\" is not defined",
            "use one of: key; or add [credentials.oai]",
        ),
        case(
            format!(
                "{MINIMAL}[llm.openai]\nkind = \"openai\"\nbase_url = \"https://x.example\"\n\
                 credential = \"openai\"\n"
            ),
            (6, 14),
            "credential \"openai\" is not defined",
            "no credentials are defined; add [credentials.openai] with source = \"env:NAME\"",
        ),
        case(
            provider("kind = \"openai\"\nbase_url = \"api.openai.com\"\ncredential = \"key\"\n"),
            (7, 12),
            "base_url \"api.openai.com\" has no scheme",
            "base_url = \"https://api.example.com\"",
        ),
        case(
            provider(&format!("{good}read_timeout = \"0s\"\n")),
            (9, 16),
            "read_timeout is zero",
            "read_timeout = \"120s\"",
        ),
        case(
            provider(&format!("{good}connect_timeout = \"5 seconds\"\n")),
            (9, 19),
            "duration \"5 seconds\" is not an integer followed by a unit",
            "connect_timeout = \"5s\"",
        ),
        case(
            provider(&format!("{good}auth = \"bearer\"\n")),
            (9, 1),
            "unknown key `auth` in [llm.openai]",
            "[llm.openai] accepts: kind, base_url, credential, connect_timeout, read_timeout",
        ),
        case(
            with_credential(&format!("[llm.\"open ai\"]\n{good}")),
            (5, 6),
            "[llm.\"open ai\"] has characters other than letters",
            "[llm.social]",
        ),
        case(
            format!("llm = \"openai\"\n{MINIMAL}"),
            (1, 7),
            "`llm` must be a table of [llm.NAME] sections",
            "[llm.NAME]",
        ),
        case(spend("daily_cap_usd = 0\n"), (4, 17), "daily_cap_usd = 0 is zero", "remove the key for no cap"),
        case(
            spend("daily_cap_usd = 0.0000001\n"),
            (4, 17),
            "is zero (amounts count whole micro-dollars)",
            "daily_cap_usd = 5.00",
        ),
        case(spend("daily_cap_usd = -5.0\n"), (4, 17), "daily_cap_usd = -5 is negative", "daily_cap_usd = 5.00"),
        case(
            spend("daily_cap_usd = nan\n"),
            (4, 17),
            "daily_cap_usd = NaN is not a finite number",
            "daily_cap_usd = 5.00",
        ),
        case(
            spend("daily_cap_usd = 2e9\n"),
            (4, 17),
            "daily_cap_usd = 2000000000 is above the maximum",
            "daily_cap_usd = 5.00",
        ),
        case(
            spend("daily_cap_usd = \"$5\"\n"),
            (4, 17),
            "expected an amount of US dollars",
            "write a number such as 5.00 (no quotes, no $) here",
        ),
        case(
            spend("daily_cap_usd = 5.00\nalert_at_usd = 6.00\n"),
            (5, 16),
            "alert_at_usd (6) is above daily_cap_usd (5)",
            "alert_at_usd = 4.00 (80% of it)",
        ),
        case(spend("alert_at_usd = 0\n"), (4, 16), "alert_at_usd = 0 is zero", "alert_at_usd = 4.00"),
        case(
            spend("timezone = \"Mars/Olympus\"\n"),
            (4, 12),
            "timezone \"Mars/Olympus\" is not a time zone steward knows",
            "timezone = \"Europe/Berlin\"",
        ),
        case(spend("timezone = \"+2\"\n"), (4, 12), "timezone \"+2\" is not", "daylight saving time"),
        case(
            spend("default_max_output_tokens = 0\n"),
            (4, 29),
            "default_max_output_tokens = 0 is outside 1..=1000000",
            "default_max_output_tokens = 4096",
        ),
        case(
            spend("default_max_output_tokens = 5000000000\n"),
            (4, 29),
            "is outside 1..=1000000",
            "default_max_output_tokens = 4096",
        ),
        case(
            spend("history_days = 1\n"),
            (4, 16),
            "history_days = 1 is outside 2..=36500",
            "history_days = 400 (the default)",
        ),
        case(spend("history_days = -3\n"), (4, 16), "is outside 2..=36500", "today's and yesterday's always stay"),
        case(spend("daily_cap = 5\n"), (4, 1), "unknown key `daily_cap` in [spend]", "daily_cap_usd"),
        case(
            price("input = 0.15\n"),
            (3, 1),
            "[prices.\"m\"] is missing `output`",
            "add output = 0.60 (USD per 1M output tokens)",
        ),
        case(
            price("input = -1\noutput = 1\n"),
            (4, 9),
            "input = -1 is negative",
            "input = 0.15; 0 for a model that costs nothing",
        ),
        case(
            price("input = 1\noutput = 1e6\n"),
            (5, 10),
            "output = 1000000 is above the maximum of 100000",
            "output = 0.60",
        ),
        case(
            price("input = 1\noutput = \"1\"\n"),
            (5, 10),
            "expected an amount of US dollars",
            "a number such as 5.00",
        ),
        case(
            price("input = 1\noutput = 1\ncached = 0.5\n"),
            (6, 1),
            "unknown key `cached` in [prices.\"m\"]",
            "cached_input",
        ),
        case(
            price("input = 1\noutput = 1\ncache_write = -0.5\n"),
            (6, 15),
            "cache_write = -0.5 is negative",
            "cache_write = 0.1875",
        ),
        case(
            price("input = 1\noutput = 1\nmax_input_tokens = 0\n"),
            (6, 20),
            "max_input_tokens = 0 is not a positive token count",
            "max_input_tokens = 128000",
        ),
        case(
            format!("{MINIMAL}[prices.gpt-4.1]\ninput = 2\noutput = 8\n"),
            (3, 15),
            "[prices.gpt-4.1] is a table inside a price",
            "quote model names that contain dots: [prices.\"gpt-4.1\"]",
        ),
        case(
            format!("{MINIMAL}[prices.\"gpt 4o\"]\ninput = 2\noutput = 8\n"),
            (3, 9),
            "[prices.\"gpt 4o\"] is not a model name",
            "[prices.\"gpt-4o-mini\"]",
        ),
        case(format!("prices = 1\n{MINIMAL}"), (1, 10), "`prices` must be a table", "[prices.\"gpt-4o-mini\"]"),
    ];

    let mut failures = Vec::new();
    for Case { source, at, message, help } in cases {
        let e = err(&source);
        let shown = render(&e);
        let got_help = e.help_text().unwrap_or_default();
        if e.line_col() != Some(at) {
            failures.push(format!("expected {at:?} for {message:?}:\n{shown}"));
        } else if !e.message().contains(message) {
            failures.push(format!("message lacks {message:?}:\n{shown}"));
        } else if got_help.is_empty() || !got_help.contains(help) {
            failures.push(format!("help lacks {help:?}:\n{shown}"));
        } else if !e.related_errors().is_empty() {
            failures.push(format!("expected one problem:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn llm_problems_are_reported_together_with_the_others() {
    let source = "[agent]\n\
                  name = \"x\"\n\
                  [llm.openai]\n\
                  kind = \"open-ai\"\n\
                  base_url = \"https://api.openai.com\"\n\
                  credential = \"openai\"\n\
                  [spend]\n\
                  daily_cap_usd = 5\n\
                  alert_at_usd = 10\n\
                  timezone = \"Mars/Olympus\"\n\
                  [prices.\"m\"]\n\
                  input = -1\n\
                  output = 1\n";
    let e = err(source);
    let lines: Vec<usize> = e.errors().map(|p| p.line_col().unwrap().0).collect();
    assert_eq!(lines, vec![4, 6, 9, 10, 12], "{}", render(&e));
    // A missing credential must not suggest removing it: the key is required.
    let credential = e.errors().nth(1).unwrap();
    assert!(!credential.help_text().unwrap().contains("remove"), "{}", render(&e));
}
