//! The rules of MCP's stateless revision, 2026-07-28, for the door: which
//! request is one, the header checks it must pass before anything is
//! served, and the translation between such a client and steward's
//! servers, which steward always speaks to in a session revision.
//!
//! # Negotiation, per request
//! A 2026-07-28 client sends no `initialize` and has no session: every
//! request names its revision in `params._meta` (`io.modelcontextprotocol/
//! protocolVersion`, with its `clientInfo` and `clientCapabilities`) and, over
//! HTTP, in the `MCP-Protocol-Version` header, next to `Mcp-Method` and, for
//! `tools/call`, `prompts/get` and `resources/read`, `Mcp-Name`. So the door
//! decides per request: `initialize` opens a 2025-11-25 (or older) session as
//! before; a request that names its revision in `_meta`, or in the header a
//! revision that is not a session revision, is served statelessly
//! ([`applies`]). A revision steward does not speak is answered `400` with
//! `UnsupportedProtocolVersion` listing [`PROTOCOL_VERSIONS`], newest first,
//! so the client retries with the newest it shares (the official SDK does).
//!
//! # The headers are checked against the body, which decides
//! The body is parsed once; the headers must repeat it. A missing, repeated
//! or different `MCP-Protocol-Version`, `Mcp-Method` or `Mcp-Name` (after the
//! `=?base64?…?=` decoding the spec defines) is refused `400` with a
//! `HeaderMismatch` error before anything reaches the pipeline or the
//! server: a component that routes or limits on the header and the server
//! that acts on the body must never disagree on the tool (spec: "Server
//! Validation"). The pipeline decides on the body's tool name only.
//!
//! # Translation to the session revision steward speaks to its servers
//! Towards the server, the client's revision envelope is taken out of
//! `_meta` (it describes the client's hop, not steward's; everything else is
//! relayed). Back to the client, every result gets `resultType: "complete"`
//! and the cacheable ones `ttlMs: 0` and `cacheScope: "private"` (what
//! steward lists changes with the policy and the pins, so nothing may be
//! cached), as this revision requires ([`complete`]). `server/discover` is
//! answered here from the server's `initialize` result ([`discover`]).
//! Server-initiated requests (sampling, elicitation, roots) are not part of
//! this revision: one that arrives while a stateless request is the latest
//! is answered with an error to the server (see `hub`). Closing a request's
//! HTTP response is its cancellation (the door cancels the call at the
//! server); `subscriptions/listen` is not relayed (`404`, method not found).

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{PROTOCOL_VERSIONS, SESSION_VERSIONS, STATELESS_VERSIONS, rpc_error};

/// JSON-RPC error: a header does not repeat the body, or is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC error: the request's revision is not one steward speaks.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// JSON-RPC: method not found.
pub const METHOD_NOT_FOUND: i64 = -32601;

/// The revision header (every POST of a 2025-06-18 or later client).
const VERSION_HEADER: &str = "mcp-protocol-version";
/// The header that repeats the body's `method`.
const METHOD_HEADER: &str = "mcp-method";
/// The header that repeats the body's `params.name` (or `params.uri`).
const NAME_HEADER: &str = "mcp-name";

/// The `_meta` key of the request's revision.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` keys of the client's revision envelope, which describe the
/// client's hop to steward: not relayed to a server that steward speaks a
/// session revision to.
const ENVELOPE: &[&str] = &[
    META_VERSION,
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/logLevel",
];

/// The methods whose results are cacheable (`ttlMs`, `cacheScope` required).
const CACHEABLE: &[&str] =
    &["tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read", "server/discover"];

/// Prefix and suffix of a Base64-encoded header value (spec: "Value Encoding").
const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// A stateless request refused before it is served: the HTTP status and
/// the JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `400` for a header mismatch or an unsupported revision.
    pub status: StatusCode,
    /// The JSON-RPC error object.
    pub error: Value,
}

/// The revision a request names in `params._meta`.
fn meta_version(message: &Value) -> Option<&Value> {
    message.get("params")?.get("_meta")?.get(META_VERSION)
}

/// Whether `message` (not an `initialize`) is served statelessly: it names
/// its revision in `_meta`, or its `MCP-Protocol-Version` header names a
/// revision that is not a session revision (2026-07-28, or one steward
/// does not know: refused by [`check`] with the revisions it speaks).
pub fn applies(headers: &HeaderMap, message: &Value) -> bool {
    if meta_version(message).is_some() {
        return true;
    }
    headers.get_all(VERSION_HEADER).iter().any(|v| v.to_str().map_or(true, |v| !SESSION_VERSIONS.contains(&v)))
}

fn mismatch(message: String) -> Rejection {
    Rejection { status: StatusCode::BAD_REQUEST, error: rpc_error(HEADER_MISMATCH, message) }
}

/// The one value of header `name`: `Ok(None)` when absent, an error when
/// it is repeated or not visible ASCII (an intermediary may read another
/// copy than steward would).
fn one_header<'h>(headers: &'h HeaderMap, name: &str, shown: &str) -> Result<Option<&'h str>, Rejection> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(mismatch(format!("Header mismatch: the {shown} header is sent more than once; send it once")));
    }
    first.to_str().map(Some).map_err(|_| {
        mismatch(format!(
            "Header mismatch: the {shown} header holds characters a header value may not; encode it as =?base64?…?="
        ))
    })
}

/// A header value as the spec encodes it: plain, or `=?base64?B64?=`
/// (UTF-8). `None` when the Base64 form does not decode.
fn decode(value: &str) -> Option<String> {
    use base64::Engine as _;
    match value.strip_prefix(BASE64_PREFIX).and_then(|v| v.strip_suffix(BASE64_SUFFIX)) {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_owned()),
    }
}

/// `value` as a header value: plain when it is visible ASCII (inner
/// spaces allowed) and does not look encoded, else `=?base64?…?=`.
fn encode(value: &str) -> String {
    use base64::Engine as _;
    let header_safe = value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    let padded = value.starts_with(' ') || value.ends_with(' ');
    let looks_encoded = value.starts_with(BASE64_PREFIX) && value.ends_with(BASE64_SUFFIX);
    let plain = header_safe && !padded && !looks_encoded;
    if plain {
        value.to_owned()
    } else {
        format!("{BASE64_PREFIX}{}{BASE64_SUFFIX}", base64::engine::general_purpose::STANDARD.encode(value))
    }
}

/// The headers a 2026-07-28 request `message` is sent with over HTTP
/// (revision, method, name), mirrored from its body: what `steward mcp`
/// adds for a stdio client, whose transport has no headers. Empty for a
/// message of a session revision.
pub fn request_headers(message: &Value) -> Vec<(&'static str, String)> {
    let Some(Value::String(version)) = meta_version(message) else { return Vec::new() };
    let mut headers = vec![(VERSION_HEADER, version.clone())];
    let Some(method) = message.get("method").and_then(Value::as_str) else { return headers };
    headers.push((METHOD_HEADER, method.to_owned()));
    if let Some(name) = name_member(method).and_then(|m| message.get("params")?.get(m)?.as_str()) {
        headers.push((NAME_HEADER, encode(name)));
    }
    headers
}

/// The member of `params` that `Mcp-Name` repeats, for the methods that
/// carry one.
fn name_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// The checks of a stateless request, before anything is served: the
/// revision (header and `_meta` agree, and steward speaks it), then
/// `Mcp-Method` and `Mcp-Name` against the body.
pub fn check(headers: &HeaderMap, message: &Value) -> Result<(), Rejection> {
    let header = one_header(headers, VERSION_HEADER, "MCP-Protocol-Version")?;
    let body = meta_version(message);
    let version = match (header, body) {
        (Some(header), Some(Value::String(body))) if header == body => header,
        (Some(header), Some(body)) => {
            return Err(mismatch(format!(
                "Header mismatch: MCP-Protocol-Version header value '{header}' does not match body value {body} (params._meta.{META_VERSION})"
            )));
        }
        (Some(header), None) => {
            return Err(mismatch(format!(
                "Header mismatch: MCP-Protocol-Version is '{header}' but params._meta has no {META_VERSION}; \
                 a 2026-07-28 request names its revision in both (or send initialize to open a 2025-11-25 session)"
            )));
        }
        (None, _) => {
            return Err(mismatch(
                "Header mismatch: the MCP-Protocol-Version header is missing; send the revision of params._meta in it"
                    .to_owned(),
            ));
        }
    };
    if !STATELESS_VERSIONS.contains(&version) {
        return Err(Rejection {
            status: StatusCode::BAD_REQUEST,
            error: json!({
                "code": UNSUPPORTED_PROTOCOL_VERSION,
                "message": format!("Unsupported protocol version '{version}': steward speaks {}", PROTOCOL_VERSIONS.join(", ")),
                "data": { "supported": PROTOCOL_VERSIONS, "requested": version },
            }),
        });
    }
    let method = message.get("method").and_then(Value::as_str).unwrap_or_default();
    match one_header(headers, METHOD_HEADER, "Mcp-Method")? {
        Some(header) if header == method => {}
        Some(header) => {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Method header value '{header}' does not match body value '{method}'"
            )));
        }
        None => {
            return Err(mismatch(format!(
                "Header mismatch: the Mcp-Method header is missing; send Mcp-Method: {method}"
            )));
        }
    }
    let Some(member) = name_member(method) else { return Ok(()) };
    let body = message.get("params").and_then(|p| p.get(member)).and_then(Value::as_str);
    let header = one_header(headers, NAME_HEADER, "Mcp-Name")?;
    match (header, body) {
        (Some(header), Some(body)) => match decode(header) {
            Some(decoded) if decoded == body => Ok(()),
            Some(decoded) => Err(mismatch(format!(
                "Header mismatch: Mcp-Name header value '{}' does not match body value '{}' (params.{member})",
                decoded.escape_default(),
                body.escape_default()
            ))),
            None => {
                Err(mismatch("Header mismatch: the Mcp-Name header's =?base64?…?= value does not decode".to_owned()))
            }
        },
        (None, Some(_)) => Err(mismatch(format!(
            "Header mismatch: the Mcp-Name header is missing; {method} sends params.{member} in it too"
        ))),
        (Some(_), None) => {
            Err(mismatch(format!("Header mismatch: Mcp-Name is sent but the body has no params.{member}")))
        }
        // Neither: the request is refused for its params where it is served.
        (None, None) => Ok(()),
    }
}

/// The params to relay to the server: the client's revision envelope taken
/// out of `_meta` (dropped when nothing else is left in it).
pub fn upstream_params(params: Option<Value>) -> Option<Value> {
    let mut params = params?;
    if let Some(object) = params.as_object_mut()
        && let Some(meta) = object.get_mut("_meta").and_then(Value::as_object_mut)
    {
        for key in ENVELOPE {
            meta.remove(*key);
        }
        if meta.is_empty() {
            object.remove("_meta");
        }
    }
    Some(params)
}

/// A server's (or steward's) result of `method` as this revision requires
/// it: `resultType`, and for a cacheable result `ttlMs` and `cacheScope`
/// (never cached: what steward lists changes with the policy and the pins).
pub fn complete(method: &str, result: &mut Value) {
    let Some(object) = result.as_object_mut() else { return };
    object.entry("resultType").or_insert_with(|| "complete".into());
    if CACHEABLE.contains(&method) {
        object.insert("ttlMs".to_owned(), 0.into());
        object.insert("cacheScope".to_owned(), "private".into());
    }
}

/// The answer to `server/discover`, from the server's `initialize` result:
/// the revisions steward speaks, the server's capabilities less what a
/// stateless client cannot use through steward (list-change and resource
/// subscriptions, which need `subscriptions/listen`; logging, which is
/// per request and not streamed), its instructions and identity.
pub fn discover(init: &Value) -> Value {
    let mut capabilities = init.get("capabilities").cloned().unwrap_or_else(|| json!({}));
    if let Some(object) = capabilities.as_object_mut() {
        object.remove("logging");
        for kind in ["tools", "prompts", "resources"] {
            if let Some(capability) = object.get_mut(kind).and_then(Value::as_object_mut) {
                capability.remove("listChanged");
                capability.remove("subscribe");
            }
        }
    }
    let mut result = json!({
        "supportedVersions": PROTOCOL_VERSIONS,
        "capabilities": capabilities,
    });
    if let Some(object) = result.as_object_mut() {
        if let Some(instructions) = init.get("instructions").filter(|i| i.is_string()) {
            object.insert("instructions".to_owned(), instructions.clone());
        }
        if let Some(info) = init.get("serverInfo") {
            object.insert("_meta".to_owned(), json!({ "io.modelcontextprotocol/serverInfo": info }));
        }
    }
    complete("server/discover", &mut result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn call(name: &str) -> Value {
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": name, "arguments": {}, "_meta": { META_VERSION: "2026-07-28", "io.modelcontextprotocol/clientInfo": {}, "progressToken": 7 },
        }})
    }

    fn code(rejection: Result<(), Rejection>) -> Option<i64> {
        rejection.err().and_then(|r| r.error.get("code").and_then(Value::as_i64))
    }

    const GOOD: &[(&str, &str)] =
        &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "create_post")];

    #[test]
    fn a_request_is_stateless_by_its_meta_or_a_revision_header_that_is_not_a_session_one() {
        assert!(applies(&HeaderMap::new(), &call("x")));
        let plain = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
        assert!(!applies(&headers(&[("mcp-protocol-version", "2025-11-25")]), &plain));
        assert!(!applies(&HeaderMap::new(), &plain));
        assert!(applies(&headers(&[("mcp-protocol-version", "2026-07-28")]), &plain));
        assert!(applies(&headers(&[("mcp-protocol-version", "2099-01-01")]), &plain));
    }

    #[test]
    fn matching_headers_pass_and_any_difference_is_a_header_mismatch() {
        assert_eq!(check(&headers(GOOD), &call("create_post")), Ok(()));
        // The tool name: the body decides, the header must repeat it.
        assert_eq!(code(check(&headers(GOOD), &call("delete_post"))), Some(HEADER_MISMATCH));
        let mut no_name = GOOD.to_vec();
        no_name.pop();
        assert_eq!(code(check(&headers(&no_name), &call("create_post"))), Some(HEADER_MISMATCH));
        let mut twice = GOOD.to_vec();
        twice.push(("mcp-name", "delete_post"));
        assert_eq!(code(check(&headers(&twice), &call("create_post"))), Some(HEADER_MISMATCH));
        let wrong_method = [GOOD[0], ("mcp-method", "tools/list"), GOOD[2]];
        assert_eq!(code(check(&headers(&wrong_method), &call("create_post"))), Some(HEADER_MISMATCH));
        let wrong_version = [("mcp-protocol-version", "2025-11-25"), GOOD[1], GOOD[2]];
        assert_eq!(code(check(&headers(&wrong_version), &call("create_post"))), Some(HEADER_MISMATCH));
        assert_eq!(code(check(&headers(&GOOD[1..]), &call("create_post"))), Some(HEADER_MISMATCH));
    }

    #[test]
    fn a_base64_name_is_decoded_before_it_is_compared() {
        // "créer" in UTF-8, Base64.
        let encoded = [GOOD[0], GOOD[1], ("mcp-name", "=?base64?Y3LDqWVy?=")];
        assert_eq!(check(&headers(&encoded), &call("créer")), Ok(()));
        assert_eq!(code(check(&headers(&encoded), &call("creer"))), Some(HEADER_MISMATCH));
        let broken = [GOOD[0], GOOD[1], ("mcp-name", "=?base64?***?=")];
        assert_eq!(code(check(&headers(&broken), &call("créer"))), Some(HEADER_MISMATCH));
    }

    #[test]
    fn the_headers_the_bridge_sends_pass_the_check() {
        for name in ["create_post", "créer", " padded ", "=?base64?literal?=", "a\nb"] {
            let message = call(name);
            let sent = request_headers(&message);
            let pairs: Vec<(&str, &str)> = sent.iter().map(|(n, v)| (*n, v.as_str())).collect();
            assert_eq!(check(&headers(&pairs), &message), Ok(()), "{name:?}: {sent:?}");
        }
        assert!(request_headers(&json!({ "method": "tools/list", "id": 1 })).is_empty());
    }

    #[test]
    fn an_unknown_revision_is_refused_with_every_revision_steward_speaks() {
        let mut message = call("create_post");
        message["params"]["_meta"][META_VERSION] = "2099-01-01".into();
        let rejection = check(&headers(&[("mcp-protocol-version", "2099-01-01"), GOOD[1], GOOD[2]]), &message);
        let rejection = rejection.err().unwrap();
        assert_eq!(rejection.status, StatusCode::BAD_REQUEST);
        assert_eq!(rejection.error["code"], UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(rejection.error["data"]["supported"][0], "2026-07-28");
        assert_eq!(rejection.error["data"]["requested"], "2099-01-01");
    }

    #[test]
    fn the_envelope_stays_on_the_clients_hop_and_results_are_completed() {
        let params = upstream_params(call("x").get("params").cloned()).unwrap_or_default();
        assert_eq!(params["_meta"], json!({ "progressToken": 7 }));
        let bare = upstream_params(Some(json!({ "_meta": { META_VERSION: "2026-07-28" } }))).unwrap_or_default();
        assert_eq!(bare, json!({}));
        let mut listed = json!({ "tools": [] });
        complete("tools/list", &mut listed);
        assert_eq!(listed, json!({ "tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private" }));
        let mut called = json!({ "content": [], "isError": true });
        complete("tools/call", &mut called);
        assert_eq!(called["resultType"], "complete");
        assert!(called.get("ttlMs").is_none());
        let found = discover(&json!({
            "protocolVersion": "2025-11-25",
            "capabilities": { "tools": { "listChanged": true }, "logging": {} },
            "serverInfo": { "name": "posts", "version": "1" },
        }));
        assert_eq!(found["supportedVersions"][0], "2026-07-28");
        assert_eq!(found["capabilities"], json!({ "tools": {} }));
        assert_eq!(found["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "posts");
        assert_eq!(found["resultType"], "complete");
    }
}
