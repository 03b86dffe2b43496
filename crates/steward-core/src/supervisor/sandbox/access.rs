//! Could the agent reach what steward owns? Checked once, before the agent
//! is first started, from the permission bits of every private path and of
//! every directory above it.
//!
//! The agent must not read or write the state dir (store, `agent.token`,
//! lock), the log dir or a `file:` credential, and must not write the config.
//! It must not write any directory above them either: renaming a directory
//! it can write would let it swap steward's store or config for its own (and
//! release the kill switch the next time someone runs `steward stop`). A
//! sticky directory (`/tmp`) only lets it rename its own entries.
//!
//! An agent with steward's own uid always could (it owns the files), and so
//! could root: both are refused, with the fix. ACLs are not read: a
//! deployment that grants access through ACLs is on its own.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::Account;
use crate::config::Config;

/// Why the agent cannot be started as configured. Each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// `[agent] user` names no account of this machine.
    #[error(
        "[agent] user {user:?} does not exist on this machine; create it: `sudo useradd --system --no-create-home \
         --shell /usr/sbin/nologin {user}` (`sudo steward init` does this for steward-agent)"
    )]
    UnknownUser {
        /// As configured.
        user: String,
    },
    /// `[agent] group` names no group of this machine.
    #[error(
        "[agent] group {group:?} does not exist on this machine; create it (`sudo groupadd --system {group}`) or remove group"
    )]
    UnknownGroup {
        /// As configured.
        group: String,
    },
    /// The agent would have steward's own uid, or root's.
    #[error(
        "the agent would run as {who} (uid {uid}), so it could read steward's credentials and write its store, \
         releasing the kill switch; run it as its own user: set [agent] user = \"steward-agent\" (create it with \
         `sudo useradd --system --no-create-home --shell /usr/sbin/nologin steward-agent`, or `sudo steward init`) \
         and start steward as root or with CAP_SETUID and CAP_SETGID (the shipped systemd unit grants them)"
    )]
    SameUser {
        /// "steward's own user" or "root".
        who: &'static str,
        /// The uid.
        uid: u32,
    },
    /// A private path (or a directory above it) is open to the agent's user.
    #[error(
        "the agent's user {user} could {verb} {path} ({why}); fix it: {fix}",
        path = path.display()
    )]
    Exposed {
        /// The agent's user name.
        user: String,
        /// `read`, `write`, `replace`.
        verb: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// What makes it reachable.
        why: String,
        /// The command that closes it.
        fix: String,
    },
}

/// How one path may be reached (for tests and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Neither read nor written by the agent.
    Closed,
    /// Readable by the agent.
    Readable,
    /// Writable by the agent.
    Writable,
}

/// What the agent must not do to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// Neither read nor write (state dir, log dir, credential files).
    Private,
    /// Not write (the config: it holds no secret, but it is steward's policy).
    ReadOnly,
}

/// Refuses when the agent, running as `account` (`None`: steward's own
/// user), could read or write what steward owns. See the module docs.
pub fn check_private_paths(config: &Config, account: Option<&Account>) -> Result<(), AccessError> {
    let own_uid = nix::unistd::geteuid().as_raw();
    let Some(account) = account else {
        return Err(AccessError::SameUser {
            who: if own_uid == 0 { "root" } else { "steward's own user" },
            uid: own_uid,
        });
    };
    if account.uid == 0 {
        return Err(AccessError::SameUser { who: "root", uid: 0 });
    }
    if account.uid == own_uid {
        return Err(AccessError::SameUser { who: "steward's own user", uid: own_uid });
    }
    let mut paths: Vec<(PathBuf, Guard)> =
        vec![(config.state.dir.clone(), Guard::Private), (config.logging.dir.clone(), Guard::Private)];
    paths.push((config.source_path.clone(), Guard::ReadOnly));
    for credential in config.credentials.values() {
        if let crate::config::CredentialSource::File(path) = &credential.source {
            paths.push((path.clone(), Guard::Private));
        }
    }
    for (path, guard) in &paths {
        check_one(path, *guard, account)?;
    }
    Ok(())
}

fn check_one(path: &Path, guard: Guard, account: &Account) -> Result<(), AccessError> {
    let exposed = |verb, path: &Path, why: String, fix: String| AccessError::Exposed {
        user: account.name.clone(),
        verb,
        path: path.to_path_buf(),
        why,
        fix,
    };
    if let Ok(meta) = std::fs::metadata(path) {
        let private_mode = if meta.is_dir() { "0700" } else { "0600" };
        let fix = format!("`chown {} {p} && chmod {private_mode} {p}`", nix::unistd::geteuid(), p = path.display());
        match (exposure(&meta, account), guard) {
            (Exposure::Writable, _) => return Err(exposed("write", path, why(&meta, account), fix)),
            (Exposure::Readable, Guard::Private) => return Err(exposed("read", path, why(&meta, account), fix)),
            _ => {}
        }
    }
    // Every directory above: not writable, unless sticky and the entry is not the agent's.
    let mut child = path;
    while let Some(parent) = child.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(meta) = std::fs::metadata(parent) {
            let sticky = meta.mode() & 0o1000 != 0;
            let child_is_theirs = std::fs::symlink_metadata(child).is_ok_and(|m| m.uid() == account.uid);
            if exposure(&meta, account) == Exposure::Writable && (!sticky || child_is_theirs) {
                let fix = format!(
                    "make {p} writable by steward only (`chown {} {p} && chmod go-w {p}`), or move steward's files \
                     out of it",
                    nix::unistd::geteuid(),
                    p = parent.display()
                );
                return Err(exposed(
                    "replace",
                    path,
                    format!("it can write {}: {}", parent.display(), why(&meta, account)),
                    fix,
                ));
            }
        }
        child = parent;
    }
    Ok(())
}

/// What the permission bits give `account` on a file or directory. For a
/// directory, "readable" means it can list or enter it, "writable" that it
/// can also add, remove and rename entries.
pub fn exposure(meta: &std::fs::Metadata, account: &Account) -> Exposure {
    let mode = meta.mode();
    let bits = if meta.uid() == account.uid {
        (mode >> 6) & 0o7
    } else if account.gid == meta.gid() || account.groups.contains(&meta.gid()) {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    let (read, write, exec) = (bits & 0o4 != 0, bits & 0o2 != 0, bits & 0o1 != 0);
    if meta.is_dir() {
        match (read || exec, write && exec) {
            (_, true) => Exposure::Writable,
            (true, false) => Exposure::Readable,
            _ => Exposure::Closed,
        }
    } else if write {
        Exposure::Writable
    } else if read {
        Exposure::Readable
    } else {
        Exposure::Closed
    }
}

/// Which bits expose it, in words.
fn why(meta: &std::fs::Metadata, account: &Account) -> String {
    let mode = meta.mode() & 0o7777;
    if meta.uid() == account.uid {
        format!("it owns it, mode {mode:04o}")
    } else if account.gid == meta.gid() || account.groups.contains(&meta.gid()) {
        format!("it is in its group {}, mode {mode:04o}", meta.gid())
    } else {
        format!("mode {mode:04o} lets everyone in")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn agent() -> Account {
        Account { name: "agent".into(), uid: 4_000_123, gid: 4_000_124, groups: vec![4_000_124, 4_000_125] }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn permission_bits_decide_for_owner_group_and_others() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let meta = |p: &Path| std::fs::metadata(p).unwrap();
        chmod(&file, 0o600);
        assert_eq!(exposure(&meta(&file), &agent()), Exposure::Closed);
        chmod(&file, 0o604);
        assert_eq!(exposure(&meta(&file), &agent()), Exposure::Readable);
        chmod(&file, 0o602);
        assert_eq!(exposure(&meta(&file), &agent()), Exposure::Writable);
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(&file, None, Some(nix::unistd::Gid::from_raw(4_000_125))).unwrap();
            chmod(&file, 0o660);
            assert_eq!(exposure(&meta(&file), &agent()), Exposure::Writable, "a supplementary group counts");
            nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(4_000_123)), None).unwrap();
            chmod(&file, 0o000);
            assert_eq!(exposure(&meta(&file), &agent()), Exposure::Closed, "the owner bits, not root's powers");
        }
        chmod(dir.path(), 0o711);
        assert_eq!(exposure(&meta(dir.path()), &agent()), Exposure::Readable, "enterable");
        chmod(dir.path(), 0o703);
        assert_eq!(exposure(&meta(dir.path()), &agent()), Exposure::Writable);
        chmod(dir.path(), 0o702);
        assert_eq!(exposure(&meta(dir.path()), &agent()), Exposure::Closed, "w without x is nothing");
    }

    #[test]
    fn a_writable_parent_exposes_what_is_below_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        chmod(&state, 0o700);
        chmod(dir.path(), 0o755);
        assert_eq!(check_one(&state, Guard::Private, &agent()), Ok(()));
        chmod(dir.path(), 0o777);
        let err = check_one(&state, Guard::Private, &agent()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("could replace") && text.contains("chmod go-w"), "{text}");
        chmod(dir.path(), 0o1777);
        assert_eq!(check_one(&state, Guard::Private, &agent()), Ok(()), "sticky, and the entry is not the agent's");
        chmod(&state, 0o755);
        let text = check_one(&state, Guard::Private, &agent()).unwrap_err().to_string();
        assert!(text.contains("could read") && text.contains("chmod 0700"), "{text}");
        assert_eq!(check_one(&state, Guard::ReadOnly, &agent()), Ok(()), "reading the config is allowed");
        chmod(dir.path(), 0o755);
    }
}
