//! Shared setup of the backup integration tests: a temp dir with a config
//! whose `[backup]` section points at a destination, agent state files, a
//! planted canary credential, a store with calls in it, and the leak check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
#![allow(dead_code, reason = "each test file uses a different part of the helpers")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use leak_check::private_file;
use steward_core::backup::{Backups, NoProgress, Progress};
use steward_core::config::{Config, LoopBreakerConfig};
use steward_core::secrets::Secrets;
use steward_core::store::{Admission, Completion, LastQuery, Store};

/// The planted credential: must reach no backup artifact, manifest or message.
pub const CANARY: &str = "canary-backup-secret-5e4d3c2b1a09";

/// Start of simulated time (2026-09-01T03:00:00Z).
pub const T0: i64 = 1_788_231_600_000;

/// A test deployment.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: Arc<Config>,
}

impl Setup {
    /// A deployment whose `[backup]` writes to `destination` (`None`: a
    /// local `./dest` directory); `extra` adds lines to `[backup]`, and
    /// `credentials` adds `[credentials.*]` sections.
    pub fn new(destination: Option<&str>, extra: &str, credentials: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agent-state/nested")).unwrap();
        std::fs::create_dir_all(root.join("secrets")).unwrap();
        std::fs::write(root.join("calendar.json"), r#"{"events":[{"at":"2026-12-01T10:00","title":"dentist"}]}"#)
            .unwrap();
        std::fs::write(root.join("agent-state/notes.md"), "remember the milk\n").unwrap();
        std::fs::write(root.join("agent-state/nested/deep.bin"), [0u8, 1, 2, 3, 255]).unwrap();
        private_file(&root.join("secrets/social.token"), CANARY);
        let destination = destination.map_or_else(|| format!("file://{}/dest", root.display()), str::to_owned);
        let text = format!(
            r#"[agent]
name = "backup-test"

[state]
dir = "./state"

[credentials.social]
source = "file:secrets/social.token"
{credentials}

[backup]
paths = ["./calendar.json", "./agent-state/", "./secrets/"]
destination = "{destination}"
{extra}
"#
        );
        let path = root.join("steward.toml");
        std::fs::write(&path, text).unwrap();
        let config = steward_core::config::load(&path).unwrap_or_else(|e| panic!("{:?}", miette::Report::new(e)));
        std::fs::create_dir_all(&config.state.dir).unwrap();
        Setup { dir, config: Arc::new(config) }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn dest(&self) -> PathBuf {
        self.root().join("dest")
    }

    pub fn store(&self) -> Store {
        Store::open(&self.config.state.db_path(), steward_core::store::fixed_redactor(redact::Redactor::default()))
            .unwrap()
    }

    /// Resolved on a thread of its own: callers may already be inside a runtime.
    pub fn secrets(&self) -> Secrets {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(Secrets::resolve(&self.config)).unwrap()
                })
                .join()
                .unwrap()
        })
    }

    pub fn backups(&self) -> Backups {
        Backups::open(Arc::clone(&self.config), &self.secrets()).unwrap()
    }
}

/// No progress reporting.
pub fn quiet() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

/// An admission for call `id` at `now_ms`.
pub fn admission(id: &str, now_ms: i64) -> Admission {
    Admission {
        call_id: id.to_owned(),
        now_ms,
        door: "api".into(),
        tool: Some("post".into()),
        upstream: "social".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        loop_key: id.to_owned(),
        input_summary: format!("{{\"status\":\"hello {id}\"}}"),
        input_sha256: "ab".repeat(32),
        limit: None,
        loop_breaker: LoopBreakerConfig { max_identical: 0, window: Duration::ZERO },
        spend: None,
    }
}

/// Admits and completes `n` calls starting at `from_ms`.
pub async fn write_calls(store: &Store, prefix: &str, n: usize, from_ms: i64) {
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        let now = from_ms + i64::try_from(i).unwrap();
        store.admit(admission(&id, now)).await.unwrap();
        store.complete(completion(&id, now + 5)).await.unwrap();
    }
}

/// A successful completion.
pub fn completion(id: &str, now_ms: i64) -> Completion {
    Completion {
        call_id: id.to_owned(),
        now_ms,
        status: Some(200),
        duration_ms: 5,
        attempts: 1,
        response_ref: None,
        error: None,
        extra_json: Some("{\"tokens\":3}".into()),
        spend: None,
    }
}

/// Every journal row, newest first.
pub async fn all_rows(store: &Store) -> Vec<steward_core::store::CallRow> {
    store.last(LastQuery { limit: 1_000_000, tool: None, since_ms: None, failed_only: false }).await.unwrap()
}
