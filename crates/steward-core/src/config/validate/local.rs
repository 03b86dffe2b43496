//! Stage two for what steward keeps on this host: `[gateway]` (where it
//! listens, and the server's limits), `[state]` (its private directory),
//! `[store]` (the embedded store, or the fleet's PostgreSQL database) and
//! `[logging]` (the audit log's files and retention).

use super::*;

impl Validator<'_> {
    pub(super) fn gateway(&mut self, raw: RawGateway) -> GatewayConfig {
        let allow_remote = raw.allow_remote.unwrap_or(false);
        let listen = match raw.listen {
            None => DEFAULT_LISTEN,
            Some(text) => match parse_listen(text.get_ref()) {
                None => {
                    self.push(Problem::new(
                        text.span(),
                        format!("listen {:?} is not an IP address and port", text.get_ref()),
                        "not IP:PORT",
                        "write it like listen = \"127.0.0.1:7600\" (IPv6: \"[::1]:7600\")",
                    ));
                    DEFAULT_LISTEN
                }
                Some(addr) => {
                    if !addr.ip().is_loopback() && !allow_remote {
                        self.push(Problem::new(
                            text.span(),
                            format!("refusing to listen on {addr}: it is not a loopback address"),
                            "reachable from other hosts",
                            "steward exposes your credentials to whoever can reach this port; \
                             bind 127.0.0.1 or set allow_remote = true",
                        ));
                    }
                    addr
                }
            },
        };
        let max_body_span = raw_span(&raw.max_body);
        let max_body_bytes = self.size(raw.max_body, "max_body", "1MB", DEFAULT_MAX_BODY);
        if let Some(span) = max_body_span
            && max_body_bytes == 0
        {
            self.push(Problem::new(
                span,
                "max_body is 0, which refuses every request with a body",
                "zero",
                "allow at least a small body, like max_body = \"1MB\"",
            ));
        }
        let header_timeout = self.timeout(raw.header_timeout, "header_timeout", "10s", DEFAULT_HEADER_TIMEOUT);
        let body_timeout = self.timeout(raw.body_timeout, "body_timeout", "30s", DEFAULT_BODY_TIMEOUT);
        let keepalive_timeout =
            self.timeout(raw.keepalive_timeout, "keepalive_timeout", "60s", DEFAULT_KEEPALIVE_TIMEOUT);
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(max @ 1..=MAX_MAX_CONNECTIONS) => max,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!("max_connections = {} is outside 1..={MAX_MAX_CONNECTIONS}", n.get_ref()),
                        "out of range",
                        "use a count such as max_connections = 1024 (the default)",
                    ));
                    DEFAULT_MAX_CONNECTIONS
                }
            },
        };
        GatewayConfig {
            listen,
            allow_remote,
            max_body_bytes,
            header_timeout,
            body_timeout,
            keepalive_timeout,
            max_connections,
        }
    }

    pub(super) fn state(&mut self, raw: RawState) -> StateConfig {
        let dir = match raw.dir {
            Some(text) => self.path(&text, "dir"),
            None => normalize(&self.base_dir.join(DEFAULT_STATE_DIR)),
        };
        StateConfig { dir }
    }

    /// `[store]`: absent or without `url`, the embedded SQLite store; with
    /// `url`, the fleet's PostgreSQL database (`docs/fleet.md`).
    pub(super) fn store(&mut self, raw: RawStore) -> StoreConfig {
        let Some(url_text) = raw.url else {
            for (key, span) in [
                ("instance", raw.instance.as_ref().map(Spanned::span)),
                ("pool", raw.pool.as_ref().map(Spanned::span)),
                ("lease", raw.lease.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    self.push(Problem::new(
                        span,
                        format!("[store] {key} is set but [store] url is not"),
                        "without url",
                        "set url = \"env:STEWARD_STORE_URL\" (a PostgreSQL URL) to share the store across a fleet, \
                         or remove the key: the embedded store has one instance",
                    ));
                }
            }
            return StoreConfig::default();
        };
        let url = self.reference(&url_text, "url", "STEWARD_STORE_URL");
        let instance = match raw.instance {
            Some(text) => {
                let name = text.get_ref();
                let valid = !name.is_empty()
                    && name.len() <= 63
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if !valid {
                    self.push(Problem::new(
                        text.span(),
                        format!("[store] instance {name:?} is not a name of 1 to 63 letters, digits, _ . -"),
                        "invalid name",
                        "name this instance like instance = \"web-1\" (default: the host name)",
                    ));
                }
                name.clone()
            }
            None => default_instance(),
        };
        let pool = match raw.pool {
            Some(n) if (1..=256).contains(n.get_ref()) => usize::try_from(*n.get_ref()).unwrap_or(8),
            Some(n) => {
                self.push(Problem::new(
                    n.span(),
                    format!("[store] pool {} is not between 1 and 256", n.get_ref()),
                    "out of range",
                    "pool = 8 (the default) suits one instance; each connection is a server process",
                ));
                DEFAULT_STORE_POOL
            }
            None => DEFAULT_STORE_POOL,
        };
        let lease_span = raw.lease.as_ref().map(Spanned::span);
        let lease = self.timeout(raw.lease, "lease", "30s", DEFAULT_STORE_LEASE);
        if let Some(span) = lease_span
            && lease < Duration::from_secs(5)
        {
            self.push(Problem::new(
                span,
                format!("[store] lease {lease:?} is under 5 s"),
                "too short",
                "an instance beats every second; a lease under 5 s settles a live instance's calls on a hiccup. \
                 Use lease = \"30s\" (the default)",
            ));
        }
        StoreConfig { fleet: url.map(|url| FleetStoreConfig { url, instance, pool, lease }) }
    }

    pub(super) fn logging(&mut self, raw: RawLogging, state: &StateConfig) -> LoggingConfig {
        let dir = match raw.dir {
            Some(text) => self.path(&text, "dir"),
            None => state.dir.join("logs"),
        };
        let max_file_size = self.size(raw.max_file_size.clone(), "max_file_size", "100MB", DEFAULT_MAX_FILE_SIZE);
        if let Some(span) = raw_span(&raw.max_file_size)
            && max_file_size < MIN_MAX_FILE_SIZE
        {
            self.push(Problem::new(
                span,
                format!("max_file_size ({max_file_size} bytes) is below the 4KiB minimum"),
                "too small",
                "rotate at 4KiB (4096 bytes) or more; the default is max_file_size = \"100MB\"",
            ));
        }
        let retention_days = match raw.retention_days {
            None => DEFAULT_RETENTION_DAYS,
            Some(days) => match u64::try_from(*days.get_ref()) {
                Ok(d @ 1..=MAX_RETENTION_DAYS) => d,
                _ => {
                    self.push(Problem::new(
                        days.span(),
                        format!("retention_days = {} is outside 1..={MAX_RETENTION_DAYS}", days.get_ref()),
                        "out of range",
                        "keep audit files at least one day, like retention_days = 30",
                    ));
                    DEFAULT_RETENTION_DAYS
                }
            },
        };
        let after_retention = self.choice(
            raw.after_retention,
            "after_retention",
            &[("archive", AfterRetention::Archive), ("delete", AfterRetention::Delete)],
            AfterRetention::Archive,
        );
        let max_total_size = self.size(raw.max_total_size.clone(), "max_total_size", "2GB", DEFAULT_MAX_TOTAL_SIZE);
        if max_total_size < max_file_size {
            // Point at whichever of the two the user wrote; the total if both.
            let span = raw_span(&raw.max_total_size).or(raw_span(&raw.max_file_size));
            if let Some(span) = span {
                self.push(Problem::new(
                    span,
                    format!(
                        "max_total_size ({max_total_size} bytes) is smaller than max_file_size \
                         ({max_file_size} bytes), so the active file alone would exceed it"
                    ),
                    "smaller than one file",
                    "make max_total_size several times max_file_size, like max_file_size = \
                     \"100MB\" with max_total_size = \"2GB\"",
                ));
            }
        }
        LoggingConfig {
            dir,
            max_file_size,
            retention: Duration::from_secs(retention_days * 86_400),
            after_retention,
            max_total_size,
        }
    }
}

/// `IP:PORT`, or `localhost:PORT` as a convenience for `127.0.0.1:PORT`.
pub(super) fn parse_listen(text: &str) -> Option<SocketAddr> {
    if let Some(port) = text.strip_prefix("localhost:") {
        return port.parse().ok().map(|port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    text.parse().ok()
}

/// `[store] pool` when absent.
const DEFAULT_STORE_POOL: usize = 8;
/// `[store] lease` when absent.
const DEFAULT_STORE_LEASE: Duration = Duration::from_secs(30);

/// The host name, as a valid instance name (`localhost` when it cannot be
/// read); what `[store] instance` defaults to.
fn default_instance() -> String {
    let name: String = host_name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
        .take(63)
        .collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}

/// This host's name (empty when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}
