//! The price of a model: the built-in table (`data/prices.toml`, compiled in)
//! merged with the `[prices."MODEL"]` entries of the config, and the lookup
//! that maps a requested model name to its price.
//!
//! A model with no price is not guessed: the lookup returns `None` and the
//! caller refuses the call (`unknown_price`), because an LLM call steward
//! cannot price is a call the spend cap cannot hold.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::config::ModelPrice;
use crate::config::units::Usd;

/// The built-in price table as shipped. Kept as a data file so updating a
/// price is a one-line change reviewed like any other diff.
pub const BUILTIN_PRICES_TOML: &str = include_str!("../../data/prices.toml");

/// The built-in table could not be read: only possible when the shipped data
/// file is broken, which the tests of this module rule out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the built-in price table (data/prices.toml) is invalid: {reason}")]
pub struct PriceError {
    /// What is wrong, with the model name when one entry is at fault.
    reason: String,
}

/// The built-in table, parsed on first use and shared afterwards.
pub fn builtin_prices() -> Result<&'static BTreeMap<String, ModelPrice>, PriceError> {
    static BUILTIN: OnceLock<Result<BTreeMap<String, ModelPrice>, PriceError>> = OnceLock::new();
    BUILTIN.get_or_init(|| parse_price_file(BUILTIN_PRICES_TOML)).as_ref().map_err(Clone::clone)
}

/// `[prices."MODEL"]` tables in the built-in file's format (the config's keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    /// Model name → price.
    prices: BTreeMap<String, PriceEntry>,
}

/// One entry, in USD per 1M tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    /// Uncached input.
    input: f64,
    /// Output.
    output: f64,
    /// Cache reads.
    cached_input: Option<f64>,
    /// 5-minute cache writes.
    cache_write: Option<f64>,
    /// 1-hour cache writes.
    cache_write_1h: Option<f64>,
    /// Context window.
    max_input_tokens: Option<u64>,
}

/// Parses a price file. Every amount must be a non-negative, finite number of
/// dollars; the positivity of the shipped prices is a test, not a rule here.
fn parse_price_file(text: &str) -> Result<BTreeMap<String, ModelPrice>, PriceError> {
    let file: PriceFile = toml::from_str(text).map_err(|e| PriceError { reason: e.message().to_owned() })?;
    let mut out = BTreeMap::new();
    for (model, entry) in file.prices {
        let usd = |dollars: f64| {
            Usd::from_dollars(dollars)
                .ok_or_else(|| PriceError { reason: format!("{model:?} has the invalid amount {dollars}") })
        };
        let optional = |dollars: Option<f64>| dollars.map(usd).transpose();
        let price = ModelPrice::with_defaults(
            usd(entry.input)?,
            usd(entry.output)?,
            optional(entry.cached_input)?,
            optional(entry.cache_write)?,
            optional(entry.cache_write_1h)?,
            entry.max_input_tokens,
        );
        out.insert(model, price);
    }
    Ok(out)
}

/// Built-in prices with the config's overrides applied.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// Model name (as requests write it, without a snapshot suffix) → price.
    prices: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// `builtin` with every entry of `overrides` added or replacing the
    /// built-in entry of the same name: the config wins.
    pub fn new(builtin: &BTreeMap<String, ModelPrice>, overrides: &BTreeMap<String, ModelPrice>) -> PriceTable {
        let mut prices = builtin.clone();
        prices.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
        PriceTable { prices }
    }

    /// The built-in table with the config's `[prices.*]` applied.
    pub fn with_builtin(overrides: &BTreeMap<String, ModelPrice>) -> Result<PriceTable, PriceError> {
        Ok(PriceTable::new(builtin_prices()?, overrides))
    }

    /// The price of `model`. See [`PriceTable::lookup_entry`].
    pub fn lookup(&self, model: &str) -> Option<ModelPrice> {
        self.lookup_entry(model).map(|(_, price)| price)
    }

    /// The price of `model` and the table entry it came from: the exact name
    /// first, else the longest entry `E` such that the model is `E-SUFFIX`
    /// where `SUFFIX` names a snapshot: a date (`2024-07-18`, `20250514`,
    /// `0613`) or `latest`. So `gpt-4o-mini-2024-07-18` is `gpt-4o-mini`,
    /// never `gpt-4o`.
    ///
    /// Other suffixes do not match: `gpt-5-pro` is not `gpt-5` (it costs
    /// twelve times more), and a model the table does not know must be
    /// refused, not priced like a sibling.
    pub fn lookup_entry(&self, model: &str) -> Option<(&str, ModelPrice)> {
        if let Some((name, price)) = self.prices.get_key_value(model) {
            return Some((name.as_str(), *price));
        }
        // Every `-` from the right: the first hit is the longest entry.
        model
            .rmatch_indices('-')
            .filter(|(at, _)| is_snapshot_suffix(&model[at + 1..]))
            .find_map(|(at, _)| self.prices.get_key_value(&model[..at]))
            .map(|(name, price)| (name.as_str(), *price))
    }

    /// Number of priced models.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// Whether no model is priced.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// Every entry, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.prices.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// `YYYY-MM-DD`, `YYYYMMDD`, `MMDD` or `latest`: the suffixes providers put
/// on a snapshot of a model whose price is the family's.
fn is_snapshot_suffix(suffix: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let month_day = |mmdd: &str| {
        let (month, day) = mmdd.split_at(2);
        matches!(month.parse::<u8>(), Ok(1..=12)) && matches!(day.parse::<u8>(), Ok(1..=31))
    };
    match suffix.split('-').collect::<Vec<_>>().as_slice() {
        ["latest"] => true,
        [date] if digits(date, 8) => month_day(&date[4..]),
        [date] if digits(date, 4) => month_day(date),
        [year, month, day] => {
            digits(year, 4) && digits(month, 2) && digits(day, 2) && month_day(&[*month, *day].concat())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64) -> ModelPrice {
        ModelPrice::with_defaults(
            Usd::from_dollars(input).unwrap(),
            Usd::from_dollars(output).unwrap(),
            None,
            None,
            None,
            None,
        )
    }

    fn builtin() -> PriceTable {
        PriceTable::with_builtin(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn the_builtin_table_parses_and_every_price_is_positive() {
        let table = builtin_prices().unwrap();
        assert!(table.len() >= 40, "{} entries", table.len());
        for (model, p) in table {
            for (what, usd) in [
                ("input", p.input),
                ("output", p.output),
                ("cached_input", p.cached_input),
                ("cache_write", p.cache_write),
                ("cache_write_1h", p.cache_write_1h_price()),
            ] {
                assert!(usd > Usd::ZERO, "{model}: {what} is not positive");
            }
            assert!(p.cached_input <= p.input, "{model}: cache reads cost more than input");
            assert!(p.max_input_tokens != Some(0), "{model}: zero context");
            assert_eq!(model.trim(), model, "{model:?} has spaces");
        }
    }

    #[test]
    fn the_builtin_table_has_the_current_models() {
        let table = builtin();
        for model in [
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "o1",
            "o3",
            "o3-mini",
            "o4-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "claude-opus-4-1",
            "claude-opus-4",
            "claude-sonnet-4-5",
            "claude-sonnet-4",
            "claude-3-7-sonnet",
            "claude-haiku-4-5",
            "claude-3-5-haiku",
            "claude-3-haiku",
        ] {
            assert!(table.lookup(model).is_some(), "{model} is not priced");
        }
    }

    #[test]
    fn builtin_prices_match_the_published_list_prices() {
        let table = builtin();
        let micros = |model: &str| {
            let p = table.lookup(model).unwrap();
            (p.input.micros(), p.output.micros(), p.cached_input.micros())
        };
        assert_eq!(micros("gpt-4o-mini"), (150_000, 600_000, 75_000));
        assert_eq!(micros("gpt-5"), (1_250_000, 10_000_000, 125_000));
        assert_eq!(micros("o1"), (15_000_000, 60_000_000, 7_500_000));
        let sonnet = table.lookup("claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet.input.micros(), 3_000_000);
        assert_eq!(sonnet.output.micros(), 15_000_000);
        assert_eq!(sonnet.cached_input.micros(), 300_000);
        assert_eq!(sonnet.cache_write.micros(), 3_750_000);
        assert_eq!(sonnet.cache_write_1h.map(Usd::micros), Some(6_000_000));
        // Only Anthropic has a 1-hour cache.
        assert_eq!(table.lookup("gpt-4o").unwrap().cache_write_1h, None);
        for (model, p) in builtin_prices().unwrap() {
            assert_eq!(p.cache_write_1h.is_some(), model.starts_with("claude-"), "{model}");
        }
        // Embeddings: no cache, so reads and writes default to the input price.
        let small = table.lookup("text-embedding-3-small").unwrap();
        assert_eq!(small.cached_input, small.input);
        assert_eq!(small.cache_write, small.input);
    }

    #[test]
    fn dated_snapshots_find_their_family() {
        let table = builtin();
        for (model, entry) in [
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
            ("gpt-5-2025-08-07", "gpt-5"),
            ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
            ("o3-mini-2025-01-31", "o3-mini"),
            ("o4-mini-2025-04-16", "o4-mini"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("gpt-4-0613", "gpt-4"),
            ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-opus-4-1-20250805", "claude-opus-4-1"),
            ("claude-opus-4-20250514", "claude-opus-4"),
            ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
            ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("claude-3-haiku-20240307", "claude-3-haiku"),
        ] {
            assert_eq!(table.lookup_entry(model).map(|(name, _)| name), Some(entry), "{model}");
        }
    }

    #[test]
    fn a_prefix_never_swallows_a_longer_sibling_or_a_variant() {
        let table = builtin();
        // Exact entries win over their prefixes.
        assert_eq!(table.lookup_entry("gpt-4o-mini").unwrap().0, "gpt-4o-mini");
        assert_eq!(table.lookup_entry("gpt-5-pro").unwrap().0, "gpt-5-pro");
        assert_eq!(table.lookup_entry("claude-opus-4-1").unwrap().0, "claude-opus-4-1");
        // A snapshot with its own price beats the family.
        let old = table.lookup("gpt-4o-2024-05-13").unwrap();
        assert_eq!(old.input.micros(), 5_000_000);
        assert_eq!(table.lookup("gpt-4o").unwrap().input.micros(), 2_500_000);
        assert_eq!(table.lookup("gpt-3.5-turbo-1106").unwrap().input.micros(), 1_000_000);
        // Variants that are not snapshots are unknown, not priced as the family.
        for model in [
            "gpt-4o-audio-preview",
            "gpt-4o-realtime-preview-2024-12-17",
            "gpt-5-ultra",
            "gpt-4o-mini-tts",
            "o1-preview",
            "gpt-4-32k",
            "gpt-4o-",
            "gpt-4o-2024-5-13",
            "gpt-4o-202405",
            "claude-opus-4-7",
            "claude-sonnet-4-5-foo",
            "openai/gpt-4o-mini",
            "GPT-4O-MINI",
            "",
            "-",
            "latest",
        ] {
            assert_eq!(table.lookup_entry(model), None, "{model}");
        }
    }

    #[test]
    fn config_overrides_win_and_add_models() {
        let mut overrides = BTreeMap::new();
        overrides.insert("gpt-4o-mini".to_owned(), price(0.10, 0.40));
        overrides.insert("llama3.2:3b".to_owned(), price(0.0, 0.0));
        overrides.insert("gpt-4o-mini-2024-07-18".to_owned(), price(1.0, 2.0));
        let table = PriceTable::with_builtin(&overrides).unwrap();
        assert_eq!(table.lookup("gpt-4o-mini").unwrap().input.micros(), 100_000);
        // The override of the family also prices its other snapshots...
        assert_eq!(table.lookup("gpt-4o-mini-2025-01-01").unwrap().input.micros(), 100_000);
        // ...and an exact override of a snapshot beats the family.
        assert_eq!(table.lookup("gpt-4o-mini-2024-07-18").unwrap().input.micros(), 1_000_000);
        assert_eq!(table.lookup("llama3.2:3b").unwrap().output, Usd::ZERO);
        // Built-in entries that were not overridden are untouched.
        assert_eq!(table.lookup("gpt-4o").unwrap().input.micros(), 2_500_000);
        assert_eq!(table.len(), builtin_prices().unwrap().len() + 2);
        assert!(!table.is_empty());
        assert!(table.iter().any(|(name, _)| name == "llama3.2:3b"));
    }

    #[test]
    fn the_longest_matching_entry_wins() {
        let mut entries = BTreeMap::new();
        entries.insert("m".to_owned(), price(1.0, 1.0));
        entries.insert("m-2024".to_owned(), price(2.0, 2.0));
        let table = PriceTable::new(&entries, &BTreeMap::new());
        // "m-2024-01-01" is `m` + a date; "m-2024" + "01-01" is not a snapshot.
        assert_eq!(table.lookup_entry("m-2024-01-01").unwrap().0, "m");
        assert_eq!(table.lookup_entry("m-2024-0101").unwrap().0, "m-2024");
        assert_eq!(table.lookup_entry("m-2024-latest").unwrap().0, "m-2024");
        assert_eq!(PriceTable::default().lookup("m"), None);
    }

    #[test]
    fn snapshot_suffixes() {
        for ok in ["2024-07-18", "20250514", "0613", "latest"] {
            assert!(is_snapshot_suffix(ok), "{ok}");
        }
        for bad in [
            "",
            "preview",
            "2024-07",
            "2024",
            "202405",
            "2024-7-18",
            "24-07-18",
            "latest-1",
            "0613-preview",
            "1",
            "mini",
            "1300",
            "0100",
            "20241301",
            "2024-00-10",
            "2024-01-32",
        ] {
            assert!(!is_snapshot_suffix(bad), "{bad}");
        }
    }

    #[test]
    fn broken_price_files_are_refused() {
        assert!(parse_price_file("[prices.\"m\"]\ninput = 1\n").is_err());
        assert!(parse_price_file("[prices.\"m\"]\ninput = 1\noutput = 1\nx = 1\n").is_err());
        let negative = parse_price_file("[prices.\"m\"]\ninput = -1\noutput = 1\n").unwrap_err();
        assert!(negative.to_string().contains("\"m\""), "{negative}");
        let ok = parse_price_file("[prices.\"m\"]\ninput = 1\noutput = 2\n").unwrap();
        assert_eq!(ok["m"].output.micros(), 2_000_000);
    }
}
