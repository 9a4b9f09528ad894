//! HTML made on the server: every string put into a page goes through [`esc`], and every
//! page shares [`layout`] (navigation, the CSRF token for the script, the sign-out form).
//! No inline script or style: the Content-Security-Policy forbids both.

use std::fmt::Write;

/// `text` safe inside an element or a quoted attribute value: `& < > " '` as references.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The console's pages, in navigation order: path under `/console/`, and title.
pub const PAGES: [(&str, &str); 6] = [
    ("status", "Status"),
    ("tenants", "Tenants"),
    ("connections", "Federated connections"),
    ("events", "Events"),
    ("changes", "Changes and restarts"),
    ("log-level", "Log level"),
];

/// A signed-in page: `body` (already escaped HTML) under the navigation, with `page` marked
/// current; the script finds what to do by `data-page` and the session's CSRF token in a
/// `meta` element.
pub fn layout(page: &str, node: &str, csrf: &str, body: &str) -> String {
    let title = PAGES
        .iter()
        .find(|(p, _)| *p == page)
        .map_or(page, |(_, t)| t);
    let mut nav = String::new();
    for (p, t) in PAGES {
        let current = if p == page {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"/console/{p}\"{current}>{}</a>", esc(t));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"csrf\" content=\"{csrf}\">\
         <title>{title} — xfed {node}</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/common.js\" defer></script>\
         <script src=\"/console/assets/cluster.js\" defer></script>\
         <script src=\"/console/assets/console.js\" defer></script></head>\
         <body data-page=\"{page}\"><header><strong>xfed</strong> <span>{node}</span>\
         <nav>{nav}</nav>\
         <form method=\"post\" action=\"/console/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"sign-out\">Sign out</button></form></header>\
         <main><h1>{title}</h1>{body}</main></body></html>\n",
        csrf = esc(csrf),
        title = esc(title),
        node = esc(node),
        page = esc(page),
    )
}

/// The sign-in page, with `problem` (escaped here) when the last try failed.
pub fn login(problem: Option<&str>) -> String {
    let problem = problem.map_or(String::new(), |p| {
        format!("<p class=\"problem\" id=\"problem\">{}</p>", esc(p))
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sign in — xfed</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
         <body data-page=\"login\"><main class=\"login\"><h1>xfed console</h1>{problem}\
         <form method=\"post\" action=\"/console/login\">\
         <label for=\"token\">Admin token (<code>[admin] token_file</code>)</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" autofocus>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form></main></body></html>\n"
    )
}

/// A table: `head` cells and `rows` of cells, each cell text escaped here; `empty` when
/// there are no rows.
pub fn table(id: &str, head: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\" id=\"{}\">{}</p>", esc(id), esc(empty));
    }
    let mut t = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for h in head {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let _ = write!(t, "<td>{}</td>", esc(cell));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_from_the_network_is_text() {
        assert_eq!(
            esc("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("\" onmouseover=\"x"), "&quot; onmouseover=&quot;x");
        assert_eq!(esc("a&amp;b"), "a&amp;amp;b");
        assert_eq!(esc("acme.example ünï"), "acme.example ünï");
    }

    #[test]
    fn pages_escape_every_interpolated_string() {
        let page = layout("status", "<b>node</b>", "tok\"en", "<p>ok</p>");
        assert!(page.contains("&lt;b&gt;node&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>node"), "{page}");
        assert!(page.contains("content=\"tok&quot;en\""), "{page}");
        assert!(page.contains("<p>ok</p>"));
        assert!(!page.contains("<script>"), "no inline script: {page}");
        let t = table("t", &["A"], &[vec!["<img src=x onerror=y>".into()]], "none");
        assert!(t.contains("<td>&lt;img src=x onerror=y&gt;</td>"), "{t}");
        assert!(login(Some("<i>wrong</i>")).contains("&lt;i&gt;wrong&lt;/i&gt;"));
    }
}
