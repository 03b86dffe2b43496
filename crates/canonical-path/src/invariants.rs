//! The promise of this crate as one executable check, shared by the property
//! tests (`tests/properties.rs`, on every `cargo test`) and the fuzz target
//! (`fuzz/fuzz_targets/canonical_path.rs`): for any target that is accepted,
//! the path and query the upstream receives are the ones steward matched and
//! recorded. Not part of the API steward uses.

use url::Url;

use crate::{CanonicalPath, CanonicalQuery, RequestTarget};

/// Base URLs the forwarded path is built on: no path, a path, a path with a
/// trailing slash (the config loader trims it, but the builder must not care).
pub const BASES: [&str; 3] = ["http://127.0.0.1:9", "http://127.0.0.1:9/base", "https://upstream.test/a/b/"];

/// [`check`] for a request target as it comes off the wire: `data` after
/// `/api/`, read by `http` the way hyper reads a request line, then split
/// into path and query the way the gateway does. Targets hyper refuses never
/// reach steward.
pub fn check_wire(data: &[u8]) -> Result<(), String> {
    let mut target = b"/api/".to_vec();
    target.extend_from_slice(data);
    let Ok(uri) = http::Uri::try_from(target) else {
        return Ok(());
    };
    let Some(rest) = uri.path().strip_prefix("/api/") else {
        return Ok(());
    };
    check(rest, uri.query())
}

/// Checks every promise for `rest` (the target after the door prefix) and
/// `query`. `Ok` when the target is refused (nothing is forwarded) or when
/// every promise holds; `Err` says which promise broke.
pub fn check(rest: &str, query: Option<&str>) -> Result<(), String> {
    let Ok(target) = RequestTarget::parse(rest, query) else {
        return Ok(());
    };
    check_segments(&target.path)?;
    let reparsed = CanonicalPath::parse(target.path.as_str()).map_err(|e| format!("rendered path refused: {e}"))?;
    if reparsed != target.path {
        return Err(format!("not a fixed point: {:?} reparsed as {:?}", target.path, reparsed));
    }
    for base in BASES {
        let base = Url::parse(base).map_err(|e| e.to_string())?;
        let url = target.url_on(&base).map_err(|e| e.to_string())?;
        let prefix = base.path().trim_end_matches('/');
        let expected = format!("{prefix}{}", target.path.as_str());
        // What reqwest sends is the URL's path; what the upstream's hyper
        // reads is that string parsed as a request target; a client that
        // round-trips the URL through a string parses it again.
        let sent = url.path().to_owned();
        let wire = format!("{sent}{}", url.query().map(|q| format!("?{q}")).unwrap_or_default());
        let received =
            http::Uri::try_from(wire.as_str()).map_err(|e| format!("upstream cannot parse {wire:?}: {e}"))?;
        let reparsed = Url::parse(url.as_str()).map_err(|e| format!("{url} does not parse again: {e}"))?;
        for (who, path) in [("url", sent.as_str()), ("upstream", received.path()), ("re-parsed url", reparsed.path())] {
            if path != expected {
                return Err(format!("{who} path {path:?} is not {expected:?} for {rest:?} on {base}"));
            }
        }
        let below = received.path().strip_prefix(prefix).ok_or("base path lost")?;
        let decoded = decode_received(below)?;
        if decoded.0 != target.path.segments() || decoded.1 != target.path.has_trailing_slash() {
            return Err(format!("upstream decodes {below:?} as {decoded:?}, steward matched {:?}", target.path));
        }
        let sent_query = url.query();
        let canonical_query = target.query.as_ref().map(CanonicalQuery::as_str);
        if sent_query != canonical_query || received.query() != canonical_query {
            return Err(format!(
                "query sent {sent_query:?}, received {:?}, recorded {canonical_query:?}",
                received.query()
            ));
        }
    }
    Ok(())
}

/// No accepted segment can mean something else to any reader.
fn check_segments(path: &CanonicalPath) -> Result<(), String> {
    for segment in path.segments() {
        let bad = segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.contains(['/', '\\', '%', ';'])
            || segment.chars().any(char::is_control);
        if bad {
            return Err(format!("segment {segment:?} was accepted"));
        }
    }
    Ok(())
}

/// The upstream's reading of its path: split on `/`, each segment decoded once.
fn decode_received(path: &str) -> Result<(Vec<String>, bool), String> {
    let rest = path.strip_prefix('/').ok_or_else(|| format!("{path:?} does not start with /"))?;
    let mut parts: Vec<&str> = rest.split('/').collect();
    let trailing = parts.last().is_some_and(|last| last.is_empty());
    if trailing {
        parts.pop();
    }
    let mut segments = Vec::new();
    for part in parts {
        let decoded = percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map_err(|_| format!("upstream segment {part:?} is not UTF-8"))?;
        segments.push(decoded.into_owned());
    }
    Ok((segments, trailing))
}
