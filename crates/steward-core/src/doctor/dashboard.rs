//! Doctor: Dashboard. Shown only with `[dashboard]`: PASS while it listens
//! on loopback, WARN when `allow_remote` puts it on a network (config
//! loading already requires TLS for that): the page can stop the agent and
//! approve its calls, and an ssh tunnel exposes less.

use super::{CheckResult, Context};

const SECTION: &str = "Dashboard";
const ITEM: &str = "the dashboard is reachable from this host only";

/// The Dashboard section (empty without `[dashboard]`).
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let Some(dashboard) = &ctx.config.dashboard else { return Vec::new() };
    let addr = dashboard.listen;
    if addr.ip().is_loopback() {
        return vec![CheckResult::pass(SECTION, ITEM, format!("listens on {addr} (loopback)"))];
    }
    vec![CheckResult::warn(
        SECTION,
        ITEM,
        format!("listens on {addr} with allow_remote = true (TLS): other hosts can reach its login page"),
        "bind listen = \"127.0.0.1:7601\" and reach it with `ssh -L 7601:127.0.0.1:7601 server`, or keep the \
         port firewalled to the operators' addresses",
    )]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_remote_dashboard_is_a_warning_and_none_is_no_item() {
        let dir = tempfile::tempdir().unwrap();
        let write = |extra: &str| {
            let path = dir.path().join("steward.toml");
            std::fs::write(&path, format!("[agent]\nname = \"a\"\n[state]\ndir = \"./state\"\n{extra}")).unwrap();
            crate::config::load(&path)
        };
        let now = std::time::SystemTime::now();
        let none = write("").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let sections = |config: &crate::config::Config| {
            rt.block_on(super::super::run(config, now))
                .checks
                .into_iter()
                .filter(|c| c.section == super::SECTION)
                .collect::<Vec<_>>()
        };
        assert!(sections(&none).is_empty());
        let local = write("[dashboard]\n").unwrap();
        assert_eq!(sections(&local)[0].status, super::super::Status::Pass);
        std::fs::write(dir.path().join("c.pem"), "x").unwrap();
        std::fs::write(dir.path().join("k.pem"), "x").unwrap();
        let remote = write(
            "[dashboard]\nlisten = \"0.0.0.0:7601\"\nallow_remote = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(sections(&remote)[0].status, super::super::Status::Warn);
    }
}
