//! Doctor, section Credentials: every credential resolves, dev and prod are
//! separate, no secret sits in a tracked file, git tracks neither the state
//! dir nor a secret file, every credential has a known
//! expiry beyond the warning window, no forbidden scope, the scopes an
//! upstream's token-introspection endpoint reports match the declaration
//! (only shown when an upstream has an `introspection_url`), and the agent
//! holds no real token.

use std::collections::BTreeSet;

use super::git_scan::{ScanOutcome, scan_tracked_files, tracked};
use super::{CheckResult, Context, list};
use crate::clock::format_day;
use crate::config::{CredentialSource, Environment};
use crate::secrets::SecretsError;
use crate::secrets::compare_scopes;
use crate::secrets::expiry::days_left;
use crate::secrets::introspect::introspected_upstreams;

/// The section name.
const SECTION: &str = "Credentials";

/// Findings listed in one detail line before "and N more".
const MAX_LISTED: usize = 5;

/// Every item of the section, in order.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let mut items = vec![
        resolve(ctx),
        dev_prod_separate(ctx),
        no_secret_in_tracked_files(ctx),
        state_and_secret_files_untracked(ctx),
        known_expiry(ctx),
        no_forbidden_scope(ctx),
    ];
    items.extend(scopes_match_upstream(ctx));
    items.push(agent_holds_no_real_token(ctx));
    items
}

fn resolve(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "every credential resolves";
    let total = ctx.config.credentials.len();
    let failed: Vec<String> = ctx
        .resolution
        .errors
        .iter()
        .filter(|e| !matches!(e, SecretsError::SharedAcrossEnvironments { .. }))
        .map(ToString::to_string)
        .collect();
    if failed.is_empty() {
        let kinds: BTreeSet<&str> = ctx.config.credentials.values().map(|c| c.source.kind()).collect();
        let kinds = kinds.into_iter().collect::<Vec<_>>().join(", ");
        return match total {
            0 => CheckResult::pass(SECTION, ITEM, "no credentials are configured"),
            _ => CheckResult::pass(SECTION, ITEM, format!("{total} of {total} resolved (sources: {kinds})")),
        };
    }
    CheckResult::fail(
        SECTION,
        ITEM,
        format!("{} of {total} did not resolve: {}", failed.len(), failed.join("; ")),
        "fix each source as its message says; `steward config check` shows the same errors",
    )
}

fn dev_prod_separate(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "dev and prod credentials are separate";
    let shared: Vec<String> = ctx
        .resolution
        .errors
        .iter()
        .filter_map(|e| match e {
            SecretsError::SharedAcrossEnvironments { dev, prod } => Some(format!("`{dev}` (dev) = `{prod}` (prod)")),
            _ => None,
        })
        .collect();
    if !shared.is_empty() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("same value in dev and prod: {}", list(&shared, MAX_LISTED)),
            "issue a separate token for the dev credential and revoke the shared one",
        );
    }
    let agent = ctx.config.agent.environment;
    let count = |env: Environment| ctx.config.credentials.values().filter(|c| c.environment == env).count();
    let (dev, prod) = (count(Environment::Dev), count(Environment::Prod));
    let unresolved = ctx.config.credentials.len() - ctx.resolution.secrets.names().count();
    let mut detail = format!("agent is {}; {prod} prod and {dev} dev credential(s), no value shared", agent.as_str());
    if unresolved > 0 && dev > 0 && prod > 0 {
        detail.push_str(&format!(" ({unresolved} unresolved, not compared)"));
        return CheckResult::warn(
            SECTION,
            ITEM,
            detail,
            "make every credential resolve so dev and prod values can be compared",
        );
    }
    CheckResult::pass(SECTION, ITEM, detail)
}

fn no_secret_in_tracked_files(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "no secret in git-tracked files";
    let dir = ctx.config.source_path.parent().unwrap_or(&ctx.config.source_path);
    match scan_tracked_files(dir) {
        ScanOutcome::GitUnavailable(_) => CheckResult::warn(
            SECTION,
            ITEM,
            "git could not be run, so tracked files were not scanned",
            "install git (or put it on PATH) and run `steward doctor` again",
        ),
        ScanOutcome::NotARepository => {
            CheckResult::pass(SECTION, ITEM, "the config's directory is not in a git repository")
        }
        ScanOutcome::Scanned { files, secrets } if secrets.is_empty() => {
            CheckResult::pass(SECTION, ITEM, format!("{files} tracked file(s) scanned, no secret found"))
        }
        ScanOutcome::Scanned { secrets, .. } => {
            let found: Vec<String> =
                secrets.iter().map(|s| format!("{}:{} {} (masked)", s.file.display(), s.line, s.kind)).collect();
            CheckResult::fail(
                SECTION,
                ITEM,
                format!("{} secret(s) in tracked files: {}", secrets.len(), list(&found, MAX_LISTED)),
                "move each value into an env:/file: credential source, delete it from the file, and rotate it: \
                 it is in the git history",
            )
        }
    }
}

fn state_and_secret_files_untracked(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "git tracks neither the state dir nor a secret file";
    let config = ctx.config;
    let references = crate::outbound::secret_references(config);
    let sources = config.credentials.values().map(|c| &c.source).chain(references.iter().map(|(_, s)| s));
    let mut paths = vec![config.state.dir.clone()];
    paths.extend(sources.filter_map(|source| match source {
        CredentialSource::File(path) => Some(path.clone()),
        _ => None,
    }));
    match tracked(&paths) {
        Err(_) => CheckResult::warn(
            SECTION,
            ITEM,
            "git could not be run, so it is unknown whether the state dir is tracked",
            "install git (or put it on PATH) and run `steward doctor` again",
        ),
        Ok(found) if found.is_empty() => {
            CheckResult::pass(SECTION, ITEM, format!("checked the state dir and {} secret file(s)", paths.len() - 1))
        }
        Ok(found) => {
            let shown: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            CheckResult::fail(
                SECTION,
                ITEM,
                format!("git tracks {}", list(&shown, MAX_LISTED)),
                "run `git rm -r --cached PATH` for each and commit; put `*` in a .gitignore inside the state dir \
                 (`steward init` writes one); rotate every token those files held: they are in the git history",
            )
        }
    }
}

fn known_expiry(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "every credential has a known expiry";
    let window = ctx.config.policy.expiry_warning_days.iter().copied().max().unwrap_or(14);
    let (mut expired, mut soon, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for (name, credential) in &ctx.config.credentials {
        let expiry = ctx.resolution.secrets.expiry(name).map(|(t, _)| t).or(credential.expires);
        match expiry {
            None => unknown.push(name.clone()),
            Some(at) => {
                let days = days_left(at, ctx.now);
                if at <= ctx.now {
                    expired.push(format!("{name} (expired {})", format_day(at)));
                } else if days < i64::from(window) {
                    soon.push(format!("{name} ({days} day(s) left)"));
                }
            }
        }
    }
    let rotate = "rotate it, then `steward secrets reload`";
    if !expired.is_empty() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("expired, calls refused: {}", list(&expired, MAX_LISTED)),
            format!("issue a new token for each expired credential; {rotate}"),
        );
    }
    if !soon.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("expires within {window} days: {}", list(&soon, MAX_LISTED)),
            format!("issue a new token before it expires; {rotate}"),
        );
    }
    if !unknown.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("no known expiry: {}", list(&unknown, MAX_LISTED)),
            "add expires = \"YYYY-MM-DD\" to each such [credentials.NAME] (JWTs are read automatically)",
        );
    }
    match ctx.config.credentials.len() {
        0 => CheckResult::pass(SECTION, ITEM, "no credentials are configured"),
        n => CheckResult::pass(SECTION, ITEM, format!("all {n} expire more than {window} days from now")),
    }
}

fn no_forbidden_scope(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "no credential has a forbidden scope";
    let policy = &ctx.config.policy;
    let mut hits = Vec::new();
    let mut undeclared = Vec::new();
    for (name, credential) in &ctx.config.credentials {
        if credential.scopes.is_empty() {
            undeclared.push(name.clone());
        }
        for scope in &credential.scopes {
            if crate::config::scope::forbidden_by(&policy.forbidden_scopes, scope).is_some() {
                hits.push(format!("{name}: {scope}"));
            }
        }
    }
    if !hits.is_empty() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("forbidden scopes declared: {}", list(&hits, MAX_LISTED)),
            "issue tokens without these scopes; steward refuses to start until then",
        );
    }
    if policy.forbidden_scopes.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            "no [policy] forbidden_scopes, so no scope is refused",
            "add [policy] forbidden_scopes = [\"admin\", \"admin:*\"] (adapt to your providers' scope names)",
        );
    }
    if !undeclared.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("declare no scopes, so the policy cannot check them: {}", list(&undeclared, MAX_LISTED)),
            "list each token's scopes as the provider shows them: scopes = [\"write:statuses\"]",
        );
    }
    CheckResult::pass(SECTION, ITEM, format!("declared scopes avoid {}", policy.forbidden_scopes.join(", ")))
}

/// The latest introspection outcome of every upstream with an
/// `introspection_url`, compared again with the current declaration (the
/// config may have changed since). `None` when no upstream has one, so a
/// setup without introspection gets no new item.
fn scopes_match_upstream(ctx: &Context<'_>) -> Option<CheckResult> {
    const ITEM: &str = "scopes match what the upstream reports";
    let upstreams: Vec<&str> = introspected_upstreams(ctx.config).collect();
    if upstreams.is_empty() {
        return None;
    }
    let forbidden_patterns = &ctx.config.policy.forbidden_scopes;
    let (mut inactive, mut forbidden, mut mismatched, mut unchecked, mut failed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for upstream in &upstreams {
        let credential = ctx.config.upstreams.get(*upstream).and_then(|u| u.credential.as_deref()).unwrap_or_default();
        let Some(record) = ctx.introspection.get(*upstream) else {
            unchecked.push((*upstream).to_owned());
            continue;
        };
        if record.active == Some(false) {
            inactive.push(format!("{upstream} (credential {credential})"));
            continue;
        }
        let Some(reported) = &record.reported else {
            let why = record.error.as_deref().unwrap_or("no answer recorded");
            failed.push(format!("{upstream}: {why}"));
            continue;
        };
        let declared = ctx.config.credentials.get(credential).map(|c| c.scopes.as_slice()).unwrap_or_default();
        let comparison = compare_scopes(&reported.join(" "), declared, forbidden_patterns);
        if !comparison.forbidden.is_empty() {
            forbidden.push(format!("{upstream}: {}", comparison.forbidden.join(" ")));
        }
        if !comparison.undeclared.is_empty() || !comparison.missing.is_empty() {
            let mut parts = Vec::new();
            if !comparison.undeclared.is_empty() {
                parts.push(format!("undeclared {}", comparison.undeclared.join(" ")));
            }
            if !comparison.missing.is_empty() {
                parts.push(format!("missing {}", comparison.missing.join(" ")));
            }
            mismatched.push(format!("{upstream} ({credential}): {}", parts.join(", ")));
        }
    }
    let reload = "then `steward secrets reload` (which checks again)";
    if !inactive.is_empty() || !forbidden.is_empty() {
        let mut found = Vec::new();
        if !inactive.is_empty() {
            found.push(format!("token not active: {}", list(&inactive, MAX_LISTED)));
        }
        if !forbidden.is_empty() {
            found.push(format!("forbidden scopes reported: {}", list(&forbidden, MAX_LISTED)));
        }
        let fix = if forbidden.is_empty() {
            format!("issue a new token for each inactive credential, {reload}")
        } else {
            format!("revoke each token with a forbidden scope and issue one without it, {reload}")
        };
        return Some(CheckResult::fail(SECTION, ITEM, found.join("; "), fix));
    }
    if !mismatched.is_empty() {
        return Some(CheckResult::warn(
            SECTION,
            ITEM,
            format!("the upstream reports other scopes than declared: {}", list(&mismatched, MAX_LISTED)),
            format!("fix `scopes` in the config or issue a token with exactly the declared scopes, {reload}"),
        ));
    }
    if !failed.is_empty() {
        return Some(CheckResult::warn(
            SECTION,
            ITEM,
            format!("introspection gave no scopes to compare: {}", list(&failed, MAX_LISTED)),
            "check introspection_url and introspection_credential; the daemon log has each attempt",
        ));
    }
    if !unchecked.is_empty() {
        return Some(CheckResult::warn(
            SECTION,
            ITEM,
            format!("not checked yet: {}", list(&unchecked, MAX_LISTED)),
            "start steward (`steward run`): it asks each introspection_url at start, after `steward secrets \
             reload` and daily",
        ));
    }
    Some(CheckResult::pass(SECTION, ITEM, format!("active, exactly the declared scopes: {}", upstreams.join(", "))))
}

fn agent_holds_no_real_token(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "agent holds no real token";
    // steward does not launch the agent yet ([agent] command comes with the
    // supervisor), so it passes the agent nothing and cannot see what
    // whatever starts the agent gives it.
    let vars: Vec<String> = ctx
        .config
        .credentials
        .values()
        .filter_map(|c| match &c.source {
            CredentialSource::Env(var) => Some(var.clone()),
            _ => None,
        })
        .collect();
    let detail = if vars.is_empty() {
        "steward does not start the agent, so it cannot check the agent's environment".to_owned()
    } else {
        format!(
            "steward does not start the agent, so it cannot check the agent's environment for {}",
            list(&vars, MAX_LISTED)
        )
    };
    CheckResult::warn(
        SECTION,
        ITEM,
        detail,
        "give the agent only the steward token (<state dir>/agent.token) and start it without the real tokens \
         in its environment",
    )
}
