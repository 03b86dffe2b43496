//! The validated configuration: what every other module reads.
//!
//! A [`Config`] only exists once every check in `config::load` passed, so the
//! rest of steward never re-validates: durations are [`Duration`]s, limits are
//! parsed, references between sections (tool → upstream → credential) are known
//! to resolve, and paths are absolute.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::undo::UndoSpec;
use super::units::Usd;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute path of the file this was loaded from; backups and doctor read it again.
    pub source_path: PathBuf,
    /// The text this was validated from, and its SHA-256: what a reload
    /// compares the file on disk with, and the hash `status` and `doctor` show.
    pub source: ConfigSource,
    /// The agent steward stands around.
    pub agent: AgentConfig,
    /// The HTTP listener the agent talks to.
    pub gateway: GatewayConfig,
    /// Where the store, the agent token and the daemon lock live.
    pub state: StateConfig,
    /// `[store]`: the embedded SQLite file, or a PostgreSQL database a fleet shares.
    pub store: StoreConfig,
    /// Audit log location, rotation and retention.
    pub logging: LoggingConfig,
    /// Named credential references; values are resolved by `secrets`, never stored here.
    pub credentials: BTreeMap<String, CredentialConfig>,
    /// Named upstream HTTP APIs, reached through `/api/{name}/...`.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Tools in declaration order: the first whose rule matches a call names it.
    pub tools: Vec<ToolConfig>,
    /// Named LLM providers, reached through `/llm/{name}/...`.
    pub llm: BTreeMap<String, LlmProviderConfig>,
    /// Named MCP servers, reached through `/mcp/{name}` and `steward mcp NAME`.
    pub mcp: BTreeMap<String, McpServerConfig>,
    /// The daily spend cap and how LLM calls are bounded against it.
    pub spend: SpendConfig,
    /// `[prices."MODEL"]`: additions to and overrides of the built-in price table.
    pub prices: BTreeMap<String, ModelPrice>,
    /// Repeated identical calls stop the agent.
    pub loop_breaker: LoopBreakerConfig,
    /// What happens to calls no tool rule matches.
    pub unmatched: UnmatchedPolicy,
    /// What redaction removes besides credentials and secret patterns.
    pub redaction: RedactionConfig,
    /// Rules every credential is held to: forbidden scopes, expiry warnings.
    pub policy: PolicyConfig,
    /// `[backup]`; `None` when the section is absent (no backups are taken).
    pub backup: Option<BackupConfig>,
    /// When and where steward alerts a human.
    pub alerts: super::AlertsConfig,
    /// The dead-man ping that lets an outside service notice steward's death.
    pub heartbeat: Option<super::HeartbeatConfig>,
    /// `[runbook]`: whom to call, and where `steward runbook` writes the page.
    /// Present (empty) when the section is absent, so the page can always be rendered.
    pub runbook: RunbookConfig,
    /// `[dashboard]`: the operator's web page; `None` when the section is
    /// absent (no dashboard is served).
    pub dashboard: Option<DashboardConfig>,
    /// `[supervised]`: whether side-effect calls wait for a human, how long,
    /// and when `steward report` calls the agent ready.
    pub supervised: SupervisedConfig,
}

/// `[supervised]`: the first week (see `pipeline::approval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisedConfig {
    /// Whether `approval = "supervised"` tools wait for a human (until
    /// `steward graduate` records the end of the first week).
    pub enabled: bool,
    /// How long steward holds the agent's request open for a decision
    /// before answering `approval_pending`: long enough for a human at the
    /// terminal, short enough for the agent's HTTP client not to give up.
    pub wait: Duration,
    /// A request nobody decided by then is expired, never approved (fail
    /// closed); an approved grant unused by then is void too.
    pub expires: Duration,
    /// `[supervised.ready]`: what `steward report` and `steward graduate` require.
    pub ready: ReadyThresholds,
}

impl Default for SupervisedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            wait: super::validate::DEFAULT_SUPERVISED_WAIT,
            expires: super::validate::DEFAULT_SUPERVISED_EXPIRES,
            ready: ReadyThresholds::default(),
        }
    }
}

/// `approval = ...` of a `[[tools]]` entry: when its calls wait for a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// While `[supervised]` is on and not graduated (the default of side-effect tools).
    Supervised,
    /// Always, even after graduation (`delete_account`).
    Always,
    /// Never (the default of tools without side effects).
    Never,
}

impl Approval {
    /// The word used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Supervised => "supervised",
            Approval::Always => "always",
            Approval::Never => "never",
        }
    }

    /// Whether a call of a tool with this setting waits for a human, when
    /// supervision is `supervising` (`[supervised] enabled` and not graduated).
    pub fn required(self, supervising: bool) -> bool {
        match self {
            Approval::Supervised => supervising,
            Approval::Always => true,
            Approval::Never => false,
        }
    }
}

/// The text of a config file as it was validated.
#[derive(Clone)]
pub struct ConfigSource {
    /// The text: a reload reads which top-level sections changed from it.
    text: std::sync::Arc<str>,
    /// Lowercase hex SHA-256 of the text's bytes (`sha256sum steward.toml`).
    sha256: String,
}

impl ConfigSource {
    /// The source `text` and its hash.
    pub fn new(text: &str) -> Self {
        Self { text: text.into(), sha256: sha256_hex(text.as_bytes()) }
    }

    /// The text as validated.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Lowercase hex SHA-256 of the file's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// Only the hash: the text is the whole file.
impl std::fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSource").field("sha256", &self.sha256).finish_non_exhaustive()
    }
}

/// Lowercase hex SHA-256 of `bytes`: the config hash `reload`, `status`
/// and `doctor` show, comparable with `sha256sum`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `[agent]`
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Shown in audit records, alerts and the runbook.
    pub name: String,
    /// dev and prod must never share a credential.
    pub environment: Environment,
    /// The process steward starts and supervises (`command = [...]`); `None`
    /// when the agent is started some other way (the supervisor is `disabled`).
    pub process: Option<AgentProcess>,
}

/// `[agent] command`, `workdir`, `env`, `health_url`, `stop_grace`, `min_uptime`:
/// how steward runs the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProcess {
    /// Program and arguments, exec'd directly (no shell). Never empty; the
    /// program is looked up in the agent's `PATH` when it has no `/`.
    pub command: Vec<String>,
    /// Absolute working directory; defaults to the config file's directory.
    pub workdir: PathBuf,
    /// Extra plain variables on top of the minimal environment. Never a
    /// secret: steward refuses to start when a value contains a credential.
    pub env: BTreeMap<String, String>,
    /// Polled every few seconds while the agent runs; 2xx means healthy.
    /// Without it, liveness is "the process is alive".
    pub health_url: Option<String>,
    /// Time between SIGTERM and SIGKILL of the agent's process group.
    pub stop_grace: Duration,
    /// An exit sooner than this after start counts towards the crash loop.
    pub min_uptime: Duration,
    /// `[agent] user`: the account the agent runs as (name or numeric uid),
    /// so that it cannot read or write what steward owns. `None`: steward's
    /// own uid, which steward accepts only when the agent's box hides the
    /// store from it (see `supervisor::sandbox`).
    pub user: Option<String>,
    /// `[agent] group` (name or numeric gid); `None`: the user's primary group.
    pub group: Option<String>,
    /// `[agent] network`: whether the agent may reach anything but steward.
    pub network: AgentNetwork,
}

/// `[agent] network`: what the agent's network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentNetwork {
    /// The host's network, as any process (the default).
    #[default]
    Host,
    /// Its own network namespace, in which the only reachable endpoint is
    /// steward's gateway: "the agent reaches the world only through steward"
    /// becomes a property of the kernel, not a convention.
    StewardOnly,
}

impl AgentNetwork {
    /// The word used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentNetwork::Host => "host",
            AgentNetwork::StewardOnly => "steward-only",
        }
    }
}

/// Deployment environment of the agent or of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development: may be noisy, must not hold production tokens.
    Dev,
    /// Production.
    Prod,
}

impl Environment {
    /// The word used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Prod => "prod",
        }
    }
}

/// `[runbook]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookConfig {
    /// Whom to call, in the order to call them, as written ("Ana Ops
    /// <ana@example.com> (on-call, first)"). Empty: the page says nobody is
    /// listed, and `steward doctor` warns.
    pub contacts: Vec<String>,
    /// Absolute path `steward runbook` writes the page to; default
    /// `<state dir>/RUNBOOK.md`.
    pub output: PathBuf,
    /// Free text put under the contacts (who owns which account, escalation).
    pub notes: Option<String>,
    /// The user steward runs as, when that is not whoever reads the page
    /// (the `steward` user of the systemd unit): every command is printed
    /// as `sudo -u USER steward ...`, since only that user can read the
    /// state. `None`: commands are printed bare (`steward runbook` also
    /// looks for an installed unit's `User=`).
    pub run_as: Option<String>,
}

/// `[gateway]`
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to bind. Loopback unless `allow_remote`.
    pub listen: SocketAddr,
    /// Explicit opt-in to bind a non-loopback address.
    pub allow_remote: bool,
    /// Largest request body accepted from the agent. Request bodies are read
    /// whole (up to this size) because the loop breaker and the audit summary
    /// need them; responses are streamed.
    pub max_body_bytes: u64,
    /// A client must send a request's whole head (request line and headers)
    /// within this, from its first byte: a slowloris sender holds a
    /// connection (a file descriptor) for this long at most.
    pub header_timeout: Duration,
    /// Longest pause while a request body is read; a stalled body is refused
    /// with 408 and its connection closed.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection (or one that never sent a
    /// byte) is kept for its next request.
    pub keepalive_timeout: Duration,
    /// Open connections at most. At the cap, the connection idle the longest
    /// is closed to admit a new one; with none idle, new connections wait in
    /// the listen backlog. Bounded below the open-file limit at start.
    pub max_connections: u32,
}

/// `[dashboard]`
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Address to bind: its own listener, never the gateway's. Loopback
    /// unless `allow_remote` (which also needs `tls`).
    pub listen: SocketAddr,
    /// Explicit opt-in to bind a non-loopback address.
    pub allow_remote: bool,
    /// Certificate and key: the dashboard speaks HTTPS when set (required
    /// with `allow_remote`: a session cookie must not cross a network in clear).
    pub tls: Option<DashboardTls>,
    /// How long a login session lasts before the operator logs in again.
    pub session_ttl: Duration,
}

/// `[dashboard] tls_cert` and `tls_key`.
#[derive(Debug, Clone)]
pub struct DashboardTls {
    /// PEM certificate chain, absolute.
    pub cert: PathBuf,
    /// PEM private key, absolute.
    pub key: PathBuf,
}

/// `[store]`
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `None`: the embedded SQLite file `[state] dir/steward.db` (the default).
    pub fleet: Option<FleetStoreConfig>,
}

/// `[store] url = ...`: a PostgreSQL database shared by a fleet of instances
/// (`docs/fleet.md`).
#[derive(Debug, Clone)]
pub struct FleetStoreConfig {
    /// The connection URL, a secret reference (it may carry a password);
    /// resolved by `secrets` under [`STORE_URL_LABEL`].
    pub url: CredentialSource,
    /// This instance's name in the fleet: its lease, its journal rows, its
    /// audit lines. Default: the host name.
    pub instance: String,
    /// Connections in the pool (default 8).
    pub pool: usize,
    /// An instance silent this long is dead to the fleet: a live one settles
    /// its calls (default 30 s).
    pub lease: Duration,
}

/// The [`crate::secrets::Secrets`] label of `[store] url`.
pub const STORE_URL_LABEL: &str = "store:url";

/// `[state]`
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Absolute directory holding `steward.db`, `agent.token`, `daemon.lock`, `daemon.addr`. Mode 0700.
    pub dir: PathBuf,
}

impl StateConfig {
    /// `<dir>/steward.db`
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("steward.db")
    }
    /// `<dir>/agent.token` (0600)
    pub fn token_path(&self) -> PathBuf {
        self.dir.join("agent.token")
    }
    /// `<dir>/daemon.lock`: held (flock) by a running daemon.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }
    /// `<dir>/daemon.addr`: the address the running daemon actually bound.
    pub fn addr_path(&self) -> PathBuf {
        self.dir.join("daemon.addr")
    }
    /// `<dir>/admin.token` (0600): the operator's bearer token for the admin API.
    pub fn admin_token_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }
    /// `<dir>/admin.sock` (0600): the running daemon's admin API.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }
    /// `<dir>/reload.json`: the outcome of the daemon's last credential
    /// reload, which `steward secrets reload` waits for.
    pub fn reload_status_path(&self) -> PathBuf {
        self.dir.join("reload.json")
    }
}

/// `[logging]`
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// Absolute directory of `audit.jsonl` and its rotated files. Mode 0700.
    pub dir: PathBuf,
    /// Rotate the active file before it would grow past this many bytes.
    pub max_file_size: u64,
    /// Rotated files older than this are archived or deleted.
    pub retention: Duration,
    /// What happens after `retention`.
    pub after_retention: AfterRetention,
    /// Oldest files (archives first) are deleted while the directory plus
    /// the state store exceed this. The store is never trimmed to fit (it
    /// holds live state); see `doctor/disk.rs`.
    pub max_total_size: u64,
}

/// What happens to an audit file once it is older than the retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRetention {
    /// Compress with zstd into `<dir>/archive/`.
    Archive,
    /// Remove.
    Delete,
}

/// `[credentials.NAME]`
#[derive(Debug, Clone)]
pub struct CredentialConfig {
    /// Where the value comes from; never the value itself.
    pub source: CredentialSource,
    /// Which deployment the credential belongs to. Defaults to
    /// `[agent].environment`; an explicit mismatch with the agent is refused
    /// where the credential is used, and a dev and a prod credential may
    /// never hold the same value.
    pub environment: Environment,
    /// `expires` as written: the instant the credential stops working (a
    /// date means 00:00 UTC that day, the earliest reading, so steward fails
    /// closed). A JWT's own `exp` is read at resolve time and the earlier wins.
    pub expires: Option<SystemTime>,
    /// Declared scopes, as the provider names them. Checked against
    /// `[policy].forbidden_scopes` at load and compared with what the
    /// upstream reports (`scopes_header`, `introspection_url`).
    pub scopes: Vec<String>,
}

/// A reference to a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `env:NAME`
    Env(String),
    /// `file:PATH` (absolute after validation; must be 0600 or 0400).
    File(PathBuf),
    /// `systemd:NAME`: `$CREDENTIALS_DIRECTORY/NAME`, from systemd's `LoadCredential=`.
    Systemd(String),
    /// `command:ARGV`: the trimmed stdout of a program (`pass show social`),
    /// split into arguments by shell-like quoting rules; no shell runs it.
    Command(Vec<String>),
    /// `vault:PATH#FIELD`: HashiCorp Vault KV v2, `GET $VAULT_ADDR/v1/PATH`
    /// with `VAULT_TOKEN`, the value under `data.data.FIELD`.
    Vault {
        /// API path below `/v1/`, such as `kv/data/agent`.
        path: String,
        /// Key inside the secret's data.
        field: String,
    },
}

impl CredentialSource {
    /// Short name of the source type (`env`, `file`, ...), for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialSource::Env(_) => "env",
            CredentialSource::File(_) => "file",
            CredentialSource::Systemd(_) => "systemd",
            CredentialSource::Command(_) => "command",
            CredentialSource::Vault { .. } => "vault",
        }
    }

    /// Where the value comes from, in words safe to print (no value, and for
    /// `command:` only the program, since arguments may be sensitive paths).
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Env(var) => format!("environment variable {var}"),
            CredentialSource::File(path) => format!("file {}", path.display()),
            CredentialSource::Systemd(name) => format!("systemd credential {name}"),
            CredentialSource::Command(argv) => {
                format!("command `{}`", argv.first().map(String::as_str).unwrap_or_default())
            }
            CredentialSource::Vault { path, field } => format!("vault {path}#{field}"),
        }
    }
}

/// `[policy]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Scope patterns no credential may hold: exact (`admin`), a prefix glob
    /// (`admin:*`) or everything (`*`). Empty by default; `steward doctor`
    /// warns about that.
    pub forbidden_scopes: Vec<String>,
    /// Days before expiry at which a credential is reported, descending and
    /// unique (default 14, 7, 3, 1).
    pub expiry_warning_days: Vec<u32>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            forbidden_scopes: Vec::new(),
            expiry_warning_days: super::validate::DEFAULT_EXPIRY_WARNING_DAYS.to_vec(),
        }
    }
}

/// `[upstreams.NAME]`
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Scheme, host, port and optional path prefix; no trailing slash.
    pub base_url: String,
    /// Key into [`Config::credentials`]; `None` for APIs that need no auth.
    pub credential: Option<String>,
    /// How the credential is put on the request.
    pub auth: AuthInjection,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence between two reads of the response before it is abandoned.
    pub read_timeout: Duration,
    /// Response header in which the upstream reports the injected token's
    /// real scopes (GitHub: `X-OAuth-Scopes`); compared with the credential's
    /// declared `scopes`, a mismatch is logged once.
    pub scopes_header: Option<String>,
    /// RFC 7662 token-introspection endpoint of the upstream's authorization
    /// server: steward asks it about the injected token at start, after every
    /// credential reload and daily, and compares the scopes it reports with
    /// the declared ones. https unless the host is loopback: the token is
    /// sent in the request body.
    pub introspection_url: Option<String>,
    /// `[credentials.*]` entry steward authenticates to the introspection
    /// endpoint with (`client_id:client_secret`, sent as HTTP Basic). `None`:
    /// the token itself is sent as a Bearer token, which many endpoints accept.
    pub introspection_credential: Option<String>,
}

/// `auth = { header = "Authorization", format = "Bearer {secret}" }`
#[derive(Debug, Clone)]
pub struct AuthInjection {
    /// Header name, validated as an HTTP header name.
    pub header: String,
    /// Template containing `{secret}` exactly once.
    pub format: String,
}

/// `[llm.NAME]`: an OpenAI- or Anthropic-compatible API.
#[derive(Debug, Clone)]
pub struct LlmProviderConfig {
    /// Which wire protocol the provider speaks: decides how the credential is
    /// injected and the shape of the errors steward returns in its name.
    pub kind: LlmKind,
    /// Scheme, host, port and optional path prefix; no trailing slash.
    pub base_url: String,
    /// Key into [`Config::credentials`]. Required: an LLM call always costs
    /// money on someone's account (a local server that ignores keys can be
    /// given any value).
    pub credential: String,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence between two reads of the response. Long, because a
    /// model may think for minutes before its first token.
    pub read_timeout: Duration,
}

/// The API family of an `[llm.*]` provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmKind {
    /// OpenAI and every OpenAI-compatible server: `Authorization: Bearer`.
    OpenAi,
    /// Anthropic: `x-api-key`, `anthropic-version` passed through.
    Anthropic,
}

impl LlmKind {
    /// The word used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmKind::OpenAi => "openai",
            LlmKind::Anthropic => "anthropic",
        }
    }
}

/// `[spend]`
#[derive(Debug, Clone, PartialEq)]
pub struct SpendConfig {
    /// Hard cap on LLM spend per day, in USD, as written; `None` means no cap
    /// (`steward doctor` fails on that). Validated positive and exactly
    /// representable: use [`SpendConfig::daily_cap`] for arithmetic.
    pub daily_cap_usd: Option<f64>,
    /// Spend at which the monitoring alert fires, at most the cap.
    pub alert_at_usd: Option<f64>,
    /// When "daily" starts: midnight in this zone (an IANA zone follows
    /// daylight saving time; a fixed offset does not).
    pub timezone: jiff::tz::TimeZone,
    /// `timezone` as written (`UTC`, `+02:00`, `Europe/Berlin`), for the
    /// runbook and messages.
    pub timezone_name: String,
    /// Output bound set on requests that name none, so every call has a
    /// finite worst-case cost to reserve.
    pub default_max_output_tokens: u32,
    /// Days of the spend ledger kept (`steward spend --days` history); older
    /// settled records are deleted hourly, so the ledger does not grow forever.
    pub history_days: u32,
}

impl SpendConfig {
    /// The cap in exact micro-dollars.
    pub fn daily_cap(&self) -> Option<Usd> {
        self.daily_cap_usd.and_then(Usd::from_dollars)
    }

    /// The alert threshold in exact micro-dollars.
    pub fn alert_at(&self) -> Option<Usd> {
        self.alert_at_usd.and_then(Usd::from_dollars)
    }

    /// The spend day (`YYYY-MM-DD` in `timezone`) that `t` falls in, `days_back` days earlier.
    pub fn day_of(&self, t: std::time::SystemTime, days_back: u32) -> String {
        // Outside jiff's range (years beyond ±9999) only in a broken clock: count it as the epoch.
        let at = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let date = self.timezone.to_datetime(at).date();
        let date = date.checked_sub(jiff::Span::new().days(i64::from(days_back))).unwrap_or(date);
        crate::clock::format_ymd(i32::from(date.year()), date.month().unsigned_abs(), date.day().unsigned_abs())
    }
}

impl Default for SpendConfig {
    fn default() -> Self {
        Self {
            daily_cap_usd: None,
            alert_at_usd: None,
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".to_owned(),
            default_max_output_tokens: super::validate::DEFAULT_MAX_OUTPUT_TOKENS,
            history_days: super::validate::DEFAULT_SPEND_HISTORY_DAYS,
        }
    }
}

/// The price of one model, per million tokens: a `[prices."MODEL"]` entry or
/// an entry of the built-in table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    /// Per 1M input tokens that are neither cache reads nor cache writes.
    pub input: Usd,
    /// Per 1M output tokens, reasoning tokens included (providers bill them as output).
    pub output: Usd,
    /// Per 1M input tokens read from the prompt cache. Defaults to `input`.
    pub cached_input: Usd,
    /// Per 1M input tokens written to the prompt cache (Anthropic's
    /// 5-minute cache). Defaults to `input`.
    pub cache_write: Usd,
    /// Per 1M tokens written to Anthropic's 1-hour cache; `None` for models
    /// without one, so it does not raise their worst case. Should a response
    /// report such writes anyway, they cost [`ModelPrice::cache_write_1h_price`].
    pub cache_write_1h: Option<Usd>,
    /// The most input tokens one request can make the model read (its context
    /// window). Bounds requests whose input steward cannot measure, such as a
    /// Responses call continuing a stored conversation.
    pub max_input_tokens: Option<u64>,
}

impl ModelPrice {
    /// A price from its written parts, with the documented defaults for the
    /// optional ones (`cached_input` and `cache_write` default to `input`).
    pub fn with_defaults(
        input: Usd,
        output: Usd,
        cached_input: Option<Usd>,
        cache_write: Option<Usd>,
        cache_write_1h: Option<Usd>,
        max_input_tokens: Option<u64>,
    ) -> ModelPrice {
        ModelPrice {
            input,
            output,
            cached_input: cached_input.unwrap_or(input),
            cache_write: cache_write.unwrap_or(input),
            cache_write_1h,
            max_input_tokens,
        }
    }

    /// The price of a 1-hour cache write: as configured, else Anthropic's
    /// rule (twice the input price) or the cache-write price, whichever is higher.
    pub fn cache_write_1h_price(&self) -> Usd {
        self.cache_write_1h
            .unwrap_or_else(|| self.cache_write.max(Usd::from_micros(self.input.micros().saturating_mul(2))))
    }
}

/// One `[[tools]]` entry.
#[derive(Debug, Clone)]
pub struct ToolConfig {
    /// Unique tool name: what audit records, limits and `steward last --tool` use.
    pub name: String,
    /// Which front door the tool's calls come through: it says what
    /// `upstream` and `path` name.
    pub door: ToolDoor,
    /// Key into [`Config::upstreams`] (HTTP tools) or [`Config::mcp`] (MCP tools).
    pub upstream: String,
    /// HTTP method, upper case (`POST`), or `*` for any; `*` for MCP tools.
    pub method: String,
    /// HTTP tools: the path pattern relative to the upstream, segments
    /// `{name}` match any one segment, a final `{*rest}` matches the
    /// remainder. MCP tools: the MCP tool name glob (`*` any run of
    /// characters, `?` one character).
    pub path: String,
    /// Whether the call changes the world (posting, sending, deleting).
    pub side_effect: bool,
    /// Persistent rate limit, if any.
    pub limit: Option<RateLimit>,
    /// When a failed attempt may be retried.
    pub retry: RetryPolicy,
    /// When its calls wait for a human's approval.
    pub approval: Approval,
    /// How a call of this tool is undone (`undo = ...`); `None` when not declared.
    pub undo: Option<UndoSpec>,
}

/// What a `[[tools]]` entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolDoor {
    /// `upstream = "NAME"`, `match = "METHOD /path"`: calls through `/api/NAME`.
    Api,
    /// `mcp = "NAME"`, `match = "tool_name_glob"`: `tools/call` requests to the MCP server NAME.
    Mcp,
}

/// `[mcp.NAME]`: an MCP server whose tools the agent calls through steward.
#[derive(Debug, Clone)]
pub struct McpServerConfig {
    /// How steward reaches it.
    pub transport: McpTransport,
    /// Largest JSON-RPC message accepted either way, in bytes: a bound on
    /// what one message can make steward hold in memory.
    pub max_message_size: u64,
    /// How long one request may wait for the server's answer before the
    /// agent gets an error (a hung server must not hang the agent forever).
    pub request_timeout: Duration,
}

/// How steward reaches an MCP server.
#[derive(Debug, Clone)]
pub enum McpTransport {
    /// steward runs the server and talks JSON-RPC lines on its stdin/stdout.
    Stdio {
        /// argv, run without a shell.
        command: Vec<String>,
        /// The server's variables besides the inherited `PATH`, `HOME`, ... .
        env: BTreeMap<String, McpEnvValue>,
        /// Absolute; `None` runs it in the config file's directory.
        workdir: Option<PathBuf>,
    },
    /// A streamable-HTTP server.
    Http {
        /// The MCP endpoint, http(s).
        url: String,
        /// `[credentials.*]` name injected as `auth` says.
        credential: Option<String>,
        /// Where the credential goes.
        auth: AuthInjection,
    },
}

/// One `env` value of a stdio MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpEnvValue {
    /// A value written in the config (checked for secrets like `[agent] env`).
    Plain(String),
    /// `credential:NAME`: the credential's value, injected when the server starts.
    Credential(String),
}

/// `N/unit` such as `10/hour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed inside one window.
    pub max: u32,
    /// Sliding window length.
    pub per: Duration,
}

/// When an attempt may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Only connect failures, before any byte of the request was sent.
    Never,
    /// Also 5xx, 429 and read errors: the tool is safe to repeat.
    Idempotent,
}

/// `[loop_breaker]`
#[derive(Debug, Clone, Copy)]
pub struct LoopBreakerConfig {
    /// This many identical calls inside `window` trip the kill switch. 0 disables the breaker.
    pub max_identical: u32,
    /// Sliding window.
    pub window: Duration,
}

/// `[unmatched] policy`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedPolicy {
    /// Refuse calls that match no tool (audited as `unmatched`).
    Deny,
    /// Forward unmatched GET/HEAD calls, refuse the rest.
    AllowGet,
}

/// `[redaction]`: which PII detectors run (secrets and credentials always do).
#[derive(Debug, Clone, Copy)]
pub struct RedactionConfig {
    /// Email addresses.
    pub email: bool,
    /// Phone numbers.
    pub phone: bool,
    /// Card numbers passing the Luhn check.
    pub credit_card: bool,
    /// IBANs passing the mod-97 check.
    pub iban: bool,
    /// IPv4 and IPv6 addresses.
    pub ip: bool,
    /// US social security numbers.
    pub ssn: bool,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self { email: true, phone: true, credit_card: true, iban: true, ip: true, ssn: true }
    }
}

/// `[backup]`: what is backed up, where to, how often, how long it is kept.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Cron expression (five fields) of the scheduled backup, checked by croner.
    pub schedule: String,
    /// IANA time zone name the cron expressions and the retention calendar use.
    pub timezone: String,
    /// Absolute agent-state files or directories backed up besides steward's
    /// own config and store.
    pub paths: Vec<PathBuf>,
    /// Whether the audit log directory is included (it can be large).
    pub include_logs: bool,
    /// Where archives go.
    pub destination: BackupDestination,
    /// `[credentials.*]` name whose value is `ACCESS_KEY_ID:SECRET_ACCESS_KEY`
    /// (S3 only).
    pub credentials: Option<String>,
    /// age x25519 recipients (`age1...`); empty means archives are not encrypted.
    pub encrypt_to: Vec<String>,
    /// `[credentials.*]` name whose value is an age identity
    /// (`AGE-SECRET-KEY-1...`), used by verify and the scheduled restore test.
    pub identity: Option<String>,
    /// How many daily, weekly and monthly backups are kept.
    pub keep: KeepPolicy,
    /// Cron expression of the automatic restore test; `None` when disabled
    /// with `restore_test = "never"`.
    pub restore_test: Option<String>,
}

/// Where backups are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupDestination {
    /// A directory on a local (or mounted) filesystem, absolute.
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Destination),
}

/// `s3://bucket/prefix?endpoint=...&region=...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Destination {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Custom endpoint (MinIO, moto, R2...); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Plain-HTTP endpoint allowed: loopback endpoints, or `allow_http=true`.
    pub allow_http: bool,
}

/// `keep = { daily = 7, weekly = 4, monthly = 6 }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The newest backup of each of this many most recent days that have one.
    pub daily: u32,
    /// The newest backup of each of this many most recent ISO weeks that have one.
    pub weekly: u32,
    /// The newest backup of each of this many most recent months that have one.
    pub monthly: u32,
}

/// `[supervised.ready]`: the readiness verdict's configurable thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyThresholds {
    /// At least this many whole days since the first supervised start.
    pub min_days: u32,
    /// At least this many human decisions (approved or denied) in the report's window.
    pub min_decisions: u32,
    /// No denial in this many most recent days.
    pub quiet_days: u32,
}

impl Default for ReadyThresholds {
    fn default() -> Self {
        Self {
            min_days: super::validate::DEFAULT_READY_MIN_DAYS,
            min_decisions: super::validate::DEFAULT_READY_MIN_DECISIONS,
            quiet_days: super::validate::DEFAULT_READY_QUIET_DAYS,
        }
    }
}
