//! Instances and their leases: every instance of a fleet has a row in
//! `instances` it refreshes ([`beat`]) while it runs; each journal row
//! carries the instance that admitted it (`calls.instance`, from the
//! transaction's `steward.instance` setting). An instance that stops
//! beating for a lease is dead to the fleet: any live instance's [`reap`]
//! settles its in-flight calls the way a restart settles a single
//! instance's (`Store::settle_interrupted`): finished as `interrupted`,
//! status unknown, their spend reservations billed in full (fail closed:
//! the upstream may have billed them), so no reservation stays open and
//! nothing is counted twice; the undos it was running fail (retryable).
//! One rule for both: `completion::settle_interrupted`, for one instance.
//! Two reapers never settle the same instance: each takes the lapsed rows
//! `FOR UPDATE SKIP LOCKED`.

use deadpool_postgres::Transaction;

use super::super::StoreError;
use super::{Client, Postgres, pg_error};

/// How a refused [`beat`]'s message begins.
pub const NAME_TAKEN: &str = "another live steward holds the instance name";

/// Refreshes `name`'s lease (creating its row). Refused when another live
/// process holds the name (its lease not lapsed): two instances of one
/// name would settle each other's calls.
pub async fn beat(
    client: &Client,
    name: &str,
    host: &str,
    pid: u32,
    lease_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let pid = i64::from(pid);
    let taken = client
        .execute(
            "INSERT INTO instances (name, host, pid, started_ms, seen_ms, state) VALUES ($1, $2, $3, $4, $4, 'live')
             ON CONFLICT (name) DO UPDATE SET seen_ms = $4, state = 'live', host = $2, pid = $3,
                 started_ms = CASE WHEN instances.host = $2 AND instances.pid = $3 THEN instances.started_ms ELSE $4 END
             WHERE (instances.host = $2 AND instances.pid = $3) OR instances.state <> 'live' OR instances.seen_ms < $4 - $5",
            &[&name, &host, &pid, &now_ms, &lease_ms],
        )
        .await
        .map_err(|e| pg_error("renewing the instance's lease", &e))?;
    if taken == 0 {
        return Err(StoreError::Unavailable(format!(
            "{NAME_TAKEN} `{name}` in this database; give each instance its own \
             `[store] instance` (default: the host name)"
        )));
    }
    Ok(())
}

/// Settles the instances whose lease lapsed before `now_ms - lease_ms`
/// (see the module docs); for each, its name and the calls settled.
pub async fn reap(client: &mut Client, lease_ms: i64, now_ms: i64) -> Result<Vec<(String, u64)>, StoreError> {
    let tx = client.transaction().await.map_err(|e| pg_error("starting to settle lapsed instances", &e))?;
    let lapsed = tx
        .query(
            "SELECT name FROM instances WHERE state = 'live' AND seen_ms < $1 ORDER BY name FOR UPDATE SKIP LOCKED",
            &[&(now_ms - lease_ms)],
        )
        .await
        .map_err(|e| pg_error("finding lapsed instances", &e))?;
    let mut settled = Vec::new();
    for row in lapsed {
        let name: String = row.get(0);
        let calls = settle_calls_of(&tx, &name, now_ms).await?;
        tx.execute("UPDATE instances SET state = 'lapsed' WHERE name = $1", &[&name])
            .await
            .map_err(|e| pg_error("marking an instance lapsed", &e))?;
        settled.push((name, calls));
    }
    tx.commit().await.map_err(|e| pg_error("committing the settlement of lapsed instances", &e))?;
    Ok(settled)
}

/// At an instance's start: the calls it left in flight when it last
/// stopped (it crashed before its lease lapsed, or nobody reaped it yet),
/// settled as a lapsed instance's are. The caller holds the name (its
/// [`beat`] succeeded), so no other process is running them.
pub async fn settle_own(client: &mut Client, name: &str, now_ms: i64) -> Result<u64, StoreError> {
    Ok(in_tx!(client, "the settlement of interrupted calls", |db| super::super::completion::settle_interrupted(
        db,
        now_ms,
        Some(name)
    )))
}

/// `name`'s in-flight calls finished as `interrupted`, their reservations
/// billed in full, the undos they were running failed: the rule a single
/// instance's restart runs (`completion::settle_interrupted`), for one
/// instance; how many calls.
async fn settle_calls_of(tx: &Transaction<'_>, name: &str, now_ms: i64) -> Result<u64, StoreError> {
    super::super::completion::settle_interrupted(&Postgres { tx }, now_ms, Some(name)).await
}

/// One instance of the fleet, as `steward status --fleet` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceRow {
    /// `[store] instance`.
    pub name: String,
    /// The host it last ran on.
    pub host: String,
    /// Its process id there.
    pub pid: i64,
    /// When that process took the name, epoch ms.
    pub started_ms: i64,
    /// Its last renewal, epoch ms.
    pub seen_ms: i64,
    /// `live` (renewing), `stopped` (a clean exit) or `lapsed` (stopped
    /// renewing; its calls were settled by another instance).
    pub state: String,
    /// Its calls in flight now.
    pub in_flight: i64,
}

/// Every instance the database has seen, by name.
pub async fn list(client: &Client) -> Result<Vec<InstanceRow>, StoreError> {
    let rows = client
        .query(
            "SELECT i.name, i.host, i.pid, i.started_ms, i.seen_ms, i.state,
                    (SELECT COUNT(*) FROM calls c WHERE c.instance = i.name AND c.finished_ms IS NULL)
             FROM instances i ORDER BY i.name",
            &[],
        )
        .await
        .map_err(|e| pg_error("listing the fleet's instances", &e))?;
    Ok(rows
        .iter()
        .map(|r| InstanceRow {
            name: r.get(0),
            host: r.get(1),
            pid: r.get(2),
            started_ms: r.get(3),
            seen_ms: r.get(4),
            state: r.get(5),
            in_flight: r.get(6),
        })
        .collect())
}

/// An instance renewing its lease is live for the speaker's choice if it
/// renewed within this (renewals come every second).
pub const SPEAKER_FRESH_MS: i64 = 5_000;

/// The fleet's speaker: the live instance (renewed within
/// [`SPEAKER_FRESH_MS`]) with the first name; `None` when none is.
pub async fn speaker(client: &Client, now_ms: i64) -> Result<Option<String>, StoreError> {
    client
        .query_opt(
            "SELECT name FROM instances WHERE state = 'live' AND seen_ms >= $1 ORDER BY name LIMIT 1",
            &[&(now_ms - SPEAKER_FRESH_MS)],
        )
        .await
        .map(|row| row.map(|r| r.get(0)))
        .map_err(|e| pg_error("finding the fleet's speaker", &e))
}
