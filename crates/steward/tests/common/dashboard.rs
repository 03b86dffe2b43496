//! Helpers of the dashboard tests (plain HTTP and the real browser): a
//! config with `[dashboard]`, the one-time login URL `steward dashboard`
//! prints, and a logged-in HTTP session.

use super::Env;

/// Tools whose `post` has an undo (`delete_status`), plus `list`.
pub const TOOLS: &str = r#"
[[tools]]
name = "post"
upstream = "social"
match = "POST /api/v1/statuses"
side_effect = true
limit = "50/hour"
retry = "never"
undo = { tool = "delete_status", path = "/api/v1/statuses/{response.id}" }

[[tools]]
name = "delete_status"
upstream = "social"
match = "DELETE /api/v1/statuses/{id}"
limit = "100/hour"
retry = "never"

[[tools]]
name = "list"
upstream = "social"
match = "GET /api/v1/statuses"
"#;

/// An environment with [`TOOLS`], `[dashboard]` on a free loopback port
/// plus `dashboard` (more `[dashboard]` lines), then `extra` sections.
pub async fn env(dashboard: &str, extra: &str) -> Env {
    Env::with_tools("", &format!("{TOOLS}\n[dashboard]\nlisten = \"127.0.0.1:0\"\n{dashboard}\n{extra}")).await
}

/// A fresh one-time login URL, from `steward dashboard --json`.
pub fn login_url(env: &Env) -> String {
    let out = env.steward(&["dashboard", "--json"]);
    assert!(out.status.success(), "steward dashboard: {}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["url"].as_str().unwrap().to_owned()
}

/// `http://127.0.0.1:PORT` of a login URL.
pub fn base_of(url: &str) -> String {
    url.split("/login").next().unwrap().to_owned()
}

/// The code of a login URL.
pub fn code_of(url: &str) -> String {
    url.split("code=").nth(1).unwrap().to_owned()
}

/// The `value` of the first `<input name="NAME" value="...">` in `html`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The value a response sets for cookie `name`.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
}

/// A logged-in HTTP client of the dashboard.
pub struct Dash {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The session cookie's value.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The `Set-Cookie` header of the login, as sent.
    pub set_cookie_header: String,
    client: reqwest::Client,
}

/// A client that follows no redirect.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Opens the login page of `url`: the double-submit token (cookie = field).
pub async fn login_form(url: &str) -> String {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = set_cookie(&response, "steward_login").unwrap();
    let html = response.text().await.unwrap();
    assert_eq!(hidden(&html, "csrf").unwrap(), cookie);
    cookie
}

/// Posts the login form of `url`; the raw response.
pub async fn post_login(url: &str) -> reqwest::Response {
    let base = base_of(url);
    let token = login_form(url).await;
    client()
        .post(format!("{base}/login"))
        .header("origin", &base)
        .header("cookie", format!("steward_login={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&code={}", code_of(url)))
        .send()
        .await
        .unwrap()
}

/// Logs in with a fresh URL.
pub async fn login(env: &Env) -> Dash {
    let url = login_url(env);
    let response = post_login(&url).await;
    assert_eq!(response.status(), 303, "login refused");
    let set_cookie_header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("steward_session="))
        .unwrap()
        .to_owned();
    let cookie = set_cookie(&response, "steward_session").unwrap();
    let base = base_of(&url);
    let client = client();
    let page =
        client.get(format!("{base}/")).header("cookie", format!("steward_session={cookie}")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap();
    Dash { base, cookie, csrf, set_cookie_header, client }
}

impl Dash {
    /// `GET path` with the session cookie.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("steward_session={}", self.cookie))
            .send()
            .await
            .unwrap()
    }

    /// A form POST as the dashboard's own page sends it (Origin, cookie,
    /// CSRF field), with `fields` after the token.
    pub async fn post(&self, path: &str, fields: &str) -> reqwest::Response {
        self.post_raw(
            path,
            Some(&self.base),
            "application/x-www-form-urlencoded",
            &format!("csrf={}&{fields}", self.csrf),
        )
        .await
    }

    /// A POST with every part chosen.
    pub async fn post_raw(
        &self,
        path: &str,
        origin: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("steward_session={}", self.cookie))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}
