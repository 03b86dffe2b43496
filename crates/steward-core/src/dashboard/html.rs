//! HTML by hand: [`esc`], the one escaping function every value passes
//! through, and [`page`], the layout every page shares.

use std::fmt::Write as _;

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
const NAV: &[(&str, &str)] = &[("/", "Overview"), ("/feed", "Live feed")];

/// A whole page: `title`, the active nav path (`None` on the login page:
/// no nav), the session's CSRF token for the logout form, and `body`
/// (already escaped).
pub fn page(title: &str, active: Option<&str>, csrf: Option<&str>, body: &str) -> String {
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
    if let Some(active) = active {
        out.push_str("<header><nav><strong>steward</strong>");
        for (path, label) in NAV {
            let current = if *path == active { " aria-current=\"page\"" } else { "" };
            let _ = write!(out, "<a href=\"{path}\"{current}>{label}</a>");
        }
        out.push_str("<a href=\"/approvals\" id=\"approvals-link\">Approvals <span id=\"badge\" class=\"badge\"></span></a>");
        if let Some(csrf) = csrf {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/logout\" class=\"logout\"><input type=\"hidden\" name=\"csrf\" \
                 value=\"{}\"><button>Log out</button></form>",
                esc(csrf)
            );
        }
        out.push_str("</nav></header>");
    }
    let _ = write!(out, "<main><h1>{}</h1>{body}</main></body></html>", esc(title));
    out
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
        let html = page("<b>", Some("/"), Some("t\"k"), "");
        assert!(html.contains("<title>&lt;b&gt; · steward</title>"), "{html}");
        assert!(html.contains("value=\"t&quot;k\""), "{html}");
    }
}
