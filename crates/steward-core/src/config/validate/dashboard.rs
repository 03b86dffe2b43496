//! Stage two for `[dashboard]`: where the operator's web page listens, and
//! the TLS a listener beyond loopback must have.

use super::local::parse_listen;
use super::*;

/// Default `[dashboard] listen`: loopback, one port above the gateway's
/// default, reached from a laptop through `ssh -L 7601:127.0.0.1:7601`.
pub const DEFAULT_DASHBOARD_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7601);

/// Default `[dashboard] session_ttl`: a working day; a stolen cookie is
/// worth nothing the next morning.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

impl Validator<'_> {
    pub(super) fn dashboard(&mut self, raw: RawDashboard, gateway: &GatewayConfig) -> DashboardConfig {
        let allow_remote = raw.allow_remote.unwrap_or(false);
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (Some(cert), Some(key)) => {
                Some(DashboardTls { cert: self.path(cert, "tls_cert"), key: self.path(key, "tls_key") })
            }
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => {
                self.push(Problem::new(
                    one.span(),
                    "tls_cert and tls_key go together",
                    "half a TLS setup",
                    "set both tls_cert = \"cert.pem\" and tls_key = \"key.pem\", or neither",
                ));
                None
            }
        };
        let listen = match raw.listen {
            None => DEFAULT_DASHBOARD_LISTEN,
            Some(text) => match parse_listen(text.get_ref()) {
                None => {
                    self.push(Problem::new(
                        text.span(),
                        format!("listen {:?} is not an IP address and port", text.get_ref()),
                        "not IP:PORT",
                        "write it like listen = \"127.0.0.1:7601\" (IPv6: \"[::1]:7601\")",
                    ));
                    DEFAULT_DASHBOARD_LISTEN
                }
                Some(addr) => {
                    if !addr.ip().is_loopback() && !allow_remote {
                        self.push(Problem::new(
                            text.span(),
                            format!("refusing to serve the dashboard on {addr}: it is not a loopback address"),
                            "reachable from other hosts",
                            "the dashboard can stop the agent and approve its calls; bind 127.0.0.1 and \
                             reach it with `ssh -L 7601:127.0.0.1:7601 HOST`, or set allow_remote = true \
                             with tls_cert and tls_key",
                        ));
                    } else if !addr.ip().is_loopback() && tls.is_none() {
                        self.push(Problem::new(
                            text.span(),
                            format!("the dashboard on {addr} would send its session cookie in clear"),
                            "allow_remote without TLS",
                            "set tls_cert and tls_key (PEM files) in [dashboard], or bind 127.0.0.1",
                        ));
                    }
                    let shared = addr.port() != 0
                        && addr.port() == gateway.listen.port()
                        && (addr.ip() == gateway.listen.ip()
                            || addr.ip().is_unspecified()
                            || gateway.listen.ip().is_unspecified());
                    if shared {
                        self.push(Problem::new(
                            text.span(),
                            format!("the dashboard cannot share the gateway's address {addr}"),
                            "the agent's port",
                            "the agent must never reach the dashboard; use another port, like \
                             listen = \"127.0.0.1:7601\"",
                        ));
                    }
                    addr
                }
            },
        };
        let session_ttl = self.timeout(raw.session_ttl, "session_ttl", "12h", DEFAULT_SESSION_TTL);
        DashboardConfig { listen, allow_remote, tls, session_ttl }
    }
}
