//! The quickstart's example agent: a tiny "social media poster".
//!
//! It knows nothing about real credentials: it holds only the steward token
//! and talks plain HTTP to steward's `/api/social/...` front door, exactly as
//! an agent in any language would (`curl -H "Authorization: Bearer $STEWARD_TOKEN" ...`).
//! `steward demo` compiles this file in and drives it against a mock upstream.

/// What one call of the agent got back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the agent tried.
    pub action: String,
    /// HTTP status steward answered with.
    pub status: u16,
    /// steward's `reason` for a refusal, or the created/read status id.
    pub detail: String,
}

/// The agent: a base URL (steward) and its steward token.
pub struct Agent {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Agent {
    /// An agent that reaches the outside world only through steward at `base`.
    pub fn new(base: &str, token: &str) -> Self {
        Self { client: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    /// `POST /api/social/api/v1/statuses {"status": text}`
    pub async fn post(&self, text: &str) -> Outcome {
        let request = self
            .client
            .post(format!("{}/api/social/api/v1/statuses", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "status": text }));
        self.call(format!("post {text:?}"), request).await
    }

    /// `GET /api/social/api/v1/statuses/{id}`
    pub async fn read(&self, id: &str) -> Outcome {
        let request =
            self.client.get(format!("{}/api/social/api/v1/statuses/{id}", self.base)).bearer_auth(&self.token);
        self.call(format!("read status {id}"), request).await
    }

    async fn call(&self, action: String, request: reqwest::RequestBuilder) -> Outcome {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let detail = body
                    .pointer("/error/reason")
                    .or_else(|| body.get("id"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                Outcome { action, status, detail }
            }
            Err(err) => Outcome { action, status: 0, detail: format!("no answer: {err}") },
        }
    }
}
