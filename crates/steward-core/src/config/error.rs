//! [`ConfigError`]: every reason a `steward.toml` is refused, as one
//! miette diagnostic that points at the offending text and says how to fix it.
//!
//! Validation collects every problem it finds ([`Problem`]); they become one
//! error whose primary label is the first problem in the file and whose
//! `related` list holds the others, so a user fixes a file in one pass instead
//! of one restart per mistake.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A `steward.toml` that could not be read or is not valid.
///
/// Render it with `miette::Report::new(err)` for `path:line:col`, a snippet
/// with the offending value underlined, and the fix. `Display` alone gives the
/// one-line message of the first problem.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(transparent)]
#[diagnostic(transparent)]
pub struct ConfigError(
    /// Boxed: the error travels through every `Result` of startup, and the
    /// details are large (clippy `result_large_err`).
    Box<Details>,
);

/// What a [`ConfigError`] carries.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub(super) struct Details {
    /// What is wrong, in one line.
    message: String,
    /// The file text, so the report can show the offending line. Literal
    /// secrets in it are masked: the report must not print them again.
    #[source_code]
    source_code: Option<NamedSource<Arc<str>>>,
    /// The offending bytes; `None` when the file could not be read at all.
    #[label("{label}")]
    span: Option<SourceSpan>,
    /// Short text under the underline.
    label: String,
    /// The concrete fix.
    #[help]
    help: Option<String>,
    /// Further problems in the same file, in file order.
    #[related]
    related: Vec<ConfigError>,
    /// 1-based line and byte column of `span`, computed once from the text.
    line_col: Option<(usize, usize)>,
    /// The I/O error when the file could not be read.
    #[source]
    cause: Option<std::io::Error>,
}

impl ConfigError {
    /// The config file at `path` could not be read.
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        let shown = path.display();
        let (message, help) = match err.kind() {
            std::io::ErrorKind::NotFound => (
                format!("config file {shown} does not exist"),
                format!(
                    "create a commented starter with `steward init`, or point steward at the \
                     right file; it looked for {shown}"
                ),
            ),
            std::io::ErrorKind::PermissionDenied => (
                format!("config file {shown} is not readable by this user"),
                "run steward as the user that owns the file, or make it readable with \
                 `chmod 600` by its owner"
                    .to_owned(),
            ),
            std::io::ErrorKind::InvalidData => {
                (format!("config file {shown} is not valid UTF-8"), "save the file as UTF-8 text".to_owned())
            }
            std::io::ErrorKind::IsADirectory => (
                format!("config file {shown} is a directory"),
                format!("pass the path of the file itself, such as {shown}/steward.toml"),
            ),
            _ => (format!("cannot read config file {shown}"), "check that the path is a readable file".to_owned()),
        };
        Self::new(
            Details {
                message,
                source_code: None,
                span: None,
                label: String::new(),
                help: Some(help),
                related: Vec::new(),
                line_col: None,
                cause: Some(err),
            },
            &[],
        )
    }

    /// The one constructor: every text a report can print (message, label,
    /// help) is masked here, so no rendering of a config error (`config
    /// check`, `run`, `doctor`, the journal under systemd) can show a
    /// literal secret. `secrets` are the texts the file's secret spans hold.
    fn new(mut details: Details, secrets: &[&str]) -> Self {
        details.message = mask_text(&details.message, secrets, Rules::All);
        details.label = mask_text(&details.label, secrets, Rules::All);
        details.help = details.help.map(|help| mask_text(&help, secrets, Rules::NotSyntax));
        Self(Box::new(details))
    }

    /// 1-based line and column (in bytes, as in miette's `path:line:col`) of
    /// the first problem; `None` for an unreadable file.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.0.line_col
    }

    /// The message of the first problem (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The fix for the first problem.
    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// Byte range of the first problem in the file text.
    pub fn span(&self) -> Option<Range<usize>> {
        self.0.span.map(|s| s.offset()..s.offset() + s.len())
    }

    /// The problems after the first, in file order.
    pub fn related_errors(&self) -> &[ConfigError] {
        &self.0.related
    }

    /// Every problem, the first included, in file order.
    pub fn errors(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(self.0.related.iter())
    }

    /// Builds one error from every problem found in `source` (read from `path`).
    pub(super) fn from_problems(path: &Path, source: &str, mut problems: Vec<Problem>) -> Self {
        problems.sort_by(|a, b| (a.span.start, a.span.end, &a.message).cmp(&(b.span.start, b.span.end, &b.message)));
        problems.dedup_by(|a, b| a.span == b.span && a.message == b.message);

        let masked = mask_secrets(source, &problems);
        let named = NamedSource::new(path.display().to_string(), Arc::<str>::from(masked)).with_language("TOML");
        let secrets = secret_texts(source, &problems);
        let mut errors = problems.into_iter().map(|p| {
            let span = clamp(p.span, source.len());
            Self::new(
                Details {
                    line_col: Some(line_col(source, span.start)),
                    message: p.message,
                    source_code: Some(named.clone()),
                    span: Some(SourceSpan::from(span)),
                    label: p.label,
                    help: Some(p.help),
                    related: Vec::new(),
                    cause: None,
                },
                &secrets,
            )
        });
        match errors.next() {
            Some(mut first) => {
                first.0.related = errors.collect();
                first
            }
            // Callers only build an error when they found a problem; this
            // keeps the type total without a panic.
            None => Self::new(
                Details {
                    message: format!("{} is not a valid steward config", path.display()),
                    source_code: Some(named),
                    span: None,
                    label: String::new(),
                    help: Some("run `steward init` for a commented starter".to_owned()),
                    related: Vec::new(),
                    line_col: None,
                    cause: None,
                },
                &secrets,
            ),
        }
    }
}

/// One thing wrong with the file, before it becomes part of a [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// Byte range of the offending key or value.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
    /// Short text under the underline.
    pub label: String,
    /// The concrete fix.
    pub help: String,
    /// The span holds a literal secret: mask it in the text the report shows.
    pub secret: bool,
}

impl Problem {
    /// A problem at `span`.
    pub fn new(
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self { span, message: message.into(), label: label.into(), help: help.into(), secret: false }
    }

    /// Marks the span as a literal secret, to be masked in the report.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// `source` with the bytes of every secret span, and of every other
/// occurrence of the same text, replaced by `*`, so the snippet under the
/// error does not show the secret it complains about. The length is
/// unchanged, so every span still points at the same place.
fn mask_secrets(source: &str, problems: &[Problem]) -> String {
    let mut bytes = source.as_bytes().to_vec();
    for problem in problems.iter().filter(|p| p.secret) {
        let span = clamp(problem.span.clone(), source.len());
        let Some(text) = source.get(span.clone()) else {
            continue;
        };
        let inner = strip_quotes(text);
        let start = span.start + inner.start;
        let end = span.start + inner.end;
        bytes[start..end].fill(b'*');
    }
    // The same value written again elsewhere (as a key, in a line no rule
    // flagged) is masked too: another problem's snippet may show that line.
    for text in secret_texts(source, problems) {
        for (at, found) in source.match_indices(text) {
            if let Some(masked) = bytes.get_mut(at..at + found.len()) {
                masked.fill(b'*');
            }
        }
    }
    // Every masked range starts and ends on a char boundary of `source` (the
    // spans come from the TOML parser and the redactor) and `*` is one byte,
    // so the result is valid UTF-8; fall back to a lossy copy rather than panic.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Shortest secret-span text matched in messages: a shorter one would mask
/// ordinary words; values that short are not tokens anyway.
const MIN_MASKED_TEXT: usize = 4;

/// The text inside the quotes of every secret span of `source`, longest
/// first (a longer one may contain a shorter one).
fn secret_texts<'a>(source: &'a str, problems: &[Problem]) -> Vec<&'a str> {
    let mut texts: Vec<&str> = problems
        .iter()
        .filter(|p| p.secret)
        .filter_map(|p| {
            let span = clamp(p.span.clone(), source.len());
            let text = source.get(span)?;
            text.get(strip_quotes(text))
        })
        .filter(|t| t.len() >= MIN_MASKED_TEXT)
        .collect();
    texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
    texts.dedup();
    texts
}

/// Which rule findings [`mask_text`] masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// Every one: messages and labels quote the file's values.
    All,
    /// All but the generic `credential = "..."` assignment: a help text
    /// teaches that syntax with a placeholder (`credential = "NAME"`), and a
    /// value it quotes from the file is masked by its secret span anyway.
    NotSyntax,
}

/// Rule id whose findings [`Rules::NotSyntax`] leaves alone.
const SYNTAX_RULE: &str = "credential-assignment";

/// `text` with every occurrence of `secrets` and every token the secret
/// rules recognise (a message may quote a value as TOML decoded it, escapes
/// undone) replaced by `*`, one per byte, as the snippet masks them.
fn mask_text(text: &str, secrets: &[&str], rules: Rules) -> String {
    let found = super::literal::find_literal_secrets(text)
        .into_iter()
        .filter(|f| rules == Rules::All || f.kind != SYNTAX_RULE)
        .map(|f| f.range);
    let mut ranges: Vec<Range<usize>> = secrets
        .iter()
        .flat_map(|secret| text.match_indices(secret).map(|(at, found)| at..at + found.len()))
        .chain(found)
        .chain(super::age_identities(text))
        .collect();
    if ranges.is_empty() {
        return text.to_owned();
    }
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for range in ranges {
        let start = range.start.max(done);
        if range.end <= start {
            continue;
        }
        out.push_str(text.get(done..start).unwrap_or_default());
        out.extend(std::iter::repeat_n('*', text.get(start..range.end).map_or(0, str::len)));
        done = range.end;
    }
    out.push_str(text.get(done..).unwrap_or_default());
    out
}

/// The range of `text` inside its TOML quotes (`"`, `'`, `"""`, `'''`), or all of it.
fn strip_quotes(text: &str) -> Range<usize> {
    for quote in ["\"\"\"", "'''", "\"", "'"] {
        if text.len() >= 2 * quote.len() && text.starts_with(quote) && text.ends_with(quote) {
            return quote.len()..text.len() - quote.len();
        }
    }
    0..text.len()
}

/// `span` limited to `0..len`. Spans come from the parser and the redactor,
/// so this only guards against an out-of-range slice.
fn clamp(span: Range<usize>, len: usize) -> Range<usize> {
    let start = span.start.min(len);
    start..span.end.clamp(start, len)
}

/// 1-based line and byte column of `offset`, counting line breaks the way
/// miette does (`\n`, `\r\n` and a lone `\r`), so both always agree.
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source.as_bytes()[..offset.min(source.len())];
    let mut line = 1;
    let mut line_start = 0;
    let mut i = 0;
    while i < before.len() {
        match before[i] {
            b'\r' if before.get(i + 1) == Some(&b'\n') => {
                line += 1;
                i += 2;
                line_start = i;
                continue;
            }
            b'\r' | b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    (line, offset.min(source.len()) - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_like_miette() {
        let text = "a = 1\nbb = 2\r\nccc = 3\rd";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
        assert_eq!(line_col(text, 14), (3, 1));
        assert_eq!(line_col(text, 22), (4, 1));
        assert_eq!(line_col(text, 999), (4, 2));
    }

    #[test]
    fn secrets_are_masked_inside_their_quotes() {
        let text = "a = \"hunter2\"\nb = 'x'";
        let problems = vec![Problem::new(4..13, "m", "l", "h").secret()];
        assert_eq!(mask_secrets(text, &problems), "a = \"*******\"\nb = 'x'");
        let bare = vec![Problem::new(2..5, "m", "l", "h").secret()];
        assert_eq!(mask_secrets("x hunter", &bare), "x ***ter");
    }

    #[test]
    fn io_not_found_suggests_init() {
        let err =
            ConfigError::io(Path::new("/nowhere/steward.toml"), std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(err.message().contains("/nowhere/steward.toml"));
        assert!(err.help_text().unwrap_or_default().contains("steward init"));
        assert_eq!(err.line_col(), None);
        assert!(std::error::Error::source(&err).is_some());
    }
}
