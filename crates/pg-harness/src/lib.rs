//! A throwaway PostgreSQL cluster for tests: [`PgCluster::start`] runs
//! `initdb` into a fresh temp dir and starts a server on a free loopback
//! port, with durability off (a test's data need not survive a power cut);
//! dropping the [`PgCluster`] stops the server and removes the directory.
//! This crate owns that directory (data, `server.log`, the Unix socket) and
//! the server process, from `initdb` to `pg_ctl stop`.
//!
//! The server binaries come from `PATH`, else from the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian installs them there, off
//! `PATH`). PostgreSQL refuses to run as root, and CI runs as root: there
//! `initdb` and `pg_ctl` run as the unprivileged `postgres` user (Debian's
//! package creates it), or as a `steward-pg` system user created on first
//! use, through `runuser`.
//!
//! Where PostgreSQL is not installed, a test must not pass as if it had
//! checked something: [`PgCluster::start`] fails it when [`REQUIRE_VAR`] is
//! set (as `.ci/run` does, after installing Debian's `postgresql`), and
//! otherwise prints a NOT RUN banner that the test harness does not capture
//! and returns `None`.
//!
//! A test-only crate with no async and no client: the tests that use it
//! bring their own driver and connect to [`PgCluster::url`].

#![expect(clippy::panic, reason = "a test helper fails its test by panicking, with the server log's tail")]

use std::ffi::OsString;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that turns a missing PostgreSQL into a failed test instead
/// of a NOT RUN banner. `.ci/run` installs PostgreSQL and sets it, so a
/// missing one there is a broken runner.
pub const REQUIRE_VAR: &str = "STEWARD_REQUIRE_PG";

/// The cluster's superuser (`initdb -U`), the user in [`PgCluster::url`].
/// Authentication is `trust`: no password, on loopback only.
pub const USER: &str = "steward";

/// Where Debian installs each major version's binaries, off `PATH`.
const VERSIONS_DIR: &str = "/usr/lib/postgresql";

/// The user `initdb` and `pg_ctl` run as when this process is root: the
/// one Debian's `postgresql` package creates.
const DEBIAN_USER: &str = "postgres";

/// The system user created to run the server as when this process is root
/// and [`DEBIAN_USER`] does not exist (PostgreSQL from another source).
const FALLBACK_USER: &str = "steward-pg";

/// How long `pg_ctl` waits for the server to start or stop, and how long
/// [`PgCluster::start`] then waits for a TCP connect: a start takes about a
/// second, 20 s is a loaded CI machine, and longer is a hung server that
/// should fail the test rather than hang it.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Free ports tried before giving up: another process may bind the port
/// between our probe listener's drop and the server's bind.
const PORT_ATTEMPTS: usize = 3;

/// Lines of `server.log` quoted in a failure: the error and its context,
/// not the whole startup chatter.
const LOG_TAIL_LINES: usize = 40;

/// The longest directory a Unix socket can live in: `sun_path` holds 107
/// bytes and the socket's own name (`/.s.PGSQL.65535`) takes 15 of them,
/// with room left for the temp dir's name under the parent.
const MAX_SOCKET_PARENT_LEN: usize = 70;

/// A running PostgreSQL server in its own temp dir, listening on
/// `127.0.0.1` only; stopped (`pg_ctl stop -m immediate`) and removed on
/// drop.
#[derive(Debug)]
pub struct PgCluster {
    /// The data directory, which also holds `server.log` and the Unix
    /// socket (`-k`, so no cluster touches `/var/run/postgresql`). Removed
    /// when the cluster drops, after the server stopped.
    dir: tempfile::TempDir,
    /// The server's TCP port on `127.0.0.1`, the same across
    /// [`PgCluster::restart`] so a client can reconnect to the same URL.
    port: u16,
    /// `pg_ctl` from the same directory as the `initdb` that made the
    /// cluster: a server of another major version refuses the data.
    pg_ctl: PathBuf,
    /// The unprivileged user the server runs as when this process is root;
    /// `None`: as this process's user.
    run_as: Option<String>,
    /// Whether the server offers TLS ([`PgCluster::start_tls`]).
    tls: bool,
}

impl PgCluster {
    /// Creates a cluster in a new temp dir and starts its server on a free
    /// loopback port, waiting until it accepts TCP connections.
    ///
    /// `None` when PostgreSQL is not installed (after a NOT RUN banner on
    /// stderr), unless [`REQUIRE_VAR`] is set: then it fails the test with
    /// the fix. Any other failure fails the test with the tail of the
    /// server's log.
    pub fn start() -> Option<PgCluster> {
        Self::start_with(false)
    }

    /// [`PgCluster::start`] with TLS offered (`ssl = on`, plain connections
    /// still accepted) with the certificate in `fixtures/` for `127.0.0.1`,
    /// signed by the CA at [`PgCluster::test_ca`].
    pub fn start_tls() -> Option<PgCluster> {
        Self::start_with(true)
    }

    /// The CA that signed [`PgCluster::start_tls`]'s certificate (PEM).
    pub fn test_ca() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pg-test-ca.crt")
    }

    fn start_with(tls: bool) -> Option<PgCluster> {
        let Some(tools) = find_tools(std::env::var_os("PATH"), Path::new(VERSIONS_DIR)) else {
            not_installed();
            return None;
        };
        let run_as = is_root().then(unprivileged_user);
        // The server's user must reach the directory: /tmp is world
        // traversable, a root TMPDIR may not be. A long TMPDIR would not
        // fit the socket's path.
        let temp = std::env::temp_dir();
        let parent = if run_as.is_some() || temp.as_os_str().len() > MAX_SOCKET_PARENT_LEN {
            PathBuf::from("/tmp")
        } else {
            temp
        };
        let dir = tempfile::Builder::new()
            .prefix("steward-pg-")
            .tempdir_in(&parent)
            .unwrap_or_else(|e| panic!("cannot create a temp dir under {}: {e}", parent.display()));
        let mut cluster = PgCluster { dir, port: 0, pg_ctl: tools.pg_ctl, run_as, tls };
        if let Err(why) = cluster.initdb(&tools.initdb) {
            cluster.fail("initdb failed", &why);
        }
        if tls && let Err(why) = cluster.install_certificate() {
            cluster.fail("cannot install the test certificate", &why);
        }
        for attempt in 1..=PORT_ATTEMPTS {
            cluster.port = free_port();
            match cluster.launch() {
                Ok(()) => break,
                Err(_) if attempt < PORT_ATTEMPTS && cluster.port_was_taken() => {}
                Err(why) => cluster.fail("the server did not start", &why),
            }
        }
        Some(cluster)
    }

    /// The URL a client connects with: the [`USER`] superuser (no
    /// password), the `postgres` database, TCP on loopback.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's TCP port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, a
    /// checkpoint is written) and keeps the directory, so
    /// [`PgCluster::restart`] can bring the same data back. A no-op when it
    /// is not running.
    pub fn stop(&mut self) {
        if let Err(why) = self.stop_with("fast") {
            self.fail("the server did not stop", &why);
        }
    }

    /// Stops the server as [`PgCluster::stop`] does (when it runs) and
    /// starts it again on the same port and data, waiting until it accepts
    /// TCP connections: what a client sees when its database restarts.
    pub fn restart(&mut self) {
        if let Err(why) = self.stop_with("fast") {
            self.fail("the server did not stop for the restart", &why);
        }
        if let Err(why) = self.launch() {
            self.fail("the server did not start again", &why);
        }
    }

    /// `initdb` into the temp dir, handed to [`PgCluster::run_as`] first.
    fn initdb(&self, initdb: &Path) -> Result<(), String> {
        let dir = self.dir.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod 755 {}: {e}", dir.display()))?;
        if let Some(user) = &self.run_as {
            run(Command::new("chown").arg("-R").arg(user).arg(dir))?;
        }
        // -N: no fsync, the data is thrown away. --locale=C: the same
        // collation whatever LANG the machine has, and no dependency on an
        // installed locale.
        run(self
            .tool(initdb)
            .args(["-N", "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C", "--no-instructions", "-D"])
            .arg(dir))
    }

    /// The test certificate and key into the data directory (the key
    /// private to the server's user, as PostgreSQL demands).
    fn install_certificate(&self) -> Result<(), String> {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        for (from, to) in [("pg-test.crt", "server.crt"), ("pg-test.key", "server.key")] {
            let target = self.dir.path().join(to);
            std::fs::copy(fixtures.join(from), &target).map_err(|e| format!("cannot copy {from}: {e}"))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot chmod {to}: {e}"))?;
            if let Some(user) = &self.run_as {
                run(Command::new("chown").arg(user).arg(&target))?;
            }
        }
        Ok(())
    }

    /// `pg_ctl start` on [`PgCluster::port`], then waits for a TCP connect.
    fn launch(&self) -> Result<(), String> {
        let dir = self.dir.path();
        // pg_ctl hands `-o` to a shell: the directory is quoted.
        let quoted = format!("'{}'", dir.to_string_lossy().replace('\'', r"'\''"));
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {quoted} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off{}",
            self.port,
            if self.tls { " -c ssl=on" } else { "" }
        );
        run(self
            .tool(&self.pg_ctl)
            .args(["start", "-w", "-t", &READY_TIMEOUT.as_secs().to_string(), "-D"])
            .arg(dir)
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(options))?;
        if wait_for_tcp(self.port, true, READY_TIMEOUT) {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl reported a start, but nothing accepted on 127.0.0.1:{} within {READY_TIMEOUT:?}",
                self.port
            ))
        }
    }

    /// `pg_ctl stop -m <mode>` when the server runs (its `postmaster.pid`
    /// exists, also after a crash); waits until it is gone.
    fn stop_with(&self, mode: &str) -> Result<(), String> {
        let dir = self.dir.path();
        if !dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        run(self
            .tool(&self.pg_ctl)
            .args(["stop", "-w", "-t", &READY_TIMEOUT.as_secs().to_string(), "-m", mode, "-D"])
            .arg(dir))
    }

    /// A command running `program` as [`PgCluster::run_as`], from `/` (the
    /// tools look up their working directory, which that user may not reach).
    fn tool(&self, program: &Path) -> Command {
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.arg("-u").arg(user).arg("--").arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir("/").stdin(Stdio::null());
        command
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The last [`LOG_TAIL_LINES`] lines of `server.log`, or why there are none.
    fn log_tail(&self) -> String {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(no server log: {e})"),
        }
    }

    /// Whether the last start failed because the port was bound by then.
    fn port_was_taken(&self) -> bool {
        let tail = self.log_tail();
        tail.contains(&format!("port {}", self.port)) && tail.contains("Address already in use")
    }

    /// Fails the test: `what`, `why`, and the server log's tail. The drop
    /// that follows stops whatever started and removes the directory.
    fn fail(&self, what: &str, why: &str) -> ! {
        panic!(
            "{what} (PostgreSQL cluster in {}): {why}\n--- last lines of {} ---\n{}",
            self.dir.path().display(),
            self.log_path().display(),
            self.log_tail()
        )
    }
}

impl Drop for PgCluster {
    /// Stops the server at once (`-m immediate`: nothing of it is kept),
    /// then the temp dir goes. No panic here (a panic while unwinding aborts
    /// the test binary): a server that would not stop is reported on stderr;
    /// it shuts itself down once it notices its data directory is gone.
    fn drop(&mut self) {
        if let Err(why) = self.stop_with("immediate") {
            let _ = writeln!(
                std::io::stderr(),
                "cannot stop the PostgreSQL server in {}: {why}",
                self.dir.path().display()
            );
        }
    }
}

/// PgBouncer in front of a [`PgCluster`], for the tests of what steward
/// does behind a pooler: started by [`PgCluster::pooler`] on a free
/// loopback port with its own temp dir (config, log), killed on drop.
#[derive(Debug)]
pub struct PgBouncer {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

/// Where Debian's `pgbouncer` package installs the binary (off a user's `PATH`).
const PGBOUNCER_DEBIAN: &str = "/usr/sbin/pgbouncer";

impl PgCluster {
    /// Starts PgBouncer in front of this cluster's `postgres` database
    /// with `pool_mode` (`session` or `transaction`), trust authentication,
    /// on a free loopback port. `None` when PgBouncer is not installed
    /// (after a NOT RUN banner), unless [`REQUIRE_VAR`] is set: `.ci/run`
    /// installs Debian's `pgbouncer` too.
    pub fn pooler(&self, pool_mode: &str) -> Option<PgBouncer> {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("pgbouncer")).collect::<Vec<_>>())
            .unwrap_or_default();
        let Some(binary) = on_path.into_iter().chain([PathBuf::from(PGBOUNCER_DEBIAN)]).find(|p| is_executable(p))
        else {
            assert!(
                std::env::var_os(REQUIRE_VAR).is_none(),
                "{REQUIRE_VAR} is set but pgbouncer is not installed: apt-get install pgbouncer"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! NOT RUN: pgbouncer is not installed (apt-get install pgbouncer) !!!\n"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("steward-pgbouncer-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a temp dir for pgbouncer: {e}"));
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let ini = format!(
            "[databases]\npostgres = host=127.0.0.1 port={pg} dbname=postgres\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {users}\npool_mode = {pool_mode}\n\
             logfile = {log}\npidfile = {pid}\nignore_startup_parameters = extra_float_digits,options\n",
            pg = self.port,
            users = path("users.txt"),
            log = path("pgbouncer.log"),
            pid = path("pgbouncer.pid"),
        );
        std::fs::write(dir.path().join("users.txt"), format!("\"{USER}\" \"\"\n")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        if let Some(user) = &self.run_as {
            // PgBouncer refuses to run as root, like PostgreSQL.
            run(Command::new("chown").arg("-R").arg(user).arg(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        }
        let child = self
            .tool(&binary)
            .arg(dir.path().join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let bouncer = PgBouncer { dir, port, child };
        if !wait_for_tcp(port, true, READY_TIMEOUT) {
            let log = std::fs::read_to_string(bouncer.dir.path().join("pgbouncer.log")).unwrap_or_default();
            panic!("pgbouncer did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:?}:\n{log}");
        }
        Some(bouncer)
    }
}

impl PgBouncer {
    /// The URL a client connects through the pooler with (as [`PgCluster::url`]).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// PgBouncer's log so far, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for PgBouncer {
    /// Stops PgBouncer itself (its pid file: under `runuser` the child is
    /// `runuser`, which a kill would not pass on), then reaps the child.
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg("-TERM").arg(pid.trim()).status();
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binaries a cluster needs, from one directory (one major version).
#[derive(Debug, PartialEq)]
struct Tools {
    /// Creates the cluster.
    initdb: PathBuf,
    /// Starts and stops its server.
    pg_ctl: PathBuf,
}

/// The first directory on `path` holding both `initdb` and `pg_ctl`, else
/// the newest `<versions>/<version>/bin` that does.
fn find_tools(path: Option<OsString>, versions: &Path) -> Option<Tools> {
    let on_path: Vec<PathBuf> = path.map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    let mut installed: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(versions)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name.to_str()?.split('.').map(|n| n.parse().ok()).collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    installed.sort();
    on_path.into_iter().chain(installed.into_iter().rev().map(|(_, bin)| bin)).find_map(|dir| {
        let tools = Tools { initdb: dir.join("initdb"), pg_ctl: dir.join("pg_ctl") };
        (is_executable(&tools.initdb) && is_executable(&tools.pg_ctl)).then_some(tools)
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Reports that PostgreSQL is missing: a failed test when [`REQUIRE_VAR`]
/// is set, else a banner on stderr (written directly, because the test
/// harness swallows `eprintln!` of a passing test).
fn not_installed() {
    assert!(
        std::env::var_os(REQUIRE_VAR).is_none(),
        "{REQUIRE_VAR} is set but PostgreSQL is not installed: neither initdb and pg_ctl on PATH nor \
         {VERSIONS_DIR}/*/bin; install it (Debian: `apt-get install postgresql`, as .ci/run does)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! NOT RUN: PostgreSQL (initdb, pg_ctl) is not installed; run .ci/run !!!\n\
         (Debian: apt-get install postgresql; set {REQUIRE_VAR}=1 to make this a failure, as .ci/run does)\n"
    );
}

/// Whether this process's effective uid is 0, from `/proc/self/status`
/// (no libc: the workspace forbids `unsafe`), else from `id -u`.
fn is_root() -> bool {
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        // `Uid:` lists the real, effective, saved and file-system uids.
        let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?.to_owned();
        uids.split_whitespace().nth(1).map(|euid| euid == "0")
    });
    from_proc.unwrap_or_else(|| {
        Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    })
}

/// The user the server runs as under root: [`DEBIAN_USER`], else
/// [`FALLBACK_USER`], created when missing.
fn unprivileged_user() -> String {
    if user_exists(DEBIAN_USER) {
        return DEBIAN_USER.to_owned();
    }
    if !user_exists(FALLBACK_USER) {
        // Tests in parallel may race to create it: the loser's useradd
        // fails, and the user exists all the same.
        let created = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER])
            .output();
        if !user_exists(FALLBACK_USER) {
            let why = match created {
                Ok(out) => format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), out.status),
                Err(e) => format!("cannot run useradd: {e}"),
            };
            panic!(
                "PostgreSQL refuses to run as root, and neither the {DEBIAN_USER} user nor {FALLBACK_USER} exists; \
                 creating {FALLBACK_USER} failed: {why}"
            );
        }
    }
    FALLBACK_USER.to_owned()
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `command` to completion; the error names it and quotes its output.
fn run(command: &mut Command) -> Result<(), String> {
    match command.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{command:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run {command:?}: {e}")),
    }
}

/// A loopback port nothing listens on now: the kernel's pick for a
/// listener on port 0, closed again for the server to bind.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot bind a probe listener on 127.0.0.1: {e}"))
}

/// Waits up to `timeout` until a TCP connect to `127.0.0.1:port` succeeds
/// (`up`) or fails (`!up`); whether it did.
fn wait_for_tcp(port: u16, up: bool, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() == up {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    /// Logs in as [`USER`] to the `postgres` database over the wire
    /// protocol (v3, no client library, no psql): trust authentication
    /// answers AuthenticationOk, then the server reports ReadyForQuery.
    fn log_in(port: u16) {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(5)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let params = format!("user\0{USER}\0database\0postgres\0\0");
        let mut startup = Vec::new();
        startup.extend_from_slice(&u32::try_from(8 + params.len()).unwrap().to_be_bytes());
        startup.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
        startup.extend_from_slice(params.as_bytes());
        stream.write_all(&startup).unwrap();
        let mut authenticated = false;
        loop {
            let mut header = [0u8; 5];
            stream.read_exact(&mut header).unwrap();
            let len = u32::from_be_bytes(header[1..].try_into().unwrap());
            let mut body = vec![0u8; usize::try_from(len).unwrap() - 4];
            stream.read_exact(&mut body).unwrap();
            match header[0] {
                b'R' => {
                    assert_eq!(body, 0u32.to_be_bytes(), "not AuthenticationOk: trust is not in force");
                    authenticated = true;
                }
                b'E' => panic!("the server refused the login: {}", String::from_utf8_lossy(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        assert!(authenticated);
        // Terminate.
        stream.write_all(&[b'X', 0, 0, 0, 4]).unwrap();
    }

    #[test]
    fn a_started_cluster_takes_a_login_on_its_url() {
        let Some(cluster) = PgCluster::start() else { return };
        assert_ne!(cluster.port(), 0);
        assert_eq!(cluster.url(), format!("postgres://steward@127.0.0.1:{}/postgres", cluster.port()));
        log_in(cluster.port());
    }

    #[test]
    fn stop_and_restart_come_back_on_the_same_port() {
        let Some(mut cluster) = PgCluster::start() else { return };
        let port = cluster.port();
        cluster.restart();
        assert_eq!(cluster.port(), port);
        log_in(port);

        cluster.stop();
        assert!(wait_for_tcp(port, false, Duration::from_secs(10)), "still accepting after stop");
        assert!(cluster.dir.path().join("PG_VERSION").exists(), "stop removed the data");
        cluster.restart();
        log_in(port);
    }

    #[test]
    fn drop_stops_the_server_and_removes_its_directory() {
        let Some(cluster) = PgCluster::start() else { return };
        let dir = cluster.dir.path().to_owned();
        let port = cluster.port();
        assert!(dir.join("postmaster.pid").exists());
        drop(cluster);
        assert!(!dir.exists(), "{} is left behind", dir.display());
        assert!(wait_for_tcp(port, false, Duration::from_secs(10)), "127.0.0.1:{port} still accepts after drop");
    }

    #[test]
    fn tools_come_from_path_else_the_newest_installed_version() {
        let root = tempfile::tempdir().unwrap();
        let install = |dir: &Path| {
            std::fs::create_dir_all(dir).unwrap();
            for name in ["initdb", "pg_ctl"] {
                std::fs::write(dir.join(name), "").unwrap();
                std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        };
        let versions = root.path().join("versions");
        for version in ["9.6", "13", "15"] {
            install(&versions.join(version).join("bin"));
        }
        // A directory that is not a version, and one with initdb alone.
        install(&versions.join("common/bin"));
        std::fs::create_dir_all(versions.join("16/bin")).unwrap();
        std::fs::copy(versions.join("15/bin/initdb"), versions.join("16/bin/initdb")).unwrap();
        let newest = versions.join("15/bin");
        assert_eq!(
            find_tools(None, &versions),
            Some(Tools { initdb: newest.join("initdb"), pg_ctl: newest.join("pg_ctl") })
        );

        let on_path = root.path().join("local/bin");
        install(&on_path);
        let path = std::env::join_paths([root.path().join("empty"), on_path.clone()]).unwrap();
        assert_eq!(
            find_tools(Some(path), &versions),
            Some(Tools { initdb: on_path.join("initdb"), pg_ctl: on_path.join("pg_ctl") })
        );

        assert_eq!(find_tools(Some(OsString::new()), &root.path().join("none")), None);
    }
}
