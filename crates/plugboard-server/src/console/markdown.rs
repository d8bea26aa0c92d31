//! Markdown from manifests (`docs.setup_md`, a field's `help`) made safe to put in a page: CommonMark through
//! `pulldown-cmark`, with every piece of raw HTML dropped (shown as nothing), links kept only when they are `http`
//! or `https` (others keep their text, without the link) and opened with `rel="noopener noreferrer"`, images shown
//! as their text (a page loads nothing from a third party), and headings moved down to fit under the page's own.

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// An http(s) URL with a host, or nothing.
fn safe_href(dest: &str) -> Option<String> {
    let url = url::Url::parse(dest.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.has_host()).then(|| url.to_string())
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

fn lower(level: HeadingLevel, by: usize) -> HeadingLevel {
    let n = (level as usize + by).min(6);
    match n {
        1 => HeadingLevel::H1,
        2 => HeadingLevel::H2,
        3 => HeadingLevel::H3,
        4 => HeadingLevel::H4,
        5 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// Renders untrusted Markdown to HTML that carries no markup of its author's: only what CommonMark produces, links
/// to http(s) only. `heading_shift` moves headings down (`# Setup` becomes `<h3>` with a shift of 2).
pub fn render(markdown: &str, heading_shift: usize) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut open_links: Vec<bool> = Vec::new();
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        // The author's HTML, block or inline, never reaches the page.
        Event::Html(_) | Event::InlineHtml(_) => None,
        Event::Start(Tag::Link { dest_url, .. }) => match safe_href(&dest_url) {
            Some(href) => {
                open_links.push(true);
                Some(Event::Html(CowStr::from(format!(
                    "<a href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">",
                    escape_attr(&href)
                ))))
            }
            None => {
                open_links.push(false);
                None
            }
        },
        Event::End(TagEnd::Link) => match open_links.pop() {
            Some(true) => Some(Event::Html(CowStr::from(
                "<span class=\"visually-hidden\"> (opens in a new tab)</span></a>",
            ))),
            _ => None,
        },
        // An image is its text: nothing is loaded.
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Some(Event::Start(Tag::Heading {
            level: lower(level, heading_shift),
            id,
            classes,
            attrs,
        })),
        Event::End(TagEnd::Heading(level)) => {
            Some(Event::End(TagEnd::Heading(lower(level, heading_shift))))
        }
        other => Some(other),
    });
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn raw_html_and_script_never_reach_the_page() {
        let out = render(
            "Hi <script>alert(1)</script> <img src=x onerror=alert(2)>\n\n<div onclick=\"x()\">block</div>\n\n<b>bold</b>",
            0,
        );
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(!out.contains("onerror"), "{out}");
        assert!(!out.contains("<div"), "{out}");
        assert!(!out.contains("<b>"), "{out}");
        assert!(out.contains("Hi"), "{out}");
    }

    #[test]
    fn only_http_links_are_links_and_they_carry_noopener() {
        let out = render(
            "[ok](https://example.com/a?b=1&c=\"2\") [bad](javascript:alert(1)) [data](data:text/html,x) \
             [rel](/relative) <javascript:alert(3)> ![pic](https://tracker.example/p.png)",
            0,
        );
        assert!(
            out.contains(
                "<a href=\"https://example.com/a?b=1&amp;c=%222%22\" rel=\"noopener noreferrer\""
            ),
            "{out}"
        );
        assert_eq!(out.matches("<a ").count(), 1, "{out}");
        assert!(!out.contains("javascript:alert(1)\""), "{out}");
        assert!(!out.to_lowercase().contains("href=\"javascript"), "{out}");
        assert!(
            out.contains("bad") && out.contains("pic"),
            "the text stays: {out}"
        );
        assert!(
            !out.contains("tracker.example"),
            "no image is loaded: {out}"
        );
    }

    #[test]
    fn headings_move_under_the_page_heading() {
        assert!(render("# Setup", 2).contains("<h3>Setup</h3>"));
        assert!(render("###### Deep", 2).contains("<h6>Deep</h6>"));
    }
}
