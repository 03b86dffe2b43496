//! Reaching the fleet's database: the `[store] url` parsed once into a
//! [`Target`] (what every connection of the instance uses: the pool's, the
//! kill switch watch's, the lease's), TLS through rustls, the pool, and
//! the check that refuses a transaction-mode pooler.
//!
//! The URL is a credential (it may carry a password): it is never logged
//! and never part of an error. What steward prints about the database is
//! [`Target::describe`]: user, host, port and database name.
//!
//! TLS: `sslmode` from the URL (`disable`, `prefer`, the default, or
//! `require`). When TLS is used the server's certificate is always
//! verified, and its name checked: `require` is what libpq calls
//! `verify-full`. Against the platform's roots (the outbound HTTP door's
//! verifier), or with `sslrootcert=PATH` in the URL against that CA
//! bundle only (a private CA; the driver does not know the option, so it
//! is taken out here).

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, SimpleQueryMessage, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;
use super::{Client, pg_error};

/// The TLS stream of a connection.
type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// One connection and the task-less half that drives it (the caller polls
/// or spawns it).
pub(crate) type Connection = tokio_postgres::Connection<Socket, TlsStream>;

/// Where the fleet's database is and how to reach it (see the module docs).
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    describe: Arc<str>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the config: it holds the password.
        f.debug_struct("Target").field("describe", &self.describe).finish_non_exhaustive()
    }
}

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    /// Parses a connection URL (`postgresql://user:password@host:port/db?sslmode=...`)
    /// or a libpq key/value string. The error names the form expected and
    /// never repeats the text (it may hold a password).
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let (url, root_cert) = take_root_cert(url);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            StoreError::Unavailable(format!(
                "[store] url is not a PostgreSQL connection URL ({}); write it like \
                 postgresql://steward:PASSWORD@db.internal:5432/steward?sslmode=require",
                without_text(&e)
            ))
        })?;
        if config.get_hosts().is_empty() {
            return Err(StoreError::Unavailable(
                "[store] url names no host; write it like postgresql://steward:PASSWORD@db.internal:5432/steward"
                    .into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("steward");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => String::new(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let describe = format!(
            "{}@{host}:{port}/{}",
            config.get_user().unwrap_or("(user from the environment)"),
            config.get_dbname().or(config.get_user()).unwrap_or("postgres")
        );
        let tls = match &root_cert {
            None => crate::outbound::tls_config(&[b"postgresql"]),
            Some(path) => crate::outbound::tls_config_with_roots(roots_from(path)?, &[b"postgresql"]),
        }
        .map(MakeRustlsConnect::new)
        .map_err(|e| StoreError::Unavailable(format!("cannot set up TLS for the fleet's database: {e}")))?;
        Ok(Target { config, tls, describe: describe.into() })
    }

    /// `user@host:port/database`, for messages: never the password.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A new connection, and its connection half, which the caller must
    /// poll (or spawn) for the client to make progress.
    pub(crate) async fn connect_raw(&self) -> Result<(tokio_postgres::Client, Connection), StoreError> {
        self.config.connect(self.tls.clone()).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot connect to the fleet's database {}: {}", self.describe, cause(&e)))
        })
    }

    /// A new connection whose half runs on its own task; dropping the
    /// client ends it.
    pub async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.connect_raw().await?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a fleet store connection ended");
            }
        });
        Ok(Client::new(client, task))
    }

    /// The pool of `size` connections the store's operations borrow from.
    /// Connections are made on demand; a closed one is replaced.
    pub fn pool(&self, size: usize) -> Result<Pool, StoreError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the fleet store's pool: {e}")))
    }

    /// Refuses a database reached through a pooler in transaction mode
    /// (pgbouncer `pool_mode = transaction`): there, a session's `LISTEN`
    /// and its advisory locks belong to whatever server connection ran the
    /// last transaction, so the kill switch's notifications would be lost
    /// and a lease would not be held. Checked the way it breaks: one
    /// connection `LISTEN`s and asks its backend's pid twice (two
    /// transactions), another `NOTIFY`s; on a session (or direct)
    /// connection the pid is the same and the notification arrives.
    pub async fn check_session_pooling(&self) -> Result<(), StoreError> {
        let (listener, mut connection) = self.connect_raw().await?;
        let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<String>();
        let pump = tokio::spawn(async move {
            while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if let AsyncMessage::Notification(n) = message
                    && notes_tx.send(n.payload().to_owned()).is_err()
                {
                    return;
                }
            }
        });
        let listener = Client::new(listener, pump);
        let failed = |doing: &'static str| move |e: tokio_postgres::Error| pg_error(doing, &e);
        let nonce = crate::store::new_call_id();
        listener.batch_execute("LISTEN steward_probe").await.map_err(failed("listening for the session probe"))?;
        // The simple query protocol throughout: a statement prepared on
        // one server connection and run on another fails in transaction
        // mode ("prepared statement does not exist") before the probe
        // could tell what it is for.
        let backend_pid = || async {
            let messages = listener.simple_query("SELECT pg_backend_pid()").await?;
            Ok::<_, tokio_postgres::Error>(messages.into_iter().find_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            }))
        };
        let first = backend_pid().await.map_err(failed("probing the session"))?;
        let second = backend_pid().await.map_err(failed("probing the session"))?;
        let same_backend = first.is_some() && first == second;
        let notifier = self.connect().await?;
        // The nonce is a UUID (hex digits and dashes): safe as a literal.
        notifier
            .simple_query(&format!("SELECT pg_notify('steward_probe', '{nonce}')"))
            .await
            .map_err(failed("notifying the session probe"))?;
        let heard = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(payload) = notes.recv().await {
                if payload == nonce {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if same_backend && heard {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "the fleet's database {} is reached through a pooler in transaction mode (a session's LISTEN and \
             its locks do not survive its transaction there: {}); connect to PostgreSQL directly, or set \
             pool_mode = session for steward's database in pgbouncer",
            self.describe,
            if same_backend {
                "a notification to this session was lost"
            } else {
                "the session moved between server connections"
            }
        )))
    }
}

/// `url` without its `sslrootcert=PATH` (percent-decoded in a URL's
/// query; a bare word in the key/value form), and that path.
fn take_root_cert(url: &str) -> (String, Option<PathBuf>) {
    const KEY: &str = "sslrootcert=";
    if let Some((base, query)) = url.split_once('?') {
        let mut root = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix(KEY) {
                Some(value) => {
                    root =
                        Some(PathBuf::from(percent_encoding::percent_decode_str(value).decode_utf8_lossy().as_ref()));
                    false
                }
                None => true,
            })
            .collect();
        let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return (url, root);
    }
    if url.contains("://") {
        return (url.to_owned(), None);
    }
    let mut root = None;
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|word| match word.strip_prefix(KEY) {
            Some(value) => {
                root = Some(PathBuf::from(value));
                false
            }
            None => true,
        })
        .collect();
    (kept.join(" "), root)
}

/// The certificates of the PEM bundle at `path`, as the only roots trusted.
fn roots_from(path: &std::path::Path) -> Result<rustls::RootCertStore, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let unreadable = |why: String| {
        StoreError::Unavailable(format!(
            "[store] url's sslrootcert {} cannot be used: {why}; point it at the PEM file of the CA that signed \
             the database server's certificate",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(unreadable("it holds no certificate".into()));
    }
    Ok(roots)
}

/// A driver error's cause without any of the text it was given.
fn without_text(e: &tokio_postgres::Error) -> String {
    // The parser's messages name the option, never its value; keep only
    // the part before any quoted value in case a future version adds one.
    let text = e.to_string();
    text.split(['\'', '"']).next().unwrap_or_default().trim_end_matches([' ', ':']).to_owned()
}

/// Why a connection failed: the server's message, or the driver's.
pub(super) fn cause(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                source = inner.source();
            }
            text
        }
    }
}
