//! The agent's box: the processes between steward and the agent, and what
//! they set up before the agent's first instruction runs.
//!
//! ```text
//! steward (non-dumpable)
//!  └─ steward agent-exec   "the box": parent-death SIGKILL, namespaces, privileges dropped
//!      └─ steward agent-init   PID 1 of the agent's PID namespace: reaps, forwards signals
//!          └─ the agent (and everything it ever starts, however it forks)
//! ```
//!
//! # Containment: a PID namespace, not a subreaper, not a cgroup
//! Every process the agent starts lives in a PID namespace whose init is
//! `agent-init`. When the init of a PID namespace ends, the kernel SIGKILLs
//! every other process in it, however it was forked (double fork, `setsid`,
//! `setpgid`) and waits until they are gone before the init's exit is
//! reported. The init dies with the box (its parent-death signal), and the box
//! dies with steward (its parent-death signal), so `steward stop`, a crash
//! loop, a clean exit and `kill -9` of steward all end the whole tree, and
//! "the box exited" means "nothing of the agent is left".
//!
//! The alternatives were rejected for what survives steward's own death:
//! - a child subreaper adopts orphans only while it lives; when steward is
//!   killed they are reparented to PID 1 and keep running;
//! - a cgroup (v2) can be killed whole (`cgroup.kill`), but only by someone who
//!   is still alive: after `kill -9` of steward nobody does it until a
//!   restart, and it needs a delegated subtree, which containers and dev
//!   machines rarely have (systemd's unit cgroup still backs this up in
//!   production: `KillMode=mixed`).
//!
//! A namespace needs `CAP_SYS_ADMIN`, or an unprivileged user namespace
//! (`kernel.unprivileged_userns_clone`, `user.max_user_namespaces`, and on
//! Ubuntu `kernel.apparmor_restrict_unprivileged_userns = 0`). The box tries
//! the privileged way first and the user namespace second; when the kernel
//! refuses both, the box exits with 78 (`EX_CONFIG`: not restarted) and
//! says why in `agent.log`.
//!
//! # Privileges
//! With `[agent] user`, the box sets the supplementary groups, the gid and
//! the uid (steward needs `CAP_SETUID`/`CAP_SETGID`, or root), then clears
//! every capability set (ambient included: a unit's `AmbientCapabilities`
//! would otherwise pass `CAP_SETUID` on to the agent) and sets
//! `PR_SET_NO_NEW_PRIVS`, so no set-uid program gives them back.
//!
//! # Network (`[agent] network = "steward-only"`)
//! The box also unshares the network namespace: it holds only `lo`, which
//! the box brings up. The box binds `127.0.0.1:<gateway port>` inside it and
//! hands the listening socket to steward over a Unix socket (`SCM_RIGHTS`);
//! steward serves its gateway on it. Any other address is unreachable: a
//! property of the kernel, not a convention. See `net.rs`.

mod access;
mod init;
mod net;

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};

pub use access::{AccessError, Exposure, check_private_paths};
pub use init::run_init;
pub use net::{LISTENER_TIMEOUT, receive_listener};

/// Exit code of a box that could not be built (`EX_CONFIG`): the supervisor
/// does not restart it, and `agent.log` says why.
pub const EXIT_BOX_REFUSED: u8 = 78;

/// Exit code when the agent's program could not be executed (the shell's).
pub const EXIT_CANNOT_EXECUTE: u8 = 126;

/// Exit code when the agent's program does not exist (the shell's).
pub const EXIT_NOT_FOUND: u8 = 127;

/// The signals the box and the init wait for instead of being killed by
/// them: stops are forwarded, and the end of a child is noticed.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGCHLD] {
        set.add(signal);
    }
    set
}

/// What the box must build, decided by steward and passed on the box's
/// command line as JSON (no secret in it: anyone may read a command line).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoxSpec {
    /// steward's pid: the box only starts while steward is its parent.
    pub parent: u32,
    /// The agent's uid, gid and supplementary groups (`[agent] user`); `None`: keep steward's.
    pub account: Option<Account>,
    /// `network = "steward-only"`: the port to open steward's gateway on inside the namespace.
    pub gateway_port: Option<u16>,
    /// How long the init gives processes left behind by an agent that exited
    /// to leave after SIGTERM before the namespace is torn down (`stop_grace`).
    pub grace_ms: u64,
}

/// A resolved `[agent] user` / `group`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// The user's name, for messages.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid (`[agent] group`, or the user's primary group).
    pub gid: u32,
    /// Supplementary groups of the user (`getgrouplist`), set as they are.
    pub groups: Vec<u32>,
}

impl Account {
    /// Resolves `user` (name or numeric uid) and `group` (name or gid;
    /// default the user's primary group) on this machine.
    pub fn resolve(user: &str, group: Option<&str>) -> Result<Account, AccessError> {
        use nix::unistd::{Group, User};
        let unknown_user = || AccessError::UnknownUser { user: user.to_owned() };
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)).map_err(|_| unknown_user())?,
            Err(_) => User::from_name(user).map_err(|_| unknown_user())?,
        };
        let (name, uid, primary) = match (found, user.parse::<u32>()) {
            (Some(u), _) => (u.name, u.uid.as_raw(), u.gid.as_raw()),
            // A bare number without a passwd entry: its own group.
            (None, Ok(uid)) => (user.to_owned(), uid, uid),
            (None, Err(_)) => return Err(unknown_user()),
        };
        let gid = match group {
            None => primary,
            Some(text) => match text.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => Group::from_name(text)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
                    .ok_or_else(|| AccessError::UnknownGroup { group: text.to_owned() })?,
            },
        };
        let mut groups: Vec<u32> = std::ffi::CString::new(name.clone())
            .ok()
            .and_then(|cname| nix::unistd::getgrouplist(&cname, Gid::from_raw(gid)).ok())
            .map(|list| list.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_else(|| vec![gid]);
        groups.sort_unstable();
        groups.dedup();
        Ok(Account { name, uid, gid, groups })
    }
}

/// How the box ended, for the `steward agent-exec` process to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit with this code.
    Exit(u8),
    /// Die by this signal (the agent did).
    Signal(Signal),
}

/// The box's body (`steward agent-exec`): see the module docs. Runs in the
/// short-lived, single-threaded process steward starts; returns how that
/// process must end. Messages go to stderr, which is `agent.log`.
pub fn run_box(spec: &BoxSpec, command: &[OsString]) -> Outcome {
    match build_and_run(spec, command) {
        Ok(outcome) => outcome,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "steward: {err}");
            Outcome::Exit(err.exit_code())
        }
    }
}

/// Why the box could not be built.
#[derive(Debug, thiserror::Error)]
enum BoxError {
    /// steward exited before the box armed its parent-death signal.
    #[error("steward exited before the agent could start")]
    Orphaned,
    /// A kernel call of the setup failed.
    #[error("cannot {what}: {errno}; {fix}")]
    Refused {
        /// What was being done.
        what: &'static str,
        /// Why.
        errno: nix::errno::Errno,
        /// What to do about it.
        fix: &'static str,
    },
    /// The namespace setup failed in another way.
    #[error("{0}")]
    Setup(String),
    /// The init could not be started.
    #[error("cannot start the agent's init: {0}")]
    Init(std::io::Error),
}

impl BoxError {
    fn exit_code(&self) -> u8 {
        match self {
            BoxError::Orphaned | BoxError::Init(_) => EXIT_CANNOT_EXECUTE,
            BoxError::Refused { .. } | BoxError::Setup(_) => EXIT_BOX_REFUSED,
        }
    }
}

/// The fix printed when the kernel refuses namespaces.
const NAMESPACE_FIX: &str = "the agent's box needs a PID namespace: run steward as root or with CAP_SYS_ADMIN, or \
                             allow unprivileged user namespaces (sysctl user.max_user_namespaces=15000 \
                             kernel.unprivileged_userns_clone=1, and on Ubuntu \
                             kernel.apparmor_restrict_unprivileged_userns=0); `steward doctor` checks this";

/// The fix printed when privileges cannot be dropped.
const SETUID_FIX: &str = "steward needs CAP_SETUID and CAP_SETGID to run the agent as [agent] user: start it as \
                          root, or grant them (AmbientCapabilities=CAP_SETUID CAP_SETGID in the unit, or `setcap \
                          cap_setuid,cap_setgid=ep` on the binary)";

/// Arms SIGKILL on steward's death and checks steward is still the parent:
/// it may have died before the prctl, and then no signal would ever come.
/// Called again after every change of credentials, which clears the setting.
fn die_with_parent(parent: u32) -> Result<(), BoxError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|errno| BoxError::Refused {
        what: "set the parent-death signal",
        errno,
        fix: "this kernel lacks prctl(PR_SET_PDEATHSIG)",
    })?;
    if std::os::unix::process::parent_id() != parent {
        return Err(BoxError::Orphaned);
    }
    Ok(())
}

fn build_and_run(spec: &BoxSpec, command: &[OsString]) -> Result<Outcome, BoxError> {
    die_with_parent(spec.parent)?;
    // From here on, a stop is forwarded to the init instead of ending the box early.
    let handled = handled_signals();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None);

    let mut flags = CloneFlags::CLONE_NEWPID;
    if spec.gateway_port.is_some() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    match nix::sched::unshare(flags) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) => {
            // No CAP_SYS_ADMIN: become the agent first, then take an
            // unprivileged user namespace in which it owns the others.
            drop_privileges(spec.account.as_ref())?;
            enter_user_namespace(flags)?;
        }
        Err(errno) => {
            return Err(BoxError::Refused { what: "create the agent's namespaces", errno, fix: NAMESPACE_FIX });
        }
    }
    if let Some(port) = spec.gateway_port {
        net::open_gateway(port).map_err(|e| BoxError::Setup(e.to_string()))?;
    }
    drop_privileges(spec.account.as_ref())?;
    clear_capabilities()?;
    // Changing the uid cleared the parent-death signal.
    die_with_parent(spec.parent)?;

    // The init's stdin: the read end of a pipe whose write end only this
    // process holds. It reads end-of-file once the box is gone, which is how
    // the init tells that its parent died before its own parent-death signal
    // was armed (its getppid() is 0 inside the namespace).
    let (alive_read, _alive_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| BoxError::Init(e.into()))?;
    let init = Command::new("/proc/self/exe")
        .arg0("steward-agent-init")
        .arg("agent-init")
        .arg(spec.grace_ms.to_string())
        .arg("--")
        .args(command)
        .stdin(Stdio::from(alive_read))
        .spawn()
        .map_err(BoxError::Init)?;
    let init = Pid::from_raw(i32::try_from(init.id()).unwrap_or(i32::MAX));
    Ok(wait_for_init(init, &handled))
}

/// Sets the groups, gid and uid of `account` (all three of real, effective
/// and saved ids). A no-op without an account or when already done.
fn drop_privileges(account: Option<&Account>) -> Result<(), BoxError> {
    let Some(account) = account else { return Ok(()) };
    if nix::unistd::geteuid().as_raw() == account.uid && nix::unistd::getegid().as_raw() == account.gid {
        return Ok(());
    }
    let refused = |what, errno| BoxError::Refused { what, errno, fix: SETUID_FIX };
    let groups: Vec<Gid> = account.groups.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups).map_err(|e| refused("set the agent's supplementary groups", e))?;
    let gid = Gid::from_raw(account.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| refused("switch to the agent's group", e))?;
    let uid = Uid::from_raw(account.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| refused("switch to the agent's user", e))?;
    Ok(())
}

/// `unshare(CLONE_NEWUSER | flags)` and an identity mapping of the current
/// uid and gid: inside, the agent is who it is outside, without capabilities.
fn enter_user_namespace(flags: CloneFlags) -> Result<(), BoxError> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | flags).map_err(|errno| BoxError::Refused {
        what: "create the agent's namespaces (neither as privileged nor in a user namespace)",
        errno,
        fix: NAMESPACE_FIX,
    })?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| BoxError::Setup(format!("cannot write /proc/self/{file} of the agent's user namespace: {e}")))
    };
    write("setgroups", "deny".to_owned())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))
}

/// Empties every capability set, ambient included, and forbids gaining any
/// back through a set-uid or file-capability program.
fn clear_capabilities() -> Result<(), BoxError> {
    let setup = |what: &str, e: rustix::io::Errno| BoxError::Setup(format!("cannot {what}: {e}"));
    rustix::thread::clear_ambient_capability_set().map_err(|e| setup("clear the ambient capabilities", e))?;
    let none = rustix::thread::CapabilitySet::empty();
    let sets = rustix::thread::CapabilitySets { effective: none, permitted: none, inheritable: none };
    rustix::thread::set_capabilities(None, sets).map_err(|e| setup("drop every capability", e))?;
    nix::sys::prctl::set_no_new_privs().map_err(|errno| BoxError::Refused {
        what: "set no_new_privs",
        errno,
        fix: "this kernel lacks prctl(PR_SET_NO_NEW_PRIVS)",
    })
}

/// Forwards stop signals to the init until it exits, and returns its outcome.
fn wait_for_init(init: Pid, handled: &SigSet) -> Outcome {
    loop {
        match handled.wait() {
            Ok(Signal::SIGCHLD) => match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return outcome_of_code(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => return Outcome::Signal(signal),
                Ok(_) => {}
                Err(_) => return Outcome::Exit(EXIT_CANNOT_EXECUTE),
            },
            Ok(signal) => {
                let _ = nix::sys::signal::kill(init, signal);
            }
            Err(_) => {}
        }
    }
}

/// The init reports an agent killed by signal N as exit code 128 + N (the
/// shell's convention); the box dies by that signal again so steward sees it.
fn outcome_of_code(code: i32) -> Outcome {
    if code > 128
        && let Ok(signal) = Signal::try_from(code - 128)
    {
        return Outcome::Signal(signal);
    }
    Outcome::Exit(u8::try_from(code).unwrap_or(u8::MAX))
}

/// Ends the calling process as `outcome` says: exit, or die by the signal
/// (falling back to exit code 128 + N when the signal does not kill).
pub fn finish(outcome: Outcome) -> std::process::ExitCode {
    if let Outcome::Signal(signal) = outcome {
        let mut set = SigSet::empty();
        set.add(signal);
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
        let _ = nix::sys::signal::raise(signal);
        return std::process::ExitCode::from(u8::try_from(128 + signal as i32).unwrap_or(u8::MAX));
    }
    match outcome {
        Outcome::Exit(code) => std::process::ExitCode::from(code),
        Outcome::Signal(_) => std::process::ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_deaths_travel_as_128_plus_n() {
        assert_eq!(outcome_of_code(137), Outcome::Signal(Signal::SIGKILL));
        assert_eq!(outcome_of_code(143), Outcome::Signal(Signal::SIGTERM));
        assert_eq!(outcome_of_code(3), Outcome::Exit(3));
        assert_eq!(outcome_of_code(128), Outcome::Exit(128));
        assert_eq!(outcome_of_code(255), Outcome::Exit(255), "no signal 127");
    }

    #[test]
    fn root_resolves_by_name_and_number() {
        let by_name = Account::resolve("root", None).unwrap();
        assert_eq!((by_name.uid, by_name.gid), (0, 0));
        assert!(by_name.groups.contains(&0));
        assert_eq!(Account::resolve("0", Some("0")).unwrap().uid, 0);
        assert!(matches!(Account::resolve("no-such-user-x9", None), Err(AccessError::UnknownUser { .. })));
        assert!(matches!(Account::resolve("root", Some("no-such-group-x9")), Err(AccessError::UnknownGroup { .. })));
    }
}
