//! Keeps the crate's import rules true (see "Who may import whom" in the
//! crate docs): reads the source of every top-level module and fails when a
//! forbidden `crate::X` path appears, or when modules import each other
//! around a loop. Test files (`tests.rs`, `tests_*.rs`, `tests/`) may reach
//! anywhere and are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `(importer, imported)` pairs the issue rules out by name.
const FORBIDDEN: &[(&str, &str)] = &[("pipeline", "monitor"), ("monitor", "pipeline"), ("secrets", "monitor")];

/// The small shared modules: each may import only these, `config` and `store`.
const SHARED: &[&str] = &["clock", "redaction", "state_dir", "outbound", "telemetry", "events", "agent_state"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name == "tests.rs" || name.starts_with("tests_") || path.components().any(|c| c.as_os_str() == "tests")
}

/// Every non-test `.rs` file of top-level module `module`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let dir = src().join(module);
    let mut out = Vec::new();
    let file = src().join(format!("{module}.rs"));
    if file.is_file() {
        out.push(file);
    }
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// The top-level modules, as `lib.rs` declares them (test-only ones aside).
fn modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect()
}

/// Which other top-level modules `module` names as `crate::X` (in `use`
/// lines, grouped `use crate::{..}` lists and paths alike), with a file and
/// line where it does. Comments are skipped.
fn imports_of(module: &str, all: &[String]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for file in files_of(module) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect();
        let joined = code.join("\n");
        for target in all.iter().filter(|t| *t != module) {
            let direct = format!("crate::{target}");
            let direct_at = joined.match_indices(&direct).map(|(at, _)| at).find(|at| {
                let next = joined[at + direct.len()..].chars().next();
                !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            let grouped_at = grouped_imports(&joined).get(target.as_str()).copied();
            if let Some(at) = direct_at.or(grouped_at) {
                let line = joined[..at].lines().count();
                found.entry(target.clone()).or_insert_with(|| format!("{}:{line}", file.display()));
            }
        }
    }
    found
}

/// The first segments of every `crate::{a, b::c}` group in `code`, each
/// with the offset of its group.
fn grouped_imports(code: &str) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for (at, _) in code.match_indices("crate::{") {
        let rest = &code[at + "crate::{".len()..];
        let Some(end) = rest.find('}') else { continue };
        for item in rest[..end].split(',') {
            let first = item.trim().split("::").next().unwrap_or_default().trim();
            if !first.is_empty() {
                out.entry(first).or_insert(at);
            }
        }
    }
    out
}

#[test]
fn the_pipeline_monitor_and_secrets_keep_to_their_side() {
    let all = modules();
    for (from, to) in FORBIDDEN {
        let imports = imports_of(from, &all);
        assert!(!imports.contains_key(*to), "`{from}` must not import `{to}` (at {})", imports[*to]);
    }
}

#[test]
fn the_small_shared_modules_import_only_each_other_config_and_store() {
    let all = modules();
    for module in SHARED {
        for (target, at) in imports_of(module, &all) {
            assert!(
                SHARED.contains(&target.as_str()) || target == "config" || target == "store",
                "`{module}` is shared by the whole crate and must not import `{target}` (at {at})"
            );
        }
    }
}

#[test]
fn no_two_modules_import_each_other_around_a_loop() {
    let all = modules();
    let graph: BTreeMap<String, BTreeMap<String, String>> =
        all.iter().map(|m| (m.clone(), imports_of(m, &all))).collect();
    // Depth-first search; a module met again while still on the path closes a loop.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|m| m == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            let hops: Vec<String> =
                cycle.windows(2).map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]])).collect();
            panic!("modules import each other around a loop:\n{}", hops.join("\n"));
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in &all {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_check_sees_every_kind_of_import() {
    let code = "use crate::{config::Config, monitor};\nfn f() { crate::pipeline::unix_ms(t) }";
    assert_eq!(grouped_imports(code).into_keys().collect::<Vec<_>>(), ["config", "monitor"]);
    assert!(modules().contains(&"pipeline".to_owned()));
    assert!(files_of("pipeline").iter().any(|f| f.ends_with("pipeline/mod.rs")));
    assert!(files_of("clock").iter().any(|f| f.ends_with("clock.rs")));
}
