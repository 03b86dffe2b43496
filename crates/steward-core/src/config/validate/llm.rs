//! Stage two for the LLM sections: `[llm.NAME]` providers, `[spend]` and
//! `[prices."MODEL"]`. Same rules as the rest of validation: every problem is
//! recorded with its fix and a stand-in value keeps the pass going.

use super::*;
use crate::config::units::{Usd, parse_timezone};

impl Validator<'_> {
    /// `[llm.NAME]` entries; broken ones are left out (their problem is recorded).
    pub(super) fn llm(
        &mut self,
        raw: Vec<(Spanned<String>, Option<RawLlm>)>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> BTreeMap<String, LlmProviderConfig> {
        let mut out = BTreeMap::new();
        for (name, body) in raw {
            self.entry_name(&name, "llm");
            if let Some(body) = body {
                let provider = self.llm_provider(body, credentials);
                out.insert(name.into_inner(), provider);
            }
        }
        out
    }

    fn llm_provider(
        &mut self,
        raw: RawLlm,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> LlmProviderConfig {
        let kind = self.choice(
            Some(raw.kind),
            "kind",
            &[("openai", LlmKind::OpenAi), ("anthropic", LlmKind::Anthropic)],
            LlmKind::OpenAi,
        );
        let base_url = self.base_url(&raw.base_url);
        self.credential_ref(&raw.credential, credentials, false);
        self.credential_environment(&raw.credential, credentials, "this LLM provider");
        let connect_timeout = self.timeout(raw.connect_timeout, "connect_timeout", "5s", DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = self.timeout(raw.read_timeout, "read_timeout", "120s", DEFAULT_LLM_READ_TIMEOUT);
        LlmProviderConfig { kind, base_url, credential: raw.credential.into_inner(), connect_timeout, read_timeout }
    }

    /// `[spend]`; every key has a default, so an absent section is no cap,
    /// UTC days and 4096 output tokens.
    pub(super) fn spend(&mut self, raw: RawSpend) -> SpendConfig {
        let daily_cap_usd = raw.daily_cap_usd.as_ref().and_then(|value| {
            self.positive_dollars(
                value,
                "daily_cap_usd",
                "set a positive cap, like daily_cap_usd = 5.00, or remove the key for no cap \
                 (`steward doctor` fails without one)",
            )
        });
        let alert_at_usd = raw.alert_at_usd.as_ref().and_then(|value| {
            self.positive_dollars(
                value,
                "alert_at_usd",
                "set a positive threshold below the cap, like alert_at_usd = 4.00, or remove the key",
            )
        });
        if let (Some(cap), Some(alert), Some(written)) = (daily_cap_usd, alert_at_usd, raw.alert_at_usd.as_ref())
            && Usd::from_dollars(alert) > Usd::from_dollars(cap)
        {
            self.push(Problem::new(
                written.span(),
                format!(
                    "alert_at_usd ({alert}) is above daily_cap_usd ({cap}), so the alert could \
                     never fire before the cap refuses calls"
                ),
                "above the cap",
                format!("set alert_at_usd at or below the cap, like alert_at_usd = {:.2} (80% of it)", cap * 0.8),
            ));
        }
        let (timezone, timezone_name) = match raw.timezone {
            None => (jiff::tz::TimeZone::UTC, "UTC".to_owned()),
            Some(text) => match parse_timezone(text.get_ref()) {
                Ok(zone) => (zone, text.into_inner()),
                Err(err) => {
                    self.push(Problem::new(
                        text.span(),
                        err.to_string(),
                        "unknown time zone",
                        "write an IANA name such as timezone = \"Europe/Berlin\" (the day then starts at local \
                         midnight, daylight saving time included), timezone = \"UTC\", or a fixed offset such \
                         as timezone = \"+02:00\"",
                    ));
                    (jiff::tz::TimeZone::UTC, "UTC".to_owned())
                }
            },
        };
        let default_max_output_tokens = match raw.default_max_output_tokens {
            None => DEFAULT_MAX_OUTPUT_TOKENS,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(tokens @ 1..=MAX_DEFAULT_MAX_OUTPUT_TOKENS) => tokens,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!(
                            "default_max_output_tokens = {} is outside 1..={MAX_DEFAULT_MAX_OUTPUT_TOKENS}",
                            n.get_ref()
                        ),
                        "out of range",
                        "use a token count such as default_max_output_tokens = 4096 (the default); \
                         it bounds the cost of calls that set no limit themselves",
                    ));
                    DEFAULT_MAX_OUTPUT_TOKENS
                }
            },
        };
        let history_days = match raw.history_days {
            None => DEFAULT_SPEND_HISTORY_DAYS,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(days @ MIN_SPEND_HISTORY_DAYS..=MAX_SPEND_HISTORY_DAYS) => days,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!(
                            "history_days = {} is outside {MIN_SPEND_HISTORY_DAYS}..={MAX_SPEND_HISTORY_DAYS}",
                            n.get_ref()
                        ),
                        "out of range",
                        "use a number of days such as history_days = 400 (the default); older \
                         per-call spend records are deleted, today's and yesterday's always stay",
                    ));
                    DEFAULT_SPEND_HISTORY_DAYS
                }
            },
        };
        SpendConfig { daily_cap_usd, alert_at_usd, timezone, timezone_name, default_max_output_tokens, history_days }
    }

    /// A dollar amount that must be above zero; `fix` is the help for a zero.
    fn positive_dollars(&mut self, value: &Spanned<Dollars>, key: &str, fix: &str) -> Option<f64> {
        let dollars = value.get_ref().0;
        let usd = self.dollars(value, key, Usd::MAX_CONFIG.as_dollars(), fix)?;
        if usd == Usd::ZERO {
            self.push(Problem::new(
                value.span(),
                format!("{key} = {dollars} is zero (amounts count whole micro-dollars)"),
                "zero",
                fix,
            ));
            return None;
        }
        Some(dollars)
    }

    /// A non-negative, finite dollar amount up to `max`.
    fn dollars(&mut self, value: &Spanned<Dollars>, key: &str, max: f64, fix: &str) -> Option<Usd> {
        let dollars = value.get_ref().0;
        let usd = Usd::from_dollars(dollars).filter(|_| dollars <= max);
        if usd.is_none() {
            let what = if dollars.is_nan() || dollars.is_infinite() {
                "is not a finite number".to_owned()
            } else if dollars < 0.0 {
                "is negative".to_owned()
            } else {
                format!("is above the maximum of {max}")
            };
            self.push(Problem::new(value.span(), format!("{key} = {dollars} {what}"), "invalid amount", fix));
        }
        usd
    }

    /// `[prices."MODEL"]` entries; broken ones are left out.
    pub(super) fn prices(&mut self, raw: Vec<(Spanned<String>, Option<RawPrice>)>) -> BTreeMap<String, ModelPrice> {
        let mut out = BTreeMap::new();
        for (name, body) in raw {
            let model = name.get_ref();
            if model.is_empty() || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.push(Problem::new(
                    name.span(),
                    format!("[prices.{model:?}] is not a model name"),
                    "invalid model name",
                    "write the model exactly as requests name it, like [prices.\"gpt-4o-mini\"]",
                ));
            }
            if let Some(body) = body {
                let price = self.price(body);
                out.insert(name.into_inner(), price);
            }
        }
        out
    }

    fn price(&mut self, raw: RawPrice) -> ModelPrice {
        let input = self.price_value(&raw.input, "input", "0.15");
        let output = self.price_value(&raw.output, "output", "0.60");
        let cached_input = raw.cached_input.map(|v| self.price_value(&v, "cached_input", "0.075"));
        let cache_write = raw.cache_write.map(|v| self.price_value(&v, "cache_write", "0.1875"));
        let cache_write_1h = raw.cache_write_1h.map(|v| self.price_value(&v, "cache_write_1h", "0.30"));
        let max_input_tokens = raw.max_input_tokens.and_then(|n| match u64::try_from(*n.get_ref()) {
            Ok(tokens) if tokens > 0 => Some(tokens),
            _ => {
                self.push(Problem::new(
                    n.span(),
                    format!("max_input_tokens = {} is not a positive token count", n.get_ref()),
                    "out of range",
                    "write the model's context window, like max_input_tokens = 128000, or \
                         remove the key",
                ));
                None
            }
        });
        ModelPrice::with_defaults(input, output, cached_input, cache_write, cache_write_1h, max_input_tokens)
    }

    /// A price in USD per 1M tokens: zero is allowed (a self-hosted model
    /// costs nothing, but must still be declared so unknown models stay refused).
    fn price_value(&mut self, value: &Spanned<Dollars>, key: &str, example: &str) -> Usd {
        let fix = format!(
            "write the price in USD per 1M tokens as a number, like {key} = {example}; \
             0 for a model that costs nothing"
        );
        self.dollars(value, key, MAX_PRICE_PER_MTOK_USD, &fix).unwrap_or(Usd::ZERO)
    }
}
