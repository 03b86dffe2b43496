//! Doctor: the agent's box. The agent runs as its own user, who cannot
//! reach steward's store, credentials or config; the kernel lets steward
//! build the agent's PID (and network) namespace; the agent's network is
//! steward-only. See `supervisor::sandbox`.

use super::{CheckResult, Context};
use crate::config::{AgentNetwork, Environment};
use crate::supervisor::sandbox::{AccessError, Account, check_private_paths};

const SECTION: &str = "Agent sandbox";

/// What the kernel allows, read once by `gather` from `/proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceProbe {
    /// steward (this process) has root's powers: namespaces need nothing else.
    pub root: bool,
    /// Why unprivileged user namespaces are unavailable, if they are.
    pub userns_refused: Option<String>,
}

impl NamespaceProbe {
    /// Reads the sysctls that gate unprivileged user namespaces.
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
        let refused = if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
            Some("user.max_user_namespaces = 0".to_owned())
        } else if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
            Some("kernel.unprivileged_userns_clone = 0".to_owned())
        } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
            Some("kernel.apparmor_restrict_unprivileged_userns = 1".to_owned())
        } else {
            None
        };
        Self { root: nix::unistd::geteuid().is_root(), userns_refused: refused }
    }
}

/// The Agent sandbox section: nothing to check without `[agent] command`.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let Some(process) = &ctx.config.agent.process else { return Vec::new() };
    let mut out = Vec::new();
    let item = "the agent runs as its own user, away from steward's files";
    let account = process.user.as_deref().map(|user| Account::resolve(user, process.group.as_deref()));
    out.push(match account {
        Some(Err(err)) => CheckResult::fail(SECTION, item, "[agent] user is unknown here", err.to_string()),
        other => {
            let account = other.and_then(Result::ok);
            match check_private_paths(ctx.config, account.as_ref()) {
                Ok(()) => CheckResult::pass(
                    SECTION,
                    item,
                    format!("user {} cannot read or replace steward's files", account.map(|a| a.name).unwrap_or_default()),
                ),
                Err(AccessError::SameUser { who, .. }) => {
                    let production = ctx.config.agent.environment == Environment::Prod;
                    CheckResult::fail(
                        SECTION,
                        item,
                        format!(
                            "no [agent] user: the agent would run as {who}, read steward's credentials and release \
                             its kill switch{}; steward run refuses to start it",
                            if production { " in production" } else { "" }
                        ),
                        "set [agent] user = \"steward-agent\" (`sudo useradd --system --no-create-home --shell \
                         /usr/sbin/nologin steward-agent`) and give steward CAP_SETUID/CAP_SETGID (the shipped unit does)",
                    )
                }
                Err(err) => CheckResult::fail(SECTION, item, "the agent's user could reach steward's files", err.to_string()),
            }
        }
    });
    let item = "the kernel can box the agent (PID namespace)";
    out.push(match (&ctx.namespaces.userns_refused, ctx.namespaces.root) {
        (_, true) => CheckResult::pass(SECTION, item, "steward runs as root: namespaces need nothing more"),
        (None, false) => CheckResult::pass(SECTION, item, "unprivileged user namespaces are allowed"),
        (Some(why), false) => CheckResult::fail(
            SECTION,
            item,
            format!("{why}: without CAP_SYS_ADMIN, steward cannot give the agent its own PID namespace"),
            "allow unprivileged user namespaces (`sysctl -w user.max_user_namespaces=15000 \
             kernel.unprivileged_userns_clone=1 kernel.apparmor_restrict_unprivileged_userns=0`), or add \
             CAP_SYS_ADMIN to the unit's AmbientCapabilities",
        ),
    });
    let item = "the agent reaches the network only through steward";
    out.push(match process.network {
        AgentNetwork::StewardOnly => {
            CheckResult::pass(SECTION, item, "network = \"steward-only\": its own network namespace, the gateway only")
        }
        AgentNetwork::Host => CheckResult::warn(
            SECTION,
            item,
            "network = \"host\": the agent could call upstreams directly (without credentials, unaudited)",
            "set [agent] network = \"steward-only\" (needs the same namespaces as the box)",
        ),
    });
    out
}
