//! How a failed command is reported: the exit code, the text on stderr
//! (an invalid config as one snippet per problem, anything else as its
//! cause chain with no cause repeated), and with `--json` one JSON object
//! on stdout instead, `{"error": {"kind", "message", "help", "location"}}`,
//! so a script reading stdout always gets JSON.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use miette::{Diagnostic, ReportHandler};
use steward_core::config::ConfigError;
use steward_core::secrets::Unresolved;

use super::exit;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// steward.toml is invalid (exit 3).
    Config {
        /// The file, for the JSON `location`.
        path: PathBuf,
        /// Every problem in it.
        error: Box<ConfigError>,
    },
    /// A valid config whose credentials cannot be used here: references
    /// that did not resolve, an unsafe secret file, a dev/prod share, a
    /// credential in `[agent] env` (exit 3 when a person must fix one, else 1).
    Credentials {
        /// The config that names them.
        path: PathBuf,
        /// Every problem, one line each.
        problems: Vec<String>,
        /// Whether a person must fix one (see `SecretsError::needs_a_person`).
        needs_a_person: bool,
    },
    /// The running daemon refused a reload (invalid file, a reference that
    /// did not resolve, a part that could not be built) and keeps its
    /// current config (exit 3).
    Reload {
        /// The config the daemon was asked to reload.
        path: PathBuf,
        /// Every problem, one line each.
        problems: Vec<String>,
    },
    /// The running daemon's admin API refused the request (exit 1).
    Api {
        /// The HTTP status it answered.
        status: u16,
        /// Its machine-readable kind (`not_found`, `unauthorized`, ...).
        kind: String,
        /// What happened.
        message: String,
        /// The next command, when it named one.
        help: Option<String>,
    },
    /// Any other failure (exit 1).
    Other(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        CliError::Other(err)
    }
}

impl CliError {
    /// An invalid config loaded from `path`.
    pub fn config(path: impl Into<PathBuf>, error: ConfigError) -> Self {
        CliError::Config { path: path.into(), error: Box::new(error) }
    }

    /// Every reference of the config at `path` that did not resolve.
    pub fn unresolved(path: impl Into<PathBuf>, unresolved: &Unresolved) -> Self {
        CliError::Credentials {
            path: path.into(),
            problems: unresolved.errors.iter().map(ToString::to_string).collect(),
            needs_a_person: unresolved.needs_a_person(),
        }
    }

    /// The exit code this failure ends the command with.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Config { .. } | CliError::Reload { .. } => exit::CONFIG,
            CliError::Credentials { needs_a_person: true, .. } => exit::CONFIG,
            CliError::Credentials { .. } | CliError::Api { .. } | CliError::Other(_) => exit::FAILURE,
        }
    }

    /// Prints the error (stderr, or JSON on stdout with `json`) and returns the exit code.
    pub fn report(self, json: bool) -> ExitCode {
        let code = self.code();
        if json {
            anstream::println!("{}", serde_json::to_string_pretty(&self.to_json()).unwrap_or_default());
        } else {
            anstream::eprint!("{}", self.to_text());
        }
        ExitCode::from(code)
    }

    /// What stderr shows.
    pub fn to_text(&self) -> String {
        match self {
            CliError::Config { error, .. } => config_text(error),
            CliError::Credentials { path, problems, .. } => {
                let mut text = String::new();
                for problem in problems {
                    text.push_str(&format!("error: {problem}\n"));
                }
                text.push_str(&format!("{}: {}\n", path.display(), credentials_summary(problems.len())));
                text
            }
            CliError::Reload { path, problems } => {
                let mut text = String::new();
                for problem in problems {
                    text.push_str(&format!("error: {problem}\n"));
                }
                text.push_str(&format!("{}: {}\n", path.display(), RELOAD_REFUSED));
                text
            }
            CliError::Api { message, help, .. } => match help {
                Some(help) => format!("error: {message}\nhelp: {help}\n"),
                None => format!("error: {message}\n"),
            },
            CliError::Other(err) => format!("error: {}\n", chain_text(err)),
        }
    }

    /// `{"error": {"kind", "message", "help", "location", ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let error = match self {
            CliError::Config { path, error } => {
                let mut problems = error.errors().map(|e| problem_json(path, e));
                let mut first = problems.next().unwrap_or_default();
                first["kind"] = "config".into();
                first["related"] = problems.collect::<Vec<_>>().into();
                first
            }
            CliError::Credentials { path, problems, .. } => serde_json::json!({
                "kind": "credentials",
                "message": credentials_summary(problems.len()),
                "help": CREDENTIALS_HELP,
                "location": path.display().to_string(),
                "problems": problems,
            }),
            CliError::Reload { path, problems } => serde_json::json!({
                "kind": "reload",
                "message": RELOAD_REFUSED,
                "help": RELOAD_HELP,
                "location": path.display().to_string(),
                "problems": problems,
            }),
            CliError::Api { status, kind, message, help } => serde_json::json!({
                "kind": kind,
                "message": message,
                "help": help,
                "location": null,
                "status": status,
            }),
            CliError::Other(err) => serde_json::json!({
                "kind": "failure",
                "message": chain_text(err),
                "help": null,
                "location": null,
            }),
        };
        serde_json::json!({ "error": error })
    }
}

/// What [`CliError::Reload`] means for the running daemon.
const RELOAD_REFUSED: &str = "the daemon refused the new config and keeps running the previous one";

/// The fix for [`CliError::Reload`].
const RELOAD_HELP: &str =
    "fix each problem as its message says, check with `steward config check`, then `steward reload` again";

/// The fix for [`CliError::Credentials`], after each problem's own.
const CREDENTIALS_HELP: &str = "fix each as its message says (export the variable, chmod the file, ...); \
                                `steward config check --offline` validates the file without resolving credentials";

/// `N credential problem(s): steward run does not start`.
fn credentials_summary(count: usize) -> String {
    format!(
        "{count} credential problem(s): steward run does not start until each is fixed as its message says \
         (`steward config check` lists them all)"
    )
}

/// One config problem as JSON: message, help and `path:line:column`.
fn problem_json(path: &std::path::Path, error: &ConfigError) -> serde_json::Value {
    let location = match error.line_col() {
        Some((line, column)) => format!("{}:{line}:{column}", path.display()),
        None => path.display().to_string(),
    };
    serde_json::json!({ "message": error.message(), "help": error.help_text(), "location": location })
}

/// Every problem of an invalid config, each rendered alone (snippet,
/// label, fix) one after the other: miette's own rendering of the
/// related list prefixes all but the first with a stray `Error:`.
pub fn config_text(error: &ConfigError) -> String {
    let handler = miette::MietteHandlerOpts::new().color(super::color_on_stderr()).force_graphical(true).build();
    let mut text = String::new();
    for problem in error.errors() {
        text.push_str(&format!("{}\n", Rendered { handler: &handler, diagnostic: &Alone(problem) }));
    }
    let count = error.errors().count();
    if count > 1 {
        text.push_str(&format!("{count} problems; fix them all, then run `steward config check` again\n"));
    }
    text
}

/// The error and its causes joined by `: `, skipping a cause whose text the
/// message before it already includes (`cannot listen on ...: Address
/// already in use (os error 98)` says it once, not twice).
pub fn chain_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// A diagnostic rendered by a miette handler.
struct Rendered<'a> {
    handler: &'a miette::MietteHandler,
    diagnostic: &'a dyn Diagnostic,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handler.debug(self.diagnostic, f)
    }
}

/// One problem without its related list (each is rendered on its own).
#[derive(Debug)]
struct Alone<'a>(&'a ConfigError);

impl fmt::Display for Alone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl std::error::Error for Alone<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(self.0)
    }
}

impl Diagnostic for Alone<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.0.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help()
    }
    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.url()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.0.diagnostic_source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that names its cause in its own message, like `DaemonError::Bind`.
    #[derive(Debug)]
    struct Bind(std::io::Error);

    impl fmt::Display for Bind {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot listen on 127.0.0.1:7600: {}; change [gateway] listen", self.0)
        }
    }

    impl std::error::Error for Bind {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_the_message_already_names_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use (os error 98)");
        let err = anyhow::Error::new(Bind(io)).context("steward could not start");
        let text = chain_text(&err);
        assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
        assert_eq!(
            text,
            "steward could not start: cannot listen on 127.0.0.1:7600: Address already in use (os error 98); \
             change [gateway] listen"
        );
        // A cause the message does not name is kept.
        let err = anyhow::anyhow!("disk full").context("cannot write the audit log");
        assert_eq!(chain_text(&err), "cannot write the audit log: disk full");
    }
}
