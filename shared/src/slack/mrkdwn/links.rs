//! Which link targets become live Slack links, and how a URL is made safe inside `<...>`.

pub(super) fn is_web_url(text: &str) -> bool {
    (has_scheme(text, "https://") || has_scheme(text, "http://")) && !text.chars().any(char::is_whitespace)
}

/// Whether a link's target may become a live Slack link: http, https and mailto only.
pub(super) fn is_link_target(url: &str) -> bool {
    ["https://", "http://", "mailto:"].iter().any(|scheme| has_scheme(url, scheme))
}

/// Whether `url` starts with `scheme`, in any case.
fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// A URL made safe inside `<...>`: characters that would end or split the link (`<`, `>`, `|`,
/// any space or control character) are percent-encoded; tabs and newlines are dropped, as
/// browsers do. `&` stays as is (Slack accepts it inside the angle brackets).
pub(super) fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.trim().chars() {
        match c {
            '\n' | '\r' | '\t' => {}
            '<' | '>' | '|' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_whitespace() || c.is_control() => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}
