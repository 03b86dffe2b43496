//! Every `*.toml` under the repository's `examples/` directory must load:
//! the files people copy from are kept valid by this test.

use std::path::{Path, PathBuf};

/// All `*.toml` files below `dir`, sorted, following no symlinks.
fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn render(err: &steward_core::config::ConfigError) -> String {
    let mut out = String::new();
    let rendered = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, err);
    match rendered {
        Ok(()) => out,
        Err(_) => format!("{err} (rendering the report failed)"),
    }
}

#[test]
fn every_example_config_is_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let files = toml_files(&examples).unwrap();
    assert!(!files.is_empty(), "no *.toml found under {}", examples.display());

    let failures: Vec<String> =
        files.iter().filter_map(|path| steward_core::config::load(path).err().map(|e| render(&e))).collect();
    assert!(failures.is_empty(), "invalid example configs:\n{}", failures.join("\n"));
}

#[test]
fn the_quickstart_config_says_what_the_readme_promises() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/steward.toml");
    let config = steward_core::config::load(&path).unwrap();
    assert_eq!(config.agent.name, "poster");
    let social = &config.upstreams["social"];
    assert_eq!(social.base_url, "http://127.0.0.1:7700");
    assert_eq!(social.credential.as_deref(), Some("social"));
    assert_eq!(config.credentials["social"].source, steward_core::config::CredentialSource::Env("SOCIAL_TOKEN".into()));
    let names: Vec<&str> = config.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["post", "read_status", "delete_status"]);
    let post = &config.tools[0];
    assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/api/v1/statuses"));
    assert!(post.side_effect);
    assert_eq!(post.limit.map(|l| (l.max, l.per.as_secs())), Some((5, 60)));
    assert_eq!(post.retry, steward_core::config::RetryPolicy::Never);
    let read = &config.tools[1];
    assert_eq!((read.method.as_str(), read.path.as_str()), ("GET", "/api/v1/statuses/{id}"));
    assert!(!read.side_effect);
    let delete = &config.tools[2];
    assert_eq!((delete.method.as_str(), delete.path.as_str()), ("DELETE", "/api/v1/statuses/{id}"));
    assert!(delete.side_effect);
    assert_eq!(delete.limit.map(|l| (l.max, l.per.as_secs())), Some((10, 3_600)));
    assert_eq!(config.loop_breaker.max_identical, 5);
    assert_eq!(config.loop_breaker.window.as_secs(), 600);
    assert_eq!(config.unmatched, steward_core::config::UnmatchedPolicy::Deny);
    assert_eq!(config.state.dir, path.parent().unwrap().join(".steward"));
    assert_eq!(config.runbook.contacts, ["Your Name <you@example.com> (on-call, first)"]);
    assert_eq!(config.runbook.output, path.parent().unwrap().join(".steward/RUNBOOK.md"));
}
