//! Reading one credential value from its source: `env:`, `file:`,
//! `systemd:`, `command:` and `vault:`.
//!
//! Raw buffers (file contents, command output, Vault's response body) are
//! held in [`Zeroizing`] so they are wiped when dropped, and the value
//! leaves as a [`SecretString`]. No error carries the value: a command's
//! stderr and Vault's error bodies are described (status, size), never
//! quoted, because they may echo it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::SecretsError;
use crate::config::CredentialSource;

/// How long a `command:` source may run. Password managers answer in well
/// under a second; ten covers a hardware-key touch or a slow agent socket,
/// and a hung command must not hang startup or a reload forever.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a Vault request may take, connect included: a reload waits for it.
pub const VAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response read from a credential command or from Vault (1 MiB):
/// a token is a few hundred bytes; anything larger is a mistake.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// The environment variable systemd points at the unit's credentials with.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A resolved value and a few facts about where it came from.
pub(super) struct SourceValue {
    /// The credential value, trimmed.
    pub value: SecretString,
    /// The Vault token used to read it, if any: steward held it, so the
    /// redactor learns it too.
    pub vault_token: Option<SecretString>,
}

/// Looks up an environment variable: the process environment in production,
/// a map in tests (the process environment cannot be changed safely there).
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// The process environment, as an [`EnvLookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads the value of credential `name` from `source`.
pub(super) async fn read(
    name: &str,
    source: &CredentialSource,
    env: EnvLookup<'_>,
) -> Result<SourceValue, SecretsError> {
    let mut vault_token = None;
    let raw: Zeroizing<String> = match source {
        CredentialSource::Env(var) => {
            let value = Zeroizing::new(env(var).unwrap_or_default());
            if value.is_empty() {
                return Err(SecretsError::EnvMissing { credential: name.into(), var: var.clone() });
            }
            value
        }
        CredentialSource::File(path) => read_secret_file(name, path, true)?,
        CredentialSource::Systemd(credential) => {
            let Some(dir) = env(CREDENTIALS_DIRECTORY).filter(|d| !d.is_empty()) else {
                return Err(SecretsError::SystemdUnavailable { credential: name.into(), name: credential.clone() });
            };
            // systemd makes the directory private to the unit (and may grant
            // access through an ACL, which shows in the group bits), so the
            // mode and owner checks of `file:` would refuse valid setups.
            read_secret_file(name, &PathBuf::from(dir).join(credential), false)?
        }
        CredentialSource::Command(argv) => run_command(name, argv).await?,
        CredentialSource::Vault { path, field } => {
            let (value, token) = read_vault(name, path, field, env).await?;
            vault_token = Some(token);
            value
        }
    };
    // Files and command output usually end with a newline that is not part
    // of the token; a command's output is trimmed at both ends.
    let trimmed = match source {
        CredentialSource::Command(_) => raw.trim(),
        _ => raw.trim_end_matches(['\n', '\r']),
    };
    if trimmed.is_empty() {
        return Err(SecretsError::Empty { credential: name.into(), source_desc: source.describe() });
    }
    Ok(SourceValue { value: SecretString::from(trimmed), vault_token })
}

/// Reads a secret file; with `check_mode`, refuses one that other users can
/// read or that another user owns.
pub(super) fn read_secret_file(name: &str, path: &Path, check_mode: bool) -> Result<Zeroizing<String>, SecretsError> {
    let read_err = |source| SecretsError::FileRead { credential: name.into(), path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if check_mode {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::FileUnsafeMode { credential: name.into(), path: path.to_owned(), mode });
        }
        if let Some(me) = current_uid()
            && meta.uid() != me
        {
            return Err(SecretsError::FileWrongOwner {
                credential: name.into(),
                path: path.to_owned(),
                owner: meta.uid(),
            });
        }
    }
    std::fs::read_to_string(path).map(Zeroizing::new).map_err(read_err)
}

/// The effective uid of this process, read as the owner of `/proc/self`
/// (Linux creates it owned by the process's euid), which avoids an FFI call.
fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Runs `argv` (no shell), waits at most [`COMMAND_TIMEOUT`], returns stdout.
async fn run_command(name: &str, argv: &[String]) -> Result<Zeroizing<String>, SecretsError> {
    let program = argv.first().cloned().unwrap_or_default();
    let failed =
        |detail: String| SecretsError::CommandFailed { credential: name.into(), program: program.clone(), detail };
    let child = tokio::process::Command::new(&program)
        .args(argv.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => failed("the program was not found; give its full path or fix PATH".into()),
            _ => failed(format!("cannot start it: {e}")),
        })?;
    // Dropping the future on timeout drops the child, which kills it.
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(failed(format!("waiting for it failed: {e}"))),
        Err(_) => {
            return Err(SecretsError::CommandTimeout {
                credential: name.into(),
                program,
                secs: COMMAND_TIMEOUT.as_secs(),
            });
        }
    };
    let stdout = Zeroizing::new(output.stdout);
    // stderr may echo the secret or a passphrase prompt: described, never quoted.
    let stderr_len = Zeroizing::new(output.stderr).len();
    if !output.status.success() {
        return Err(failed(format!(
            "it exited with {} (stderr: {stderr_len} bytes, not shown because it may hold secret material)",
            output.status
        )));
    }
    if stdout.len() > MAX_SOURCE_BYTES {
        return Err(failed(format!("it printed {} bytes, more than a credential can be", stdout.len())));
    }
    match std::str::from_utf8(&stdout) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(failed("its output is not UTF-8 text".into())),
    }
}

/// `GET $VAULT_ADDR/v1/{path}` with `X-Vault-Token`, then `data.data.{field}`.
async fn read_vault(
    name: &str,
    path: &str,
    field: &str,
    env: EnvLookup<'_>,
) -> Result<(Zeroizing<String>, SecretString), SecretsError> {
    let reference = format!("{path}#{field}");
    let missing = |var: &str| SecretsError::VaultNotConfigured { credential: name.into(), var: var.into() };
    let addr = env("VAULT_ADDR").filter(|v| !v.is_empty()).ok_or_else(|| missing("VAULT_ADDR"))?;
    let token = Zeroizing::new(env("VAULT_TOKEN").unwrap_or_default());
    if token.is_empty() {
        return Err(missing("VAULT_TOKEN"));
    }
    let failed = |detail: String| SecretsError::Vault { credential: name.into(), reference: reference.clone(), detail };
    let client = crate::outbound::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(VAULT_TIMEOUT)
        .build()
        .map_err(|e| failed(format!("cannot build an HTTP client: {e}")))?;
    let url = format!("{}/v1/{path}", addr.trim_end_matches('/'));
    let mut token_header = http::HeaderValue::from_str(&token)
        .map_err(|_| failed("VAULT_TOKEN contains bytes not allowed in a header".into()))?;
    token_header.set_sensitive(true);
    let mut request = client.get(&url).header("X-Vault-Token", token_header);
    if let Some(namespace) = env("VAULT_NAMESPACE")
        && !namespace.is_empty()
    {
        request = request.header("X-Vault-Namespace", namespace);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            failed(format!("{addr} did not answer within {}s", VAULT_TIMEOUT.as_secs()))
        } else {
            failed(format!("cannot reach {addr}; check VAULT_ADDR"))
        }
    })?;
    let status = response.status();
    match status.as_u16() {
        200 => {}
        403 => return Err(failed("permission denied: VAULT_TOKEN may not read this path (or has expired)".into())),
        404 => return Err(failed("no secret at this path; KV v2 paths look like MOUNT/data/NAME".into())),
        _ => return Err(failed(format!("Vault answered HTTP {status}"))),
    }
    let body = Zeroizing::new(response.bytes().await.map_err(|_| failed("the response broke off".into()))?.to_vec());
    if body.len() > MAX_SOURCE_BYTES {
        return Err(failed("the response is larger than a secret can be".into()));
    }
    let parsed: KvResponse =
        serde_json::from_slice(&body).map_err(|_| failed("the response is not a KV v2 secret (data.data)".into()))?;
    let mut data = parsed.data.data;
    let value = match data.remove(field) {
        Some(serde_json::Value::String(value)) => Zeroizing::new(value),
        Some(_) => return Err(failed(format!("field `{field}` is not a string"))),
        None => {
            let fields: Vec<&str> = data.keys().map(String::as_str).collect();
            return Err(failed(format!("the secret has no field `{field}` (it has: {})", fields.join(", "))));
        }
    };
    // Other fields of the secret are wiped too before they are dropped.
    for (_, other) in data.iter_mut() {
        if let serde_json::Value::String(text) = other {
            zeroize::Zeroize::zeroize(text);
        }
    }
    Ok((value, SecretString::from(token.as_str())))
}

/// The parts of a KV v2 read response steward needs.
#[derive(serde::Deserialize)]
struct KvResponse {
    /// The envelope.
    data: KvData,
}

/// `data` of a KV v2 response: the secret's own `data` (and metadata, ignored).
#[derive(serde::Deserialize)]
struct KvData {
    /// The key/value pairs of the secret.
    data: serde_json::Map<String, serde_json::Value>,
}
