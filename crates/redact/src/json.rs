//! JSON redaction: values under sensitive keys are replaced whole, every
//! other string (and every object key) goes through the text redactor.

use std::borrow::Cow;

use serde_json::Value;

use crate::Redactor;

/// Replacement for the value of a sensitive key.
pub(crate) const JSON_KEY_KIND: &str = "json-key";

/// Sensitive key names, lower-cased with `-` and `_` removed.
const SENSITIVE_KEYS: &[&str] = &[
    "authorization",
    "proxyauthorization",
    "apikey",
    "xapikey",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "apitoken",
    "bearertoken",
    "sessiontoken",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "clientsecret",
    "secretkey",
    "secretaccesskey",
    "accesskey",
    "cookie",
    "setcookie",
    "privatekey",
    "session",
    "sessionid",
    "credentials",
    "credential",
    "xauthtoken",
    "xaccesstoken",
];

/// Keys ending in `_key`, `-key` or `Key` that name identifiers, not keys.
const NON_SECRET_KEY_SUFFIXES: &[&str] = &[
    "publickey",
    "primarykey",
    "foreignkey",
    "sortkey",
    "partitionkey",
    "cachekey",
    "idempotencykey",
    "routingkey",
    "objectkey",
    "s3key",
    "hashkey",
    "rangekey",
    "keykey",
    "groupkey",
    "dedupekey",
    "dedupkey",
    "ratelimitkey",
    "lookupkey",
    "mapkey",
    "sshpublickey",
];

/// Whether a JSON object key names a secret (case-, `-`- and
/// `_`-insensitive), including keys ending in `token`, `secret`,
/// `password` and, with a separator or camel-case hump, `key`.
pub(crate) fn is_sensitive_key(key: &str) -> bool {
    let norm: String = key.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect();
    if SENSITIVE_KEYS.contains(&norm.as_str()) {
        return true;
    }
    if norm.ends_with("token") || norm.ends_with("secret") || norm.ends_with("password") || norm.ends_with("passwd") {
        return true;
    }
    let key_suffix = key.ends_with("_key")
        || key.ends_with("-key")
        || key.ends_with("Key")
        || key.ends_with("_KEY")
        || key.ends_with("-KEY");
    key_suffix && !NON_SECRET_KEY_SUFFIXES.iter().any(|s| norm.ends_with(s))
}

impl Redactor {
    /// Redacts a JSON document in place: values under sensitive keys
    /// (authorization, api_key, token, password, secret, cookie, ...) are
    /// replaced whole with `"[REDACTED:json-key]"` (a `null` stays `null`:
    /// it reveals nothing), every other string goes through
    /// [`Redactor::redact`], and so does every object key.
    pub fn redact_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let renamed: Vec<(String, String)> = map
                    .keys()
                    .filter_map(|k| match self.redact(k) {
                        Cow::Owned(r) => Some((k.clone(), r)),
                        Cow::Borrowed(_) => None,
                    })
                    .collect();
                for (old, new) in renamed {
                    if let Some(v) = map.remove(&old) {
                        map.insert(new, v);
                    }
                }
                for (k, v) in map.iter_mut() {
                    if is_sensitive_key(k) {
                        if !v.is_null() {
                            *v = Value::String(format!("[REDACTED:{JSON_KEY_KIND}]"));
                        }
                    } else {
                        self.redact_json(v);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedactorBuilder;
    use serde_json::json;

    #[test]
    fn sensitive_key_names() {
        for k in [
            "authorization",
            "Authorization",
            "Proxy-Authorization",
            "api_key",
            "api-key",
            "apiKey",
            "APIKEY",
            "x-api-key",
            "token",
            "access_token",
            "refreshToken",
            "id_token",
            "password",
            "PASSWD",
            "secret",
            "client_secret",
            "cookie",
            "Set-Cookie",
            "private_key",
            "session",
            "github_token",
            "webhook_secret",
            "db_password",
            "signing_key",
            "stripeKey",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in [
            "input_tokens",
            "max_tokens",
            "token_count",
            "tokenizer",
            "public_key",
            "primary_key",
            "idempotency_key",
            "monkey",
            "keyboard",
            "name",
            "session_count",
            "secretary",
            "passwordless",
            "input_sha256",
            "tool",
        ] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }

    #[test]
    fn replaces_sensitive_values_whole_and_redacts_other_strings() {
        let r = RedactorBuilder::new().secret("social", "hunter2-very-secret").build();
        let mut v = json!({
            "Authorization": "Bearer abc",
            "headers": {"X-Api-Key": 12345, "accept": "json"},
            "password": {"nested": true},
            "refresh_token": null,
            "note": "sent with hunter2-very-secret to bob@example.com",
            "list": ["hunter2-very-secret", 3],
            "usage": {"input_tokens": 120, "output_tokens": 4},
        });
        r.redact_json(&mut v);
        assert_eq!(
            v,
            json!({
                "Authorization": "[REDACTED:json-key]",
                "headers": {"X-Api-Key": "[REDACTED:json-key]", "accept": "json"},
                "password": "[REDACTED:json-key]",
                "refresh_token": null,
                "note": "sent with [REDACTED:credential] to [REDACTED:email]",
                "list": ["[REDACTED:credential]", 3],
                "usage": {"input_tokens": 120, "output_tokens": 4},
            })
        );
    }

    #[test]
    fn object_keys_are_redacted_too() {
        let r = RedactorBuilder::new().secret("k", "zz-secret-key-zz").build();
        let mut v = json!({"zz-secret-key-zz": 1});
        r.redact_json(&mut v);
        assert_eq!(v, json!({"[REDACTED:credential]": 1}));
    }
}
