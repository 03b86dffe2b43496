//! The undo plans: recorded with the completion, claimed once (a second
//! undo finds it done, with the first one's time), failed undos run again,
//! an undo left running by a stopped daemon becomes failed, the kill switch
//! lets only an operator's undo through, and retention prunes plans with
//! their calls.

use super::*;

fn plan(path: &str) -> UndoPlan {
    UndoPlan::Call { tool: "delete_status".into(), method: "DELETE".into(), path: path.into(), body: None }
}

async fn posted(store: &Store, id: &str, at: i64, undo: UndoPlan) {
    store.admit(admission(id, at, Some("post"), id)).await.unwrap();
    store.complete(Completion { undo: Some(undo), ..completion(id, at + 5, Some(200)) }).await.unwrap();
}

fn claim(id: &str, at: i64) -> UndoClaim {
    UndoClaim {
        call_id: id.into(),
        undo_call_id: format!("undo-{id}-{at}"),
        by: "ana".into(),
        via: "cli".into(),
        forced: false,
        now_ms: at,
    }
}

#[tokio::test]
async fn a_plan_is_claimed_once_and_a_second_undo_finds_it_done_with_the_first_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    posted(&store, "a", T0, plan("/api/v1/statuses/1")).await;
    posted(&store, "b", T0 + 10, UndoPlan::Unavailable { reason: "{response.id} is missing".into() }).await;

    let rows = store.undos(UndoQuery { undoable_only: true, ..UndoQuery::default() }).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].state, rows[0].path.as_deref(), rows[0].started_ms),
        (UndoState::Planned, Some("/api/v1/statuses/1"), T0)
    );

    let ClaimOutcome::Claimed(row) = store.claim_undo(claim("a", T0 + 100)).await.unwrap() else { panic!() };
    assert_eq!((row.state, row.attempts, row.by.as_deref()), (UndoState::Running, 1, Some("ana")));
    // A concurrent second undo does not send another.
    let ClaimOutcome::NotClaimed(busy) = store.claim_undo(claim("a", T0 + 101)).await.unwrap() else { panic!() };
    assert_eq!(busy.state, UndoState::Running);
    store.finish_undo("a", UndoState::Undone, None, T0 + 200).await.unwrap();
    let ClaimOutcome::NotClaimed(done) = store.claim_undo(claim("a", T0 + 300)).await.unwrap() else { panic!() };
    assert_eq!((done.state, done.changed_ms), (UndoState::Undone, T0 + 200));
    assert_eq!(done.undo_call_id, Some(format!("undo-a-{}", T0 + 100)));
    // Unavailable: never claimed; no plan at all: said so.
    let ClaimOutcome::NotClaimed(none) = store.claim_undo(claim("b", T0 + 300)).await.unwrap() else { panic!() };
    assert_eq!((none.state, none.reason.as_deref()), (UndoState::Unavailable, Some("{response.id} is missing")));
    assert_eq!(store.claim_undo(claim("zz", T0)).await.unwrap(), ClaimOutcome::NoPlan);
}

#[tokio::test]
async fn a_failed_undo_runs_again_and_one_left_running_fails_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    posted(&store, "a", T0, plan("/s/1")).await;
    posted(&store, "b", T0 + 1, plan("/s/2")).await;
    assert!(matches!(store.claim_undo(claim("a", T0 + 10)).await.unwrap(), ClaimOutcome::Claimed(_)));
    store.finish_undo("a", UndoState::Failed, Some("the upstream answered 500"), T0 + 20).await.unwrap();
    let failed = store.undos(UndoQuery { failed_only: true, ..UndoQuery::default() }).await.unwrap();
    assert_eq!(failed[0].reason.as_deref(), Some("the upstream answered 500"));
    let ClaimOutcome::Claimed(again) = store.claim_undo(claim("a", T0 + 30)).await.unwrap() else { panic!() };
    assert_eq!(again.attempts, 2);

    assert!(matches!(store.claim_undo(claim("b", T0 + 40)).await.unwrap(), ClaimOutcome::Claimed(_)));
    store.settle_interrupted(T0 + 50).await.unwrap();
    let rows = store.undos(UndoQuery { failed_only: true, ..UndoQuery::default() }).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.reason.as_deref().unwrap().contains("steward stopped")), "{rows:?}");
    // Newest original first.
    assert_eq!(rows.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
}

#[tokio::test]
async fn only_an_operators_undo_passes_the_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.engage_kill("bad posts", "cli", T0).await.unwrap();
    let agent = store.admit(admission("agent", T0 + 1, Some("delete_status"), "k1")).await.unwrap();
    assert!(matches!(agent, AdmitOutcome::Killed { .. }), "{agent:?}");
    let undo = Admission { undo_by_operator: true, ..admission("undo", T0 + 2, Some("delete_status"), "k2") };
    assert_eq!(store.admit(undo).await.unwrap(), AdmitOutcome::Admitted);
}

#[tokio::test]
async fn short_ids_find_their_call_and_plans_are_pruned_with_their_calls() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let old = "019ae4a1-0000-7000-8000-4b1c9e2a7f3d";
    let new = "019ae4a1-0000-7000-8000-aaaa00000001";
    posted(&store, old, T0, plan("/s/1")).await;
    posted(&store, new, T0 + HOUR_MS, plan("/s/2")).await;
    assert_eq!(store.find_call_ids("4b1c9e2a7f3d").await.unwrap(), [old]);
    assert_eq!(store.find_call_ids("4b1c").await.unwrap(), [old]);
    assert_eq!(store.find_call_ids(old).await.unwrap(), [old]);
    assert_eq!(store.find_call_ids("019ae4a1").await.unwrap().len(), 2);
    assert!(store.find_call_ids("x'; DROP").await.unwrap().is_empty());

    assert_eq!(store.prune_journal(T0 + 1, 100).await.unwrap(), 1);
    let left = store.undos(UndoQuery::default()).await.unwrap();
    assert_eq!(left.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(), [new]);
}
