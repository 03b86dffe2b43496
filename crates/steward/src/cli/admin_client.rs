//! The CLI's side of the admin API (`steward_core::admin`): commands that
//! ask the running daemon (approvals, undo) connect with [`AdminClient`],
//! and a refusal comes back as a [`CliError::Api`] carrying the daemon's
//! message and fix.

use http::Method;
use steward_core::config::Config;

use super::CliError;

/// A connection to the running daemon's admin API.
pub struct AdminClient(steward_core::admin::AdminClient);

impl AdminClient {
    /// The client of the daemon of `config`'s state directory. Fails with the
    /// fix when its admin token cannot be read (another user's daemon).
    pub fn connect(config: &Config) -> Result<Self, CliError> {
        let client =
            steward_core::admin::AdminClient::new(&config.state.admin_socket_path(), &config.state.admin_token_path())
                .map_err(|e| CliError::Other(e.into()))?;
        Ok(Self(client))
    }

    /// `GET path`: the JSON answer, or the API's error.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, CliError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with `body`: the JSON answer, or the API's error.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, CliError> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CliError> {
        let (status, answer) = self.0.request(method, path, body).await.map_err(|e| CliError::Other(e.into()))?;
        if status.is_success() {
            return Ok(answer);
        }
        let error = &answer["error"];
        let text = |key: &str| error[key].as_str().map(str::to_owned);
        Err(CliError::Api {
            status: status.as_u16(),
            kind: text("kind").unwrap_or_else(|| "failure".to_owned()),
            message: text("message").unwrap_or_else(|| format!("the admin API answered {status}")),
            help: text("help"),
        })
    }
}

/// Who is acting, for the `by` of admin requests and their audit lines:
/// the user behind `sudo` when there is one, else the login name, else the uid.
pub fn operator() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()))
}
