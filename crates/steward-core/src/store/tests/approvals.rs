//! The approvals API (supervised mode): create, decide once, expire (fail
//! closed, also for a decision that arrives too late), release once, the
//! lists, the prefix lookup, the graduation record, and the precheck that
//! writes nothing.

use super::*;

const MIN_MS: i64 = 60_000;

fn request(id: &str, digest: &str, created_ms: i64) -> NewApproval {
    NewApproval {
        id: id.to_owned(),
        created_ms,
        expires_ms: created_ms + 120 * MIN_MS,
        door: "api".into(),
        tool: "post".into(),
        upstream: "social".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        digest: digest.to_owned(),
        summary: "{\"status\":\"hi\"}".into(),
    }
}

fn decision(id: &str, verdict: Verdict, now_ms: i64) -> ApprovalDecision {
    ApprovalDecision {
        id: id.to_owned(),
        verdict,
        by: "ana".into(),
        via: "cli".into(),
        note: Some("ok".into()),
        now_ms,
    }
}

#[tokio::test]
async fn a_request_is_decided_once_and_its_grant_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.create_approval(request("aaaa01", "d1", T0)).await.unwrap();
    assert_eq!(store.pending_approvals().await.unwrap().len(), 1);
    assert_eq!(store.open_approval_for("d1", T0).await.unwrap().unwrap().state, ApprovalState::Pending);

    let Decided::Recorded(row) =
        store.decide_approval(decision("aaaa01", Verdict::Approve, T0 + MIN_MS)).await.unwrap()
    else {
        panic!("not recorded")
    };
    assert_eq!(
        (row.state, row.decided_by.as_deref(), row.time_to_decide_ms()),
        (ApprovalState::Approved, Some("ana"), Some(MIN_MS))
    );
    // A second decision changes nothing.
    let again = store.decide_approval(decision("aaaa01", Verdict::Deny, T0 + 2 * MIN_MS)).await.unwrap();
    assert!(matches!(again, Decided::AlreadyDecided(ref r) if r.state == ApprovalState::Approved), "{again:?}");
    assert!(store.pending_approvals().await.unwrap().is_empty());

    // Released exactly once, for one call.
    assert!(store.release_approval("aaaa01", "call-1", T0 + 3 * MIN_MS).await.unwrap());
    assert!(!store.release_approval("aaaa01", "call-2", T0 + 3 * MIN_MS).await.unwrap());
    let used = store.approval("aaaa01").await.unwrap().unwrap();
    assert_eq!((used.state, used.released_call_id.as_deref()), (ApprovalState::Released, Some("call-1")));
    assert!(store.open_approval_for("d1", T0 + 3 * MIN_MS).await.unwrap().is_none());
    assert!(matches!(
        store.decide_approval(decision("nope", Verdict::Approve, T0)).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn concurrent_releases_of_one_grant_release_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.create_approval(request("bbbb01", "d2", T0)).await.unwrap();
    store.decide_approval(decision("bbbb01", Verdict::Approve, T0 + 1)).await.unwrap();
    let releases = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.release_approval("bbbb01", &format!("call-{i}"), T0 + 2).await.unwrap() })
    });
    let mut released = 0;
    for release in releases {
        released += usize::from(release.await.unwrap());
    }
    assert_eq!(released, 1);
}

#[tokio::test]
async fn expiry_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.create_approval(request("cccc01", "d3", T0)).await.unwrap();
    store.create_approval(request("cccc02", "d4", T0 + 10 * MIN_MS)).await.unwrap();
    let due = T0 + 120 * MIN_MS;
    assert_eq!(store.expire_approvals(due - 1).await.unwrap(), 0);
    assert_eq!(store.expire_approvals(due).await.unwrap(), 1);
    let expired = store.approval("cccc01").await.unwrap().unwrap();
    assert_eq!((expired.state, expired.decided_via.as_deref()), (ApprovalState::Expired, Some(VIA_EXPIRY)));
    // A decision arriving after the expiry (no sweep ran) is refused and expires it.
    let late = store.decide_approval(decision("cccc02", Verdict::Approve, T0 + 130 * MIN_MS)).await.unwrap();
    assert!(matches!(late, Decided::Expired(ref r) if r.state == ApprovalState::Expired), "{late:?}");
    assert!(!store.release_approval("cccc02", "call", T0 + 131 * MIN_MS).await.unwrap());
    // A grant lives as long as a request, counted from its approval.
    store.create_approval(request("cccc03", "d5", T0)).await.unwrap();
    store.decide_approval(decision("cccc03", Verdict::Approve, T0 + MIN_MS)).await.unwrap();
    assert!(store.open_approval_for("d5", T0 + 121 * MIN_MS).await.unwrap().is_none());
    assert!(!store.release_approval("cccc03", "call", T0 + 121 * MIN_MS).await.unwrap());
    let decided = store.approvals_decided_since(T0).await.unwrap();
    assert_eq!(decided.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["cccc03", "cccc01", "cccc02"]);
}

#[tokio::test]
async fn prefixes_find_one_request_or_list_the_matches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.create_approval(request("7f3a01", "d6", T0)).await.unwrap();
    store.create_approval(request("7f3b02", "d7", T0 + 1)).await.unwrap();
    assert_eq!(store.approvals_by_prefix("7F3A").await.unwrap().len(), 1);
    assert_eq!(store.approvals_by_prefix("7f3").await.unwrap().len(), 2);
    assert!(store.approvals_by_prefix("7f3%").await.unwrap().is_empty(), "no LIKE wildcard");
    assert!(store.approvals_by_prefix("").await.unwrap().is_empty());
    let ambiguous = crate::pipeline::decide(&store, "7f3", Verdict::Approve, "ana", "cli", None, T0 + 2).await;
    assert!(
        matches!(ambiguous, Err(crate::pipeline::DecideError::Ambiguous { ref matches, .. }) if matches.len() == 2)
    );
    let unreasoned =
        crate::pipeline::decide(&store, "7f3a", Verdict::Deny, "ana", "cli", Some(" ".into()), T0 + 2).await;
    assert!(matches!(unreasoned, Err(crate::pipeline::DecideError::MissingReason)));
    let denied = crate::pipeline::decide(&store, "7f3a", Verdict::Deny, "ana", "cli", Some("no".into()), T0 + 2).await;
    assert_eq!(denied.unwrap().state, ApprovalState::Denied);
    // Only one of the two is still pending: the short prefix now means it.
    let approved = crate::pipeline::decide(&store, "7f3", Verdict::Approve, "ana", "cli", None, T0 + 3).await;
    assert_eq!(approved.unwrap().id, "7f3b02");
}

#[tokio::test]
async fn the_precheck_answers_like_admission_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let limit = per_hour(1);
    assert_eq!(store.precheck(limited("p1", T0, limit)).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.admit(limited("p1", T0, limit)).await.unwrap(), AdmitOutcome::Admitted);
    assert!(matches!(store.precheck(limited("p2", T0 + 1, limit)).await.unwrap(), AdmitOutcome::RateLimited { .. }));
    store.engage_kill("stop", "cli", T0 + 2).await.unwrap();
    assert!(matches!(store.precheck(limited("p3", T0 + 3, limit)).await.unwrap(), AdmitOutcome::Killed { .. }));
    // Only the admitted call was journaled; the precheck's rows were rolled back.
    let rows = store.last(LastQuery { limit: 10, ..LastQuery::default() }).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["p1"]);
}
