//! Opening the database: file modes, pragmas, versioned migrations, and the
//! identity check that notices a database deleted or replaced under us.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, MAIN_DB, OpenFlags};

use super::{BUSY_TIMEOUT, StoreError, sql_error};

/// Schema migrations, applied in order. `PRAGMA user_version` is the number
/// already applied. Append only: never edit a released entry, add one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the journal, the kill switch, the key/value table.
    "CREATE TABLE calls (
        id            TEXT PRIMARY KEY NOT NULL,
        started_ms    INTEGER NOT NULL,
        finished_ms   INTEGER,
        door          TEXT NOT NULL,
        tool          TEXT,
        upstream      TEXT NOT NULL,
        method        TEXT NOT NULL,
        path          TEXT NOT NULL,
        loop_key      TEXT NOT NULL,
        input_summary TEXT NOT NULL,
        input_sha256  TEXT NOT NULL,
        decision      TEXT NOT NULL,
        reason        TEXT,
        status        INTEGER,
        duration_ms   INTEGER,
        attempts      INTEGER NOT NULL DEFAULT 0,
        response_ref  TEXT,
        cost_usd      REAL,
        extra_json    TEXT
    ) STRICT;
    CREATE INDEX calls_tool_decision_started ON calls (tool, decision, started_ms);
    CREATE INDEX calls_tool_loop_started ON calls (tool, loop_key, started_ms);
    CREATE INDEX calls_started ON calls (started_ms);
    CREATE INDEX calls_in_flight ON calls (started_ms) WHERE finished_ms IS NULL;
    CREATE TABLE kill_switch (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        engaged    INTEGER NOT NULL CHECK (engaged IN (0, 1)),
        reason     TEXT,
        source     TEXT,
        changed_ms INTEGER NOT NULL
    ) STRICT;
    INSERT INTO kill_switch (id, engaged, reason, source, changed_ms) VALUES (1, 0, NULL, NULL, 0);
    CREATE TABLE kv (
        key        TEXT PRIMARY KEY NOT NULL,
        value      TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    ) STRICT;",
    // 2: the spend ledger (see `spend.rs`).
    super::spend::MIGRATION,
    // 3: the ledger's per-day running total, kept by triggers (see `spend.rs`).
    super::spend::DAY_TOTALS_MIGRATION,
    // 4: the error-rate alert's flag, written with each outcome from
    // `Decision::counts_as_error` (NULL: left out). Rows written before it
    // are classified by the list the alert's SQL carried until then.
    "ALTER TABLE calls ADD COLUMN counts_as_error INTEGER CHECK (counts_as_error IN (0, 1));
    UPDATE calls SET counts_as_error = CASE
            WHEN decision IN ('loop_detected', 'store_unavailable', 'unmatched', 'unknown_price') THEN 1
            WHEN decision = 'allowed' AND status >= 500 THEN 1
            WHEN decision = 'allowed' AND status IS NULL THEN 1
            ELSE 0 END
        WHERE finished_ms IS NOT NULL
          AND decision NOT IN ('unauthenticated', 'killed', 'spend_cap')
          AND COALESCE(reason, '') != 'interrupted';",
    // 5: supervised mode's approval requests (issue 14). One row per
    // request a human must decide; the full request body stays in the
    // daemon's memory only, the row keeps its digest and redacted summary.
    // `state`: pending → approved → released (the grant used, once), or
    // pending → denied | expired. `decided_via`: cli, dashboard, expiry.
    "CREATE TABLE approvals (
        id               TEXT PRIMARY KEY NOT NULL,
        created_ms       INTEGER NOT NULL,
        expires_ms       INTEGER NOT NULL,
        door             TEXT NOT NULL,
        tool             TEXT NOT NULL,
        upstream         TEXT NOT NULL,
        method           TEXT NOT NULL,
        path             TEXT NOT NULL,
        digest           TEXT NOT NULL,
        summary          TEXT NOT NULL,
        state            TEXT NOT NULL
                         CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'released')),
        decided_ms       INTEGER,
        decided_by       TEXT,
        decided_via      TEXT,
        note             TEXT,
        released_call_id TEXT
    ) STRICT;
    CREATE INDEX approvals_state_created ON approvals (state, created_ms);
    CREATE INDEX approvals_digest_state ON approvals (digest, state);
    CREATE INDEX approvals_decided ON approvals (decided_ms) WHERE decided_ms IS NOT NULL;",
    // 6: the undo plan of each released call whose tool declares one (see `undo.rs`).
    super::undo::MIGRATION,
    // 7: the instance of a fleet that admitted the call (always NULL here:
    // one instance; the column exists so that the journal's statements are
    // the same on both backends, see `pg.rs`).
    "ALTER TABLE calls ADD COLUMN instance TEXT;",
];

/// Device and inode of the database file as opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// A connection plus the identity of the file it opened.
pub(super) struct Opened {
    pub(super) conn: Connection,
    path: PathBuf,
    id: FileId,
}

impl Opened {
    /// Fails unless `path` still names the file this connection opened. A
    /// connection to an unlinked file would journal into the void, and
    /// reopening a replacement would silently reset the rate windows: both
    /// break "nothing lost", so the store refuses until restarted (or until the
    /// file is moved back).
    pub(super) fn check_same_file(&self) -> Result<(), StoreError> {
        match file_id(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            Ok(_) => Err(StoreError::Unavailable(format!(
                "database {} was replaced while open; restart steward",
                self.path.display()
            ))),
            Err(e) => Err(StoreError::Unavailable(format!(
                "database {} is gone ({e}); restore it or restart steward",
                self.path.display()
            ))),
        }
    }
}

/// Opens the write connection: creates the file 0600 if needed, WAL,
/// `synchronous=NORMAL`, `busy_timeout`, `foreign_keys`, `journal_size_limit`,
/// migrations.
pub(super) fn open_writer(path: &Path, migrations: &[&str]) -> Result<Opened, StoreError> {
    let cannot = |e: std::io::Error| StoreError::Unavailable(format!("cannot open {}: {e}", path.display()));
    // Created here rather than by SQLite so the mode is 0600 from the first
    // byte instead of 0644 minus the umask.
    OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path).map_err(cannot)?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| sql_error(&format!("opening {}", path.display()), e))?;
    // SQLite silently falls back to read-only for a write-protected file.
    if conn.is_readonly(MAIN_DB).map_err(|e| sql_error("checking access", e))? {
        return Err(StoreError::Unavailable(format!("{} is not writable", path.display())));
    }
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql_error("setting busy_timeout", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| sql_error("enabling WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("{} refused WAL mode (got {mode})", path.display())));
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| sql_error("setting synchronous", e))?;
    conn.pragma_update(None, "foreign_keys", true).map_err(|e| sql_error("enabling foreign keys", e))?;
    // The per-op savepoints' sub-journal stays in memory. By default SQLite
    // spills it to a temporary file past 64 KiB, which a batch of a few
    // admissions reaches: an open, writes and a close inside every such commit.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(|e| sql_error("setting temp_store", e))?;
    // Checkpoints (which fsync the database file) run on the checkpointer
    // thread, not inside a commit that an agent's call is waiting for.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(|e| sql_error("disabling auto-checkpoint", e))?;
    // A rewound WAL is cut back to this size by the next commit, instead of
    // keeping its high-water size on disk until a clean shutdown.
    conn.pragma_update(None, "journal_size_limit", i64::try_from(super::JOURNAL_SIZE_LIMIT).unwrap_or(i64::MAX))
        .map_err(|e| sql_error("setting journal_size_limit", e))?;
    migrate(&conn, migrations)?;
    restrict_modes(path)?;
    let id = file_id(path).map_err(cannot)?;
    Ok(Opened { conn, path: path.to_path_buf(), id })
}

/// Opens a read-only connection: the queries' (waiting up to `busy_timeout`
/// for a lock) or the gate's (not waiting: see [`super::Store::kill_state`]).
pub(super) fn open_reader(path: &Path, busy_timeout: std::time::Duration) -> Result<Opened, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| sql_error(&format!("opening {} for reading", path.display()), e))?;
    conn.busy_timeout(busy_timeout).map_err(|e| sql_error("setting busy_timeout", e))?;
    let id = file_id(path).map_err(|e| StoreError::Unavailable(format!("cannot stat {}: {e}", path.display())))?;
    Ok(Opened { conn, path: path.to_path_buf(), id })
}

/// Applies the migrations the file lacks, all in one transaction, and refuses
/// a file from a newer steward. `BEGIN IMMEDIATE` makes two processes opening
/// a fresh file at once migrate it once.
pub(super) fn migrate(conn: &Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| sql_error("starting the migration", e))?;
    let result = (|| {
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| sql_error("reading the schema version", e))?;
        if found > known {
            return Err(StoreError::TooNew { found, supported: known });
        }
        if found < 0 {
            return Err(StoreError::Corrupt(format!("negative schema version {found}")));
        }
        for (i, sql) in migrations.iter().enumerate().skip(usize::try_from(found).unwrap_or(usize::MAX)) {
            conn.execute_batch(sql).map_err(|e| sql_error(&format!("applying migration {}", i + 1), e))?;
        }
        if found < known {
            conn.pragma_update(None, "user_version", known)
                .map_err(|e| sql_error("recording the schema version", e))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(|e| sql_error("committing the migration", e)),
        Err(e) => {
            // The rollback's own failure would hide the cause; the connection is dropped anyway.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Forces 0600 on the database and its `-wal`/`-shm` files, whatever the
/// umask or whoever created them. SQLite creates the side files with the
/// database's mode, so this mostly repairs files from older versions or
/// hand-made copies.
fn restrict_modes(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        match std::fs::metadata(&file) {
            Ok(meta) if meta.mode() & 0o077 != 0 => std::fs::set_permissions(&file, Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Unavailable(format!("cannot chmod 0600 {}: {e}", file.display())))?,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(e) => {
                return Err(StoreError::Unavailable(format!("cannot stat {}: {e}", file.display())));
            }
        }
    }
    Ok(())
}

fn file_id(path: &Path) -> std::io::Result<FileId> {
    let meta = std::fs::metadata(path)?;
    Ok(FileId { dev: meta.dev(), ino: meta.ino() })
}
