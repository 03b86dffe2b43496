//! Stage two for what steward keeps on this host: `[gateway]` (where it
//! listens, and the server's limits), `[state]` (its private directory) and
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
