//! `steward graduate` and `steward supervise`: ending the supervised first
//! week, and going back to it.
//!
//! Both write the store directly (like `steward stop`), so they work with
//! or without a running daemon: the approval step reads
//! `supervised.graduated` for every call. Each change is recorded in the
//! store (who, when, forced or not) and gets one audit line.
//! `graduate` is refused, with every unmet readiness criterion and its
//! fix, unless the verdict passes or `--force` overrides it.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use steward_core::clock::unix_ms;
use steward_core::config::Config;
use steward_core::report::{self, Readiness};
use steward_core::secrets::local_redactor;
use steward_core::supervision::{self, Graduation};

use super::{CliError, exit, format_ms, load_config, open_store_with, runtime};

/// `steward graduate`
#[derive(Debug, clap::Args)]
pub struct GraduateArgs {
    /// Graduate even though the readiness verdict fails (recorded as forced).
    #[arg(long)]
    force: bool,
    /// Who decides, for the record; default: the login name ($SUDO_USER, $USER).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

/// `steward supervise`
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// Who decides, for the record; default: the login name ($SUDO_USER, $USER).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

/// The person running the command, for the record.
fn who(by: Option<String>) -> String {
    by.map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| ["SUDO_USER", "USER", "LOGNAME"].iter().find_map(|var| std::env::var(var).ok()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What `graduate` did.
enum Graduated {
    /// Already graduated: nothing changed.
    Already(Graduation),
    /// Refused: the verdict fails and `--force` was not given.
    Refused(Readiness),
    /// Recorded.
    Done(Graduation, Readiness),
}

pub fn graduate(path: &Path, args: GraduateArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let by = who(args.by);
    let now = SystemTime::now();
    let outcome = runtime()?.block_on(async {
        let redactor = steward_core::redaction::shared(local_redactor(&config).await);
        let store = open_store_with(&config, std::sync::Arc::clone(&redactor)).await?;
        if let Some(graduation) = supervision::read(&store).await.context("cannot read supervised mode")?.graduated {
            return Ok::<_, anyhow::Error>(Graduated::Already(graduation));
        }
        let doctor_fails = super::report::doctor_fails(&config, now).await;
        let readiness = report::check_readiness(&store, &config, now, doctor_fails)
            .await
            .context("cannot measure the readiness verdict")?;
        if !readiness.ready && !args.force {
            return Ok(Graduated::Refused(readiness));
        }
        let graduation = Graduation { at_ms: unix_ms(now), by: by.clone(), forced: !readiness.ready };
        supervision::graduate(&store, &graduation).await.context("cannot record the graduation")?;
        let mut extra = serde_json::Map::new();
        extra.insert("by".into(), by.clone().into());
        extra.insert("forced".into(), graduation.forced.into());
        let unmet: Vec<serde_json::Value> = readiness.unmet().map(|c| c.key.into()).collect();
        extra.insert("unmet".into(), unmet.into());
        let reason = if graduation.forced {
            format!("graduated by {by} with --force past {} unmet criteria", readiness.unmet().count())
        } else {
            format!("graduated by {by}: every readiness criterion passed")
        };
        audit(&config, redactor, "graduated", reason, now, extra).await?;
        Ok(Graduated::Done(graduation, readiness))
    })?;
    match outcome {
        Graduated::Already(g) => {
            anstream::println!(
                "already graduated on {} by {}; `steward supervise` goes back to supervised mode",
                format_ms(g.at_ms),
                g.by
            );
            Ok(ExitCode::from(exit::OK))
        }
        Graduated::Refused(readiness) => {
            anstream::eprintln!(
                "steward graduate refused: {} of {} readiness criteria are not met",
                readiness.unmet().count(),
                readiness.criteria.len()
            );
            for c in readiness.unmet() {
                anstream::eprintln!("  FAIL  {}: {}", c.required, c.measured);
                if let Some(fix) = &c.fix {
                    anstream::eprintln!("        fix: {fix}");
                }
            }
            anstream::eprintln!(
                "meet them (`steward report` shows the whole verdict), or graduate anyway with `steward graduate \
                 --force` (recorded as forced)"
            );
            Ok(ExitCode::from(exit::NOT_READY))
        }
        Graduated::Done(g, readiness) => {
            if g.forced {
                anstream::println!(
                    "graduated by {} with --force past {} unmet readiness criteria (recorded as forced)",
                    g.by,
                    readiness.unmet().count()
                );
            } else {
                anstream::println!("graduated by {}: every readiness criterion passed", g.by);
            }
            anstream::println!(
                "approval = \"supervised\" tools no longer wait for a human; approval = \"always\" tools still do. \
                 `steward supervise` goes back."
            );
            Ok(ExitCode::from(exit::OK))
        }
    }
}

pub fn supervise(path: &Path, args: SuperviseArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let by = who(args.by);
    let now = SystemTime::now();
    let withdrew = runtime()?.block_on(async {
        let redactor = steward_core::redaction::shared(local_redactor(&config).await);
        let store = open_store_with(&config, std::sync::Arc::clone(&redactor)).await?;
        if supervision::read(&store).await.context("cannot read supervised mode")?.graduated.is_none() {
            return Ok::<_, anyhow::Error>(None);
        }
        let withdrew = supervision::supervise(&store, &by, unix_ms(now)).await.context("cannot record the return")?;
        let mut extra = serde_json::Map::new();
        extra.insert("by".into(), by.clone().into());
        if let Some(g) = &withdrew {
            extra.insert("withdrew_graduation_by".into(), g.by.clone().into());
            extra.insert("withdrew_graduation_at_ms".into(), g.at_ms.into());
        }
        audit(&config, redactor, "supervised", format!("back to supervised mode by {by}"), now, extra).await?;
        Ok(withdrew)
    })?;
    match withdrew {
        None => anstream::println!("already supervised: no graduation is recorded"),
        Some(g) => anstream::println!(
            "back to supervised mode (the graduation of {} by {} is withdrawn); side-effect calls wait for a human again",
            format_ms(g.at_ms),
            g.by
        ),
    }
    if !config.supervised.enabled {
        anstream::println!(
            "note: [supervised] enabled is not true in {}: no call waits for approval until you set it and \
             `steward reload`",
            path.display()
        );
    }
    Ok(ExitCode::from(exit::OK))
}

/// The mode change's audit line, written next to the daemon's.
async fn audit(
    config: &Config,
    redactor: steward_core::redaction::SharedRedactor,
    decision: &str,
    reason: String,
    at: SystemTime,
    extra: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    let line = supervision::audit_line(&config.agent.name, decision, reason, at, extra);
    supervision::write_audit_line(&config.logging, redactor, &line)
        .await
        .context("recorded in the store, but the audit line could not be written")
}
