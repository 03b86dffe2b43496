//! One instance's handle on the fleet's database: what `Store` holds when
//! `[store] url` is set. It owns the pool, the kill switch watch and the
//! instance's name, and runs each of the store's writes (`writer::Request`,
//! the same closed set the SQLite writer runs) as one transaction of the
//! shared rules; the reads run the same way (`Store`'s `on_db!`).
//!
//! Opening checks, in order, and refuses with the fix: the URL parses, the
//! database answers, it is not behind a transaction-mode pooler, its
//! schema is the one this steward knows (`steward migrate` makes it so),
//! and, for the daemon, no other live process holds this instance's name.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use redact::Redactor;

use super::super::admission::{self, NewRow};
use super::super::db::Db as _;
use super::super::writer::{Request, Response};
use super::super::{StoreError, queries, spend, undo};
use super::connect::Target;
use super::kill::{KillWatch, Known, WatchTiming};
use super::timing::{Op, OpLatency, OpTimes};
use super::{MIGRATIONS, Postgres, admit, approval, complete, kill, lease, pg_error, withdraw};
use crate::store::{AdmitOutcome, KillState};

/// Whether the whole fleet shares kv entry `key` (see [`Fleet::kv_key`]):
/// the spend stop ([`crate::store::STOP_KEY`], which admission reads) and
/// supervised mode's record (`supervision.rs`'s `supervised.*` keys: the
/// fleet runs one agent's first week, graduated once).
fn fleet_wide(key: &str) -> bool {
    key == crate::store::STOP_KEY || key.starts_with("supervised.")
}

/// See the module docs.
pub struct Fleet {
    target: Target,
    pool: Pool,
    instance: String,
    watch: KillWatch,
    /// Each operation's duration, for `/metrics`.
    pub(in crate::store) times: OpTimes,
}

/// The pool and the operations' durations now, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetStats {
    /// Connections open.
    pub pool_size: usize,
    /// Of which idle.
    pub pool_idle: usize,
    /// Operations waiting for a connection.
    pub pool_waiting: usize,
    /// Every operation's latency histogram.
    pub ops: Vec<OpLatency>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("database", &self.target.describe()).field("instance", &self.instance).finish()
    }
}

/// The schema version of the database `client` reaches (0: none yet).
pub async fn schema_version(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    let exists = client
        .query_one("SELECT to_regclass('steward_schema') IS NOT NULL", &[])
        .await
        .map_err(|e| pg_error("reading the schema version", &e))?
        .get::<_, bool>(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt("SELECT version FROM steward_schema", &[])
        .await
        .map_err(|e| pg_error("reading the schema version", &e))?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// The schema version this steward writes.
pub fn supported_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// What `steward migrate` did: the schema version found and the one now applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Before (0: an empty database).
    pub from: i64,
    /// After: [`supported_version`].
    pub to: i64,
}

/// Creates or upgrades the fleet's schema at `url` (`steward migrate`).
/// Safe to run from several hosts at once (one waits for the other) and
/// again (nothing to apply). Refuses a database a newer steward migrated.
/// Returns the database's description (never the password) too.
pub async fn migrate_at(url: &str) -> Result<(String, Migrated), StoreError> {
    let target = Target::parse(url)?;
    let mut client = target.connect().await?;
    let from = schema_version(&client).await?;
    let to = super::migrate(&mut client).await?;
    Ok((target.describe().to_owned(), Migrated { from, to }))
}

impl Fleet {
    /// Connects to the database at `url` as `instance` with a pool of
    /// `pool` connections, and checks it (see the module docs; the lease
    /// is the daemon's to take: [`Fleet::beat`]).
    pub async fn open(url: &str, instance: &str, pool: usize) -> Result<Fleet, StoreError> {
        let target = Target::parse(url)?;
        let pool = target.pool(pool)?;
        let fleet = Fleet {
            watch: KillWatch::start(&target, WatchTiming::default()),
            target,
            pool,
            instance: instance.to_owned(),
            times: OpTimes::default(),
        };
        // First: behind a transaction-mode pooler even the schema's read
        // can fail (a prepared statement lost between transactions).
        fleet.target.check_session_pooling().await?;
        let client = fleet.client().await?;
        let found = schema_version(&client).await?;
        let supported = supported_version();
        if found > supported {
            return Err(StoreError::TooNew { found, supported });
        }
        if found < supported {
            return Err(StoreError::Unavailable(format!(
                "the fleet's database {} has schema version {found}, this steward needs {supported}; run \
                 `steward migrate` once (any host), then start steward again",
                fleet.target.describe()
            )));
        }
        // The first read of the kill switch, so that the first call (or
        // `steward resume`'s read) finds it known; unknown after 5 s is an
        // error (fail closed).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match fleet.watch.current() {
                Known::State(_) => break,
                Known::Unknown(why) if std::time::Instant::now() >= deadline => {
                    return Err(StoreError::Unavailable(why));
                }
                Known::Unknown(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        Ok(fleet)
    }

    /// `user@host:port/database`, never the password.
    pub fn describe(&self) -> &str {
        self.target.describe()
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let why = match e {
                deadpool_postgres::PoolError::Backend(e) => super::connect::cause(&e),
                deadpool_postgres::PoolError::Timeout(_) => "no connection within 5 s".to_owned(),
                other => other.to_string(),
            };
            StoreError::Unavailable(format!("the fleet's database {} cannot be reached: {why}", self.describe()))
        })
    }

    /// The pool and the operations' durations now.
    pub fn stats(&self) -> FleetStats {
        let status = self.pool.status();
        FleetStats {
            pool_size: status.size,
            pool_idle: status.available,
            pool_waiting: status.waiting,
            ops: self.times.snapshot(),
        }
    }

    /// The kill switch as this instance's watch last read it (no round
    /// trip); an error when it could not read it lately (fail closed).
    pub fn kill_state(&self) -> Result<KillState, StoreError> {
        match self.watch.current() {
            Known::State(state) => Ok(state),
            Known::Unknown(why) => Err(StoreError::Unavailable(why)),
        }
    }

    /// Renews this instance's lease (see `lease.rs`): every second from
    /// the daemon. Refused when another live process holds the name.
    pub async fn beat(&self, lease: Duration, now_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        let host = crate::config::host_name();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        lease::beat(&client, &self.instance, &host, std::process::id(), lease_ms, now_ms).await
    }

    /// Settles the calls of instances whose lease lapsed (see `lease.rs`).
    pub async fn reap(&self, lease: Duration, now_ms: i64) -> Result<Vec<(String, u64)>, StoreError> {
        let mut client = self.client().await?;
        lease::reap(&mut client, i64::try_from(lease.as_millis()).unwrap_or(i64::MAX), now_ms).await
    }

    /// Whether this instance is the fleet's speaker (see
    /// [`crate::store::Store::speaks_for_fleet`]).
    pub async fn speaks(&self, now_ms: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(lease::speaker(&client, now_ms).await?.is_none_or(|name| name == self.instance))
    }

    /// Every instance the database has seen (`steward status --fleet`).
    pub async fn instances(&self) -> Result<Vec<lease::InstanceRow>, StoreError> {
        lease::list(&*self.client().await?).await
    }

    /// `key` as this instance stores it: the kv entries of one instance
    /// (its agent's status, its config's hash, its alert engine's state)
    /// under its name, so instances do not overwrite each other's; the
    /// fleet's own (the spend stop, supervised mode) shared, as the rules
    /// that read them are.
    pub fn kv_key<'k>(&self, key: &'k str) -> std::borrow::Cow<'k, str> {
        if fleet_wide(key) {
            std::borrow::Cow::Borrowed(key)
        } else {
            std::borrow::Cow::Owned(format!("{}/{key}", self.instance))
        }
    }

    /// Marks this instance stopped (a clean exit: nobody needs to reap it).
    pub async fn leave(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE instances SET state = 'stopped' WHERE name = $1 AND pid = $2",
                &[&self.instance, &i64::from(std::process::id())],
            )
            .await
            .map(|_| ())
            .map_err(|e| pg_error("marking the instance stopped", &e))
    }

    /// Runs one of the store's writes in its own transaction.
    pub(in crate::store) async fn write(&self, req: &Request, redactor: &Redactor) -> Result<Response, StoreError> {
        let started = std::time::Instant::now();
        let response = self.run(req, redactor).await?;
        self.times.record(op_of(req), started.elapsed());
        let changed_kill = matches!(req, Request::EngageKill { .. } | Request::ReleaseKill { .. })
            || matches!(response, Response::Admit(AdmitOutcome::LoopDetected { .. }));
        if changed_kill {
            // Read-your-writes: this instance sees its own change at once;
            // the others by the notification.
            let mut client = self.client().await?;
            self.watch.observe(kill::read(&mut client).await?);
        }
        Ok(response)
    }

    async fn run(&self, req: &Request, redactor: &Redactor) -> Result<Response, StoreError> {
        let mut client = self.client().await?;
        let client = &mut *client;
        match req {
            Request::Admit(a) => admit(client, &self.instance, a, redactor).await.map(Response::Admit),
            Request::Precheck(a) => {
                // The admission's verdict, rolled back (see the SQLite
                // writer's `precheck`); no locks: it is advisory.
                let mut a = a.clone();
                a.loop_breaker.max_identical = 0;
                let tx = client.transaction().await.map_err(|e| pg_error("starting a precheck", &e))?;
                let outcome = admission::admit(&Postgres { tx: &tx }, &a, redactor).await?;
                tx.rollback().await.map_err(|e| pg_error("rolling back a precheck", &e))?;
                Ok(Response::Admit(outcome))
            }
            Request::Approval(w) => approval(client, w).await,
            Request::Refused { admission: a, decision, reason, status } => {
                let row = NewRow { decision: *decision, reason: Some(reason), status: Some(*status), finished: true };
                in_tx!(client, "a refusal's journaling", |db| {
                    async {
                        db.execute(
                            "naming the instance",
                            "SELECT set_config('steward.instance', ?1, true)",
                            &super::super::db::args![self.instance.as_str()],
                        )
                        .await?;
                        admission::insert_call(db, a, &row).await
                    }
                });
                Ok(Response::Done)
            }
            Request::Complete(c) => complete(client, c).await.map(|()| Response::Done),
            Request::Withdraw { call_id, decision, reason, status, now_ms } => {
                withdraw(client, call_id, *decision, reason, *status, *now_ms).await.map(|()| Response::Done)
            }
            Request::EngageKill { reason, source, now_ms } => {
                kill::engage(client, reason, source, *now_ms).await.map(|()| Response::Done)
            }
            Request::ReleaseKill { now_ms } => kill::release(client, *now_ms).await.map(|()| Response::Done),
            // Only this instance's calls: the others' are theirs, or the
            // reaper's once their lease lapses.
            Request::SettleInterrupted { now_ms } => {
                lease::settle_own(client, &self.instance, *now_ms).await.map(Response::Count)
            }
            Request::KvSet { key, value, now_ms } => {
                in_tx!(client, "a kv write", |db| queries::kv_set(db, key, value, *now_ms));
                Ok(Response::Done)
            }
            Request::KvDelete { key } => {
                in_tx!(client, "a kv deletion", |db| queries::kv_delete(db, key));
                Ok(Response::Done)
            }
            Request::PruneJournal { before_ms, max_rows } => {
                Ok(Response::Count(in_tx!(client, "the journal's pruning", |db| queries::prune_journal(
                    db, *before_ms, *max_rows
                ))))
            }
            Request::PruneSpend { before_day, max_rows } => {
                Ok(Response::Count(in_tx!(client, "the spend ledger's pruning", |db| spend::prune(
                    db, before_day, *max_rows
                ))))
            }
            Request::ClaimUndo(claim) => {
                let outcome = in_tx!(client, "an undo's claim", |db| undo::claim(db, claim));
                Ok(Response::Claim(Box::new(outcome)))
            }
            Request::FinishUndo { call_id, state, reason, now_ms } => {
                in_tx!(client, "an undo's end", |db| undo::finish(db, call_id, *state, reason.as_deref(), *now_ms));
                Ok(Response::Done)
            }
            Request::Ping | Request::Rewind => {
                in_tx!(client, "the probe row's write", |db| queries::write_probe(db));
                Ok(Response::Done)
            }
            Request::Checkpoint(_) => {
                Err(StoreError::Unavailable("checkpoints are the embedded store's; PostgreSQL runs its own".into()))
            }
            #[cfg(test)]
            Request::Exec(sql) => {
                client.batch_execute(sql).await.map_err(|e| pg_error("test exec", &e))?;
                Ok(Response::Done)
            }
        }
    }
}

/// What `req` is timed as.
fn op_of(req: &Request) -> Op {
    match req {
        Request::Admit(_) => Op::Admit,
        Request::Precheck(_) => Op::Precheck,
        Request::Approval(_) => Op::Approval,
        Request::Refused { .. } => Op::Refused,
        Request::Complete(_) => Op::Complete,
        Request::Withdraw { .. } => Op::Withdraw,
        Request::EngageKill { .. } | Request::ReleaseKill { .. } => Op::KillSwitch,
        Request::SettleInterrupted { .. } => Op::Settle,
        Request::KvSet { .. } | Request::KvDelete { .. } => Op::Kv,
        Request::PruneJournal { .. } | Request::PruneSpend { .. } => Op::Prune,
        Request::ClaimUndo(_) | Request::FinishUndo { .. } => Op::Undo,
        Request::Ping | Request::Rewind | Request::Checkpoint(_) => Op::Probe,
        #[cfg(test)]
        Request::Exec(_) => Op::Probe,
    }
}
