//! HTML by hand: [`esc`], the one escaping function every value from the
//! store, the config or a request passes through (see the module docs of
//! [`super`] for the rule), and [`page`], the layout every page shares.

use std::fmt::Write as _;

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;

/// Escapes text for an HTML element body or a double-quoted attribute.
/// Newlines become `&#10;` so a fragment stays on one SSE `data:` line.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// The navigation: (path, label).
const NAV: &[(&str, &str)] =
    &[("/", "Overview"), ("/feed", "Live feed"), ("/approvals", "Approvals"), ("/report", "Report")];

/// What the layout needs besides the body: the active nav path (`None` on
/// the login and error pages: no nav), the session's CSRF token (for the
/// logout form) and the number of pending approvals (the nav badge; the
/// live script keeps it and the title current).
#[derive(Debug, Default, Clone, Copy)]
pub struct Chrome<'a> {
    /// The current page's path.
    pub active: Option<&'a str>,
    /// The session's CSRF token.
    pub csrf: Option<&'a str>,
    /// Pending approvals.
    pub pending: usize,
}

/// A whole page: `title`, its [`Chrome`], and `body` (already escaped).
pub fn page(title: &str, chrome: Chrome<'_>, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · steward</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/live.js\" defer></script></head><body>",
        esc(title)
    );
    if let Some(active) = chrome.active {
        out.push_str("<header><nav><strong>steward</strong>");
        for (path, label) in NAV {
            let current = if *path == active { " aria-current=\"page\"" } else { "" };
            let _ = write!(out, "<a href=\"{path}\"{current}>{label}");
            if *path == "/approvals" {
                let n = if chrome.pending > 0 { chrome.pending.to_string() } else { String::new() };
                let _ = write!(out, " <span id=\"badge\" class=\"badge\">{n}</span>");
            }
            out.push_str("</a>");
        }
        if let Some(csrf) = chrome.csrf {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/logout\" class=\"logout\">{}<button id=\"logout\">Log out</button></form>",
                csrf_field(csrf)
            );
        }
        out.push_str("</nav></header>");
    }
    let _ = write!(out, "<main><h1>{}</h1>{body}</main></body></html>", esc(title));
    out
}

/// An error page: what happened and the fix (both escaped here).
pub fn error_page(status: StatusCode, message: &str, help: &str) -> Response {
    let body = format!(
        "<p class=\"flash bad\" id=\"error\">{}</p><p>{}</p><p><a href=\"/\">Back to the overview</a></p>",
        esc(message),
        esc(help)
    );
    (status, Html(page("Error", Chrome::default(), &body))).into_response()
}

/// An admin API error as a page.
pub fn api_error_page(err: &crate::admin::ApiError) -> Response {
    error_page(err.status, &err.message, &err.help)
}

/// Every path no route matches.
pub async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "no such page", "the dashboard has /, /feed, /approvals and /report")
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// `2026-12-03 11:04:05` UTC from epoch ms.
pub fn when(ms: i64) -> String {
    let ts = crate::clock::format_ts(crate::clock::from_unix_ms(ms));
    ts.get(..19).map_or(ts.clone(), |s| s.replace('T', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_newlines() {
        assert_eq!(esc("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(esc("a\"b&c\nd"), "a&quot;b&amp;c&#10;d");
        assert_eq!(esc("plain"), "plain");
    }

    #[test]
    fn a_page_escapes_its_title() {
        let html = page("<b>", Chrome { active: Some("/"), csrf: Some("t\"k"), pending: 2 }, "");
        assert!(html.contains("<title>&lt;b&gt; · steward</title>"), "{html}");
        assert!(html.contains("value=\"t&quot;k\""), "{html}");
        assert!(html.contains("class=\"badge\">2</span>"), "{html}");
    }
}
