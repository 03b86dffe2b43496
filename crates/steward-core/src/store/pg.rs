//! The store on PostgreSQL, for a fleet of instances sharing one set of
//! limits (`[store] url`; the design, the measured numbers and the known
//! limits are `docs/fleet.md`). `fleet.rs` is what `Store` holds then.
//!
//! What is here: the schema and its versioned migration ([`migrate`]), the
//! `Db` implementation the store's rules run on (`Postgres`), and the
//! transactions of a call's writes: its admission ([`admit`]), exact
//! across instances, its completion with its settlement ([`complete`]) and
//! its withdrawal ([`withdraw`]); and the kill switch across the fleet
//! (`kill.rs`: `NOTIFY` with every change, a `LISTEN`ing watch with a poll
//! behind it, unknown and so refused when neither can read); instances,
//! their leases and the settlement of a dead one's calls (`lease.rs`).
//! The rest of the store's rules (its reads, undo claims, retention, kv)
//! run on `Postgres` as they are, in the transactions `fleet.rs` opens
//! (`Fleet::write`, and `Store`'s `on_db!` for reads), tested against
//! SQLite's answers (`tests.rs`). Also here: the connection (`connect.rs`:
//! the URL, TLS, the pool, the pooler check) and each operation's
//! duration for `/metrics` (`timing.rs`).
//!
//! Exactness: SQLite serializes every write transaction; here a write
//! transaction takes transaction-scoped advisory locks on the keys its
//! rules count (a tool's window and loop count, a spend day's total),
//! always in the same order (tool, then day), before it reads them. Two
//! admissions of one tool, from any instance, then run one after the
//! other, each seeing the other's committed row (READ COMMITTED reads what
//! committed before each statement, and the lock is released only at
//! commit); admissions of different tools do not wait for each other.

use bytes::BytesMut;
use deadpool_postgres::{ClientWrapper as Client, Transaction};
use redact::Redactor;
use tokio_postgres::Statement;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::approvals::ApprovalWrite;
use super::db::{Arg, Db, Row, RowError, args};
use super::writer::Response;
use super::{Admission, AdmitOutcome, CallRow, Completion, LastQuery, StoreError, admission, completion, queries};
use crate::decision::Decision;

/// Runs `$body` (a future over `$db: &Postgres`) in one transaction on
/// `$client`, committed when it succeeds; the value of `$body`. `$doing`
/// names the work in the errors ("starting a withdrawal"). Every write
/// and read of the fleet's store that is one rule in one transaction
/// goes through it.
macro_rules! in_tx {
    ($client:expr, $doing:literal, |$db:ident| $body:expr) => {{
        let tx =
            $client.transaction().await.map_err(|e| $crate::store::pg::pg_error(concat!("starting ", $doing), &e))?;
        let out = {
            let $db = &$crate::store::pg::Postgres { tx: &tx };
            $body.await?
        };
        tx.commit().await.map_err(|e| $crate::store::pg::pg_error(concat!("committing ", $doing), &e))?;
        out
    }};
}
pub(crate) use in_tx;

/// Schema migrations, applied in order; `steward_schema.version` is the
/// number applied. Append only: never edit a released entry, add one. The
/// tables mirror SQLite's (`schema.rs`), with `BIGINT` for every integer.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the journal, the kill switch, kv, the spend ledger and its per-day
    // running total (kept by triggers, as on SQLite).
    "CREATE TABLE calls (
        id              TEXT PRIMARY KEY NOT NULL,
        started_ms      BIGINT NOT NULL,
        finished_ms     BIGINT,
        door            TEXT NOT NULL,
        tool            TEXT,
        upstream        TEXT NOT NULL,
        method          TEXT NOT NULL,
        path            TEXT NOT NULL,
        loop_key        TEXT NOT NULL,
        input_summary   TEXT NOT NULL,
        input_sha256    TEXT NOT NULL,
        decision        TEXT NOT NULL,
        reason          TEXT,
        status          BIGINT,
        duration_ms     BIGINT,
        attempts        BIGINT NOT NULL DEFAULT 0,
        response_ref    TEXT,
        cost_usd        DOUBLE PRECISION,
        extra_json      TEXT,
        counts_as_error BIGINT CHECK (counts_as_error IN (0, 1))
    );
    CREATE INDEX calls_tool_decision_started ON calls (tool, decision, started_ms);
    CREATE INDEX calls_tool_loop_started ON calls (tool, loop_key, started_ms);
    CREATE INDEX calls_started ON calls (started_ms);
    CREATE INDEX calls_in_flight ON calls (started_ms) WHERE finished_ms IS NULL;
    CREATE TABLE kill_switch (
        id         BIGINT PRIMARY KEY CHECK (id = 1),
        engaged    BIGINT NOT NULL CHECK (engaged IN (0, 1)),
        reason     TEXT,
        source     TEXT,
        changed_ms BIGINT NOT NULL
    );
    INSERT INTO kill_switch (id, engaged, reason, source, changed_ms) VALUES (1, 0, NULL, NULL, 0);
    CREATE TABLE kv (
        key        TEXT PRIMARY KEY NOT NULL,
        value      TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE spend (
        call_id         TEXT PRIMARY KEY NOT NULL,
        day             TEXT NOT NULL,
        provider        TEXT NOT NULL,
        model           TEXT NOT NULL,
        reserved_micros BIGINT NOT NULL,
        settled_micros  BIGINT,
        input_tokens    BIGINT,
        output_tokens   BIGINT,
        cached_tokens   BIGINT,
        estimated       BIGINT NOT NULL DEFAULT 0,
        created_ms      BIGINT NOT NULL,
        settled_ms      BIGINT
    );
    CREATE INDEX spend_day ON spend (day);
    CREATE TABLE spend_days (
        day              TEXT PRIMARY KEY NOT NULL,
        committed_micros BIGINT NOT NULL
    );
    CREATE FUNCTION steward_spend_days() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE spend_days SET committed_micros = committed_micros - COALESCE(OLD.settled_micros, OLD.reserved_micros)
                WHERE day = OLD.day;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO spend_days (day, committed_micros) VALUES (NEW.day, 0) ON CONFLICT (day) DO NOTHING;
            UPDATE spend_days SET committed_micros = committed_micros + COALESCE(NEW.settled_micros, NEW.reserved_micros)
                WHERE day = NEW.day;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER spend_days_on_change AFTER INSERT OR UPDATE OF day, reserved_micros, settled_micros OR DELETE
        ON spend FOR EACH ROW EXECUTE FUNCTION steward_spend_days();",
    // 2: the undo plans of completed calls (see `undo.rs`).
    "CREATE TABLE undos (
        call_id      TEXT PRIMARY KEY NOT NULL,
        tool         TEXT NOT NULL,
        started_ms   BIGINT NOT NULL,
        state        TEXT NOT NULL
                     CHECK (state IN ('planned', 'unavailable', 'running', 'undone', 'gone', 'failed')),
        undo_tool    TEXT,
        method       TEXT,
        path         TEXT,
        body         TEXT,
        reason       TEXT,
        planned_ms   BIGINT NOT NULL,
        changed_ms   BIGINT NOT NULL,
        undo_call_id TEXT,
        attempts     BIGINT NOT NULL DEFAULT 0,
        by           TEXT,
        via          TEXT,
        forced       BIGINT NOT NULL DEFAULT 0 CHECK (forced IN (0, 1))
    );
    CREATE INDEX undos_tool_started ON undos (tool, started_ms);
    CREATE INDEX undos_started ON undos (started_ms);
    CREATE INDEX undos_state ON undos (state) WHERE state IN ('running', 'failed');",
    // 3: the fleet's instances and their leases (see `lease.rs`), and the
    // instance of each journal row, from the admitting transaction's
    // `steward.instance` setting.
    "CREATE TABLE instances (
        name       TEXT PRIMARY KEY NOT NULL,
        host       TEXT NOT NULL,
        pid        BIGINT NOT NULL,
        started_ms BIGINT NOT NULL,
        seen_ms    BIGINT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('live', 'lapsed', 'stopped'))
    );
    ALTER TABLE calls ADD COLUMN instance TEXT DEFAULT NULLIF(current_setting('steward.instance', true), '');
    CREATE INDEX calls_instance_in_flight ON calls (instance) WHERE finished_ms IS NULL;",
    // 4: supervised mode's approval requests (see `approvals.rs`).
    "CREATE TABLE approvals (
        id               TEXT PRIMARY KEY NOT NULL,
        created_ms       BIGINT NOT NULL,
        expires_ms       BIGINT NOT NULL,
        door             TEXT NOT NULL,
        tool             TEXT NOT NULL,
        upstream         TEXT NOT NULL,
        method           TEXT NOT NULL,
        path             TEXT NOT NULL,
        digest           TEXT NOT NULL,
        summary          TEXT NOT NULL,
        state            TEXT NOT NULL
                         CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'released')),
        decided_ms       BIGINT,
        decided_by       TEXT,
        decided_via      TEXT,
        note             TEXT,
        released_call_id TEXT
    );
    CREATE INDEX approvals_state_created ON approvals (state, created_ms);
    CREATE INDEX approvals_digest_state ON approvals (digest, state);
    CREATE INDEX approvals_decided ON approvals (decided_ms) WHERE decided_ms IS NOT NULL;",
    // 5: every change of the kill switch notifies the fleet at its commit,
    // whoever made it (`steward stop`, `resume`, an instance's loop breaker
    // inside its admission): see `pg/kill.rs`.
    "CREATE FUNCTION steward_kill_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         PERFORM pg_notify('steward_kill', '');
         RETURN NULL;
     END $$;
     CREATE TRIGGER kill_switch_notify AFTER UPDATE ON kill_switch
         FOR EACH ROW EXECUTE FUNCTION steward_kill_notify();",
];

/// The advisory-lock namespace of migrations: two instances migrating at
/// once apply each migration once.
const MIGRATE_LOCK: i64 = 0x5354_4557_0000_0001;

/// The seeds that make the admission locks' keys (`hashtextextended` of
/// the tool or the day): one per kind of key, in the order they are taken.
const TOOL_LOCKS: i64 = 0x5354_4557_0000_0002;
const DAY_LOCKS: i64 = 0x5354_4557_0000_0003;

/// Creates or upgrades the schema; the version now applied. Refuses a
/// database migrated by a newer steward ([`StoreError::TooNew`]).
pub async fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let failed = |doing: &'static str| move |e: tokio_postgres::Error| pg_error(doing, &e);
    let tx = client.transaction().await.map_err(failed("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK]).await.map_err(failed("locking the schema"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS steward_schema (version BIGINT NOT NULL)")
        .await
        .map_err(failed("creating the schema version table"))?;
    let found: Option<i64> = tx
        .query_opt("SELECT version FROM steward_schema", &[])
        .await
        .map_err(failed("reading the schema version"))?
        .map(|row| row.get(0));
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let found = match found {
        Some(version) => version,
        None => {
            tx.execute("INSERT INTO steward_schema (version) VALUES (0)", &[])
                .await
                .map_err(failed("recording the schema version"))?;
            0
        }
    };
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(usize::MAX)) {
        tx.batch_execute(migration).await.map_err(failed("applying a schema migration"))?;
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.execute("UPDATE steward_schema SET version = $1", &[&version])
            .await
            .map_err(failed("recording the schema version"))?;
    }
    tx.commit().await.map_err(failed("committing the migration"))?;
    Ok(supported)
}

/// Decides and journals one call (see [`super::Store::admit`]) in its own
/// transaction: the rules of `admission.rs`, under the locks of the keys
/// they count (see the module docs). The row records `instance`, the
/// instance that admitted it (see `lease.rs`).
pub async fn admit(
    client: &mut Client,
    instance: &str,
    a: &Admission,
    redactor: &Redactor,
) -> Result<AdmitOutcome, StoreError> {
    let tx = client.transaction().await.map_err(|e| pg_error("starting an admission", &e))?;
    let db = Postgres { tx: &tx };
    db.execute("naming the instance", "SELECT set_config('steward.instance', ?1, true)", &args![instance]).await?;
    if let Some(tool) = a.tool.as_deref().filter(|_| a.limit.is_some() || a.loop_breaker.max_identical > 0) {
        db.execute(
            "locking the tool's window",
            "SELECT pg_advisory_xact_lock(hashtextextended(?1, ?2))",
            &args![tool, TOOL_LOCKS],
        )
        .await?;
    }
    if let Some(hold) = &a.spend {
        lock_day(&db, &hold.day).await?;
    }
    let outcome = admission::admit(&db, a, redactor).await?;
    tx.commit().await.map_err(|e| pg_error("committing an admission", &e))?;
    Ok(outcome)
}

/// Records the outcome of an admitted call (see [`super::Store::complete`])
/// in its own transaction. A settlement changes its spend day's total, so
/// it takes that day's lock first, as admission does: an admission never
/// decides on a total a settlement is changing.
pub async fn complete(client: &mut Client, c: &Completion) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(|e| pg_error("starting a completion", &e))?;
    let db = Postgres { tx: &tx };
    if c.spend.is_some() {
        let day = db
            .first(
                "reading a call's spend day",
                "SELECT day FROM spend WHERE call_id = ?1",
                &args![&c.call_id],
                |row| row.text(0),
            )
            .await?
            .flatten();
        if let Some(day) = day {
            lock_day(&db, &day).await?;
        }
    }
    completion::complete(&db, c).await?;
    tx.commit().await.map_err(|e| pg_error("committing a completion", &e))
}

/// Withdraws an admitted call that was never forwarded (see
/// [`super::Store::withdraw`]) in its own transaction.
pub async fn withdraw(
    client: &mut Client,
    call_id: &str,
    decision: Decision,
    reason: &str,
    status: u16,
    now_ms: i64,
) -> Result<(), StoreError> {
    in_tx!(client, "a withdrawal", |db| completion::withdraw(db, call_id, decision, reason, status, now_ms));
    Ok(())
}

/// Applies an approval write (create, decide, expire, release: see
/// `approvals.rs`) in its own transaction. Each is one conditional
/// `UPDATE`: two instances deciding one request, or two held calls racing
/// for one grant, serialize on the row's lock, and the second finds it no
/// longer pending (or approved): one decision, one release.
pub(super) async fn approval(client: &mut Client, write: &ApprovalWrite) -> Result<Response, StoreError> {
    Ok(in_tx!(client, "an approval write", |db| write.apply(db)))
}

/// Takes the lock of spend day `day` until the transaction ends.
async fn lock_day(db: &Postgres<'_>, day: &str) -> Result<(), StoreError> {
    db.execute(
        "locking the spend day",
        "SELECT pg_advisory_xact_lock(hashtextextended(?1, ?2))",
        &args![day, DAY_LOCKS],
    )
    .await
    .map(|_| ())
}

/// A PostgreSQL transaction the store's rules run in. Its statements are
/// prepared once per connection (the pool's statement cache).
pub(super) struct Postgres<'a> {
    pub(super) tx: &'a Transaction<'a>,
}

impl Postgres<'_> {
    /// `sql` prepared on this connection, once.
    async fn statement(&self, doing: &str, sql: &'static str) -> Result<Statement, StoreError> {
        self.tx.prepare_cached(&dialect(sql)).await.map_err(|e| pg_error(doing, &e))
    }
}

/// `args` as the driver binds them.
fn bound<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// `sql` with its `?N` placeholders as PostgreSQL's `$N`.
fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// What a failed statement means to the store: the database cannot answer
/// (the caller refuses its call). A row that is not what steward wrote is
/// damage.
pub(super) fn pg_error(doing: &str, e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Unavailable(format!("{doing}: {} ({})", db.message(), db.code().code())),
        None => StoreError::Unavailable(format!("{doing}: {e}")),
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Arg::Int(v) => v.to_sql(ty, out),
            Arg::Real(v) => v.to_sql(ty, out),
            Arg::Text(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <f64 as ToSql>::accepts(ty) || <&str as ToSql>::accepts(ty)
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Each variant checks the column's type against its own.
        match self {
            Arg::Int(v) => v.to_sql_checked(ty, out),
            Arg::Real(v) => v.to_sql_checked(ty, out),
            Arg::Text(v) => v.to_sql_checked(ty, out),
        }
    }
}

impl Row for tokio_postgres::Row {
    fn int(&self, i: usize) -> Result<Option<i64>, RowError> {
        self.try_get(i).map_err(|e| RowError::new(e.to_string()))
    }

    fn text(&self, i: usize) -> Result<Option<String>, RowError> {
        self.try_get(i).map_err(|e| RowError::new(e.to_string()))
    }

    fn real(&self, i: usize) -> Result<Option<f64>, RowError> {
        self.try_get(i).map_err(|e| RowError::new(e.to_string()))
    }
}

impl Db for Postgres<'_> {
    fn aborts_on_error(&self) -> bool {
        true
    }

    async fn execute(&self, doing: &str, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(doing, sql).await?;
        let params = bound(args);
        self.tx.execute(&statement, &params).await.map_err(|e| pg_error(doing, &e))
    }

    async fn first<T>(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl FnOnce(&dyn Row) -> Result<T, RowError>,
    ) -> Result<Option<T>, StoreError> {
        let statement = self.statement(doing, sql).await?;
        let params = bound(args);
        let rows = self.tx.query(&statement, &params).await.map_err(|e| pg_error(doing, &e))?;
        match rows.first() {
            Some(row) => map(row).map(Some).map_err(|e| e.unreadable(doing)),
            None => Ok(None),
        }
    }

    async fn rows<T>(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
        mut map: impl FnMut(&dyn Row) -> Result<T, RowError>,
    ) -> Result<Vec<T>, StoreError> {
        let statement = self.statement(doing, sql).await?;
        let params = bound(args);
        let rows = self.tx.query(&statement, &params).await.map_err(|e| pg_error(doing, &e))?;
        rows.iter().map(|row| map(row).map_err(|e| e.unreadable(doing))).collect()
    }
}

/// The journal's rows for `steward last` (see [`super::Store::last`]), from
/// every instance of the fleet.
pub async fn last(client: &mut Client, q: &LastQuery) -> Result<Vec<CallRow>, StoreError> {
    Ok(in_tx!(client, "a read of the journal", |db| queries::last(db, q)))
}

pub mod connect;
pub mod fleet;
pub mod kill;
pub mod lease;
pub mod timing;

#[cfg(test)]
mod tests;
