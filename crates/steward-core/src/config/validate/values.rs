//! The value checks every section shares: entry names, fixed words, sizes,
//! durations and paths. Each records its problem with a fix and returns a
//! stand-in, like every check of stage two.

use super::*;

impl Validator<'_> {
    /// A `[credentials.NAME]` / `[upstreams.NAME]` / `[llm.NAME]` name: it
    /// appears in URLs (`/api/{name}/...`, `/llm/{name}/...`) and audit
    /// records, so it must be URL-safe.
    pub(super) fn entry_name(&mut self, name: &Spanned<String>, section: &str) {
        let text = name.get_ref();
        let valid = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            self.push(Problem::new(
                name.span(),
                format!("[{section}.{text:?}] has characters other than letters, digits, _ . -"),
                "invalid name",
                format!("rename it using letters, digits, _, . and -, like [{section}.social]"),
            ));
        }
    }

    /// One `env` entry (`[agent] env`, `[mcp.*] env`): a valid variable
    /// name (`example` shows one in the fix) and a value without NUL.
    pub(super) fn env_entry(&mut self, name: &Spanned<String>, value: &Spanned<String>, example: &str) {
        let text = name.get_ref();
        if !crate::config::rule::is_identifier(text) {
            self.push(Problem::new(
                name.span(),
                format!("{text:?} is not a valid environment variable name"),
                "invalid variable name",
                format!("use letters, digits and _, not starting with a digit, like {example}"),
            ));
        }
        if value.get_ref().contains('\0') {
            self.push(Problem::new(
                value.span(),
                format!("the value of {text} contains a NUL character"),
                "NUL",
                "remove the \\0 character; an environment value cannot contain it",
            ));
        }
    }

    /// One of a fixed set of words.
    pub(super) fn choice<T: Copy>(
        &mut self,
        raw: Option<Spanned<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(text) = raw else { return default };
        if let Some((_, value)) = options.iter().find(|(word, _)| word == text.get_ref()) {
            return *value;
        }
        let words: Vec<String> = options.iter().map(|(w, _)| format!("{key} = \"{w}\"")).collect();
        self.push(Problem::new(
            text.span(),
            format!(
                "{key} {:?} is not one of {}",
                text.get_ref(),
                options.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
            ),
            "unknown value",
            format!("write {}", words.join(" or ")),
        ));
        default
    }

    /// A size key: `4096` or `"100MB"`.
    pub(super) fn size(&mut self, raw: Option<Spanned<SizeValue>>, key: &str, example: &str, default: u64) -> u64 {
        let Some(value) = raw else { return default };
        let parsed = match value.get_ref() {
            SizeValue::Bytes(n) => size_from_integer(*n),
            SizeValue::Text(text) => parse_size(text),
        };
        self.unit(parsed, value.span(), "not a size", key, example).unwrap_or(default)
    }

    /// A duration key that must be positive.
    pub(super) fn timeout(
        &mut self,
        raw: Option<Spanned<DurationText>>,
        key: &str,
        example: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = raw else { return default };
        let parsed = parse_duration(&value.get_ref().0);
        let Some(duration) = self.unit(parsed, value.span(), "not a duration", key, example) else {
            return default;
        };
        if duration.is_zero() {
            self.push(Problem::new(
                value.span(),
                format!("{key} is zero"),
                "zero",
                format!("use a positive duration, like {key} = \"{example}\" (the default)"),
            ));
            return default;
        }
        duration
    }

    fn unit<T>(
        &mut self,
        parsed: Result<T, UnitError>,
        span: std::ops::Range<usize>,
        label: &str,
        key: &str,
        example: &str,
    ) -> Option<T> {
        parsed
            .map_err(|err| {
                self.push(Problem::new(
                    span,
                    err.to_string(),
                    label,
                    format!("for example: {key} = \"{example}\" (the default)"),
                ));
            })
            .ok()
    }

    /// A path from the file, absolute: relative ones resolve against the
    /// config file's directory, so steward finds the same files whatever
    /// directory it is started from.
    pub(super) fn path(&mut self, text: &Spanned<String>, key: &str) -> PathBuf {
        let value = text.get_ref();
        let problem = if value.is_empty() {
            Some(format!("{key} is an empty path"))
        } else if value.starts_with('~') {
            Some(format!("{key} {value:?} starts with ~, which steward does not expand"))
        } else {
            None
        };
        if let Some(message) = problem {
            self.push(Problem::new(
                text.span(),
                message,
                "invalid path",
                "write an absolute path, or one relative to the directory of this config file, \
                 like \"./.steward\"",
            ));
            return self.base_dir.clone();
        }
        normalize(&self.base_dir.join(value))
    }
}

/// `[a-z0-9_.-]+`
pub(super) fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// Removes `.` components (`/cfg/./.steward` → `/cfg/.steward`). `..` is kept:
/// resolving it lexically would be wrong across symlinks.
pub(super) fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// The span of an optional spanned value.
pub(super) fn raw_span<T>(value: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
    value.as_ref().map(Spanned::span)
}
