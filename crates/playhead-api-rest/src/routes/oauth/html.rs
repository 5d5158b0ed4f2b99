//! The hosted pages' one layout: a mobile-first card, one inline style sheet and a strict
//! content security policy that admits exactly that style sheet (by its SHA-256), nothing else.
//!
//! The rules a contributor must keep here:
//! - No JavaScript, no external assets (fonts, images, CSS): the pages work offline, on an old
//!   phone and with a screen reader. The browser test (tests/browser) checks each page with
//!   axe-core at phone and desktop widths.
//! - Every text that came from outside (names, codes, descriptions) goes through [`esc`].
//! - Every input has a visible `<label>`; an error is announced (`role="alert"`) and tied to its
//!   input (`aria-describedby`, `aria-invalid`).

use std::collections::HashSet;
use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use playhead_core::auth::Scope;
use playhead_core::ids::ProfileId;
use playhead_core::profile::Profile;
use sha2::{Digest, Sha256};

/// The style sheet. Colours meet WCAG AA (4.5:1 for text, 3:1 for controls) in both schemes;
/// sizes are in rem so the person's font size wins; targets are at least 48 px tall.
const CSS: &str = r#"
:root{color-scheme:light dark;--bg:#f4f4f7;--card:#fff;--fg:#1c1c22;--muted:#50505c;--line:#8a8a96;--accent:#2449d8;--accent-fg:#fff;--err:#b3261e;--err-bg:#fdecea;--ok:#1e6b34;--badge:#5b2b8a;--badge-fg:#fff;--focus:#b36b00}
@media (prefers-color-scheme:dark){:root{--bg:#111116;--card:#1d1d24;--fg:#ececf1;--muted:#b4b4c0;--line:#8a8a96;--accent:#8fa6ff;--accent-fg:#0b0b10;--err:#ffb4ab;--err-bg:#3b1412;--ok:#8fd7a5;--badge:#d7b8ff;--badge-fg:#1c0b2e;--focus:#ffb95c}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:1.0625rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
header{max-width:30rem;margin:0 auto;padding:1rem 1rem 0;font-weight:700;font-size:1.125rem;letter-spacing:.01em}
header span{color:var(--accent)}
main{max-width:30rem;margin:.75rem auto 2rem;padding:1.25rem 1rem 1.5rem;background:var(--card);border-radius:1rem}
@media (min-width:40rem){header{padding-top:3rem}main{padding:2rem 2rem 2.25rem;box-shadow:0 1px 3px rgb(0 0 0/.12)}}
h1{font-size:1.625rem;line-height:1.25;margin:0 0 1rem}
p{margin:0 0 1rem}
.lead{color:var(--muted)}
a{color:var(--accent);text-underline-offset:.15em}
label,legend{display:block;font-weight:600;margin:0 0 .375rem}
.field{margin:0 0 1.25rem}
.hint{display:block;color:var(--muted);font-size:.9375rem;margin:0 0 .5rem}
.badge+.badge{margin-left:.25rem}
.badge.pin{background:var(--fg);color:var(--card)}
.pin-input{max-width:10rem;letter-spacing:.3em}
input[type=email],input[type=password],input[type=text]{display:block;width:100%;min-height:3rem;padding:.625rem .75rem;font:inherit;color:var(--fg);background:var(--card);border:2px solid var(--line);border-radius:.5rem}
input.code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:1.75rem;letter-spacing:.2em;text-transform:uppercase;text-align:center}
input[aria-invalid=true]{border-color:var(--err)}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
fieldset{border:0;margin:0 0 1.25rem;padding:0}
.choice{display:flex;align-items:center;gap:.75rem;min-height:3rem;padding:.5rem .75rem;margin:0 0 .5rem;border:2px solid var(--line);border-radius:.5rem;font-weight:500;cursor:pointer}
.choice input{width:1.25rem;height:1.25rem;margin:0;accent-color:var(--accent);flex:none}
.choice:has(input:checked){border-color:var(--accent)}
.badge{margin-left:auto;padding:.125rem .5rem;border-radius:999px;background:var(--badge);color:var(--badge-fg);font-size:.8125rem;font-weight:700;letter-spacing:.02em}
.actions{display:flex;flex-direction:column;gap:.75rem;margin-top:1.5rem}
@media (min-width:40rem){.actions{flex-direction:row-reverse;justify-content:flex-start}}
button{min-height:3rem;padding:.625rem 1.5rem;font:inherit;font-weight:600;border-radius:.5rem;border:2px solid var(--accent);background:var(--accent);color:var(--accent-fg);cursor:pointer}
button.secondary{background:transparent;color:var(--accent)}
.linkish{border:0;background:none;color:var(--accent);padding:0;min-height:0;font-weight:500;text-decoration:underline;text-underline-offset:.15em}
.error{padding:.75rem 1rem;border-radius:.5rem;background:var(--err-bg);color:var(--err);font-weight:600;border-left:4px solid var(--err)}
.done{color:var(--ok);font-weight:600}
.nowrap{white-space:nowrap}
form+p{margin-top:1.25rem}
ul.scopes{margin:0 0 1.25rem;padding-left:1.25rem}
ul.scopes li{margin:0 0 .25rem}
.who{margin-top:1.75rem;padding-top:1rem;border-top:1px solid var(--line);color:var(--muted);font-size:.9375rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:baseline;justify-content:space-between}
.who form{margin:0}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
"#;

/// `'sha256-...'` of [`CSS`], the only style the pages' policy admits.
static CSS_HASH: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(CSS.as_bytes()))));

/// Escape text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The pages' content security policy: no scripts at all, only our style sheet, forms that post
/// to this origin (and, on the consent page, to the client's redirect origin: browsers apply
/// `form-action` to the redirect a form submission answers with).
pub(crate) fn csp(extra_form_action: Option<&str>) -> String {
    let form_action = match extra_form_action {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; style-src {}; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        *CSS_HASH
    )
}

/// A whole page with `status`.
pub(crate) fn page_with(status: StatusCode, title: &str, body: &str, form_origin: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{t} · Playhead</title><style>{CSS}</style></head>\
         <body><header><span aria-hidden=\"true\">&#9654;</span> Playhead</header>\
         <main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    let mut res = (status, Html(html)).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp(form_origin)) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// A whole page, 200.
pub(crate) fn page(title: &str, body: &str) -> Response {
    page_with(StatusCode::OK, title, body, None)
}

/// An error paragraph, announced when the page loads; `id` lets an input point at it.
pub(crate) fn error_box(id: &str, message: &str) -> String {
    format!("<p class=\"error\" id=\"{id}\" role=\"alert\">{}</p>", esc(message))
}

/// What a scope lets an app do, said to a person.
pub(crate) fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::HistoryRead => "See what you watched and where you stopped",
        Scope::HistoryWrite => "Record what you watch and edit your history",
        Scope::ProfilesWrite => "Create and change profiles",
        Scope::ProfilesAny => "Act on every profile of every account (a service)",
        Scope::CatalogWrite => "Change the catalogue of titles",
        Scope::RecsRead => "Show you recommendations",
        Scope::FeedbackWrite => "Send your ratings and \u{201c}not interested\u{201d}",
        Scope::FeedRead => "See what the people you follow watch",
        Scope::FeedWrite => "Follow people and share what you watch",
        Scope::Admin => "Administer this Playhead server",
    }
}

/// The list of what an app asks for.
pub(crate) fn scope_list(scopes: playhead_core::auth::Scopes) -> String {
    let items: String = scopes.iter().map(|s| format!("<li>{}</li>", esc(scope_text(s)))).collect();
    format!("<ul class=\"scopes\">{items}</ul>")
}

/// The profile chooser: one radio per profile with its name, a "Kids" badge and a "PIN" badge,
/// after the whole-account choice (checked unless `chosen` names a profile); then, when some
/// profile has a parental PIN, the PIN field (with `pin_error` beside it).
pub(crate) fn profile_chooser(
    profiles: &[Profile],
    pinned: &HashSet<ProfileId>,
    chosen: Option<&str>,
    pin_error: Option<&str>,
) -> String {
    let checked = |on: bool| if on { " checked" } else { "" };
    let chosen = chosen.filter(|c| profiles.iter().any(|p| p.id.to_string() == *c));
    let mut out = String::from("<fieldset><legend>Who is watching on it?</legend>");
    out.push_str(&format!(
        "<label class=\"choice\"><input type=\"radio\" name=\"profile_id\" value=\"\"{}>Any profile (the whole account)</label>",
        checked(chosen.is_none())
    ));
    for p in profiles {
        let id = p.id.to_string();
        // The spaces keep "Kids" and "PIN" separate words in the radio's accessible name.
        let kids = if p.kids { " <span class=\"badge\">Kids</span>" } else { "" };
        let pin = if pinned.contains(&p.id) { " <span class=\"badge pin\">PIN</span>" } else { "" };
        out.push_str(&format!(
            "<label class=\"choice\"><input type=\"radio\" name=\"profile_id\" value=\"{id}\"{}>{}{kids}{pin}</label>",
            checked(chosen == Some(id.as_str())),
            esc(p.name.as_str()),
        ));
    }
    out.push_str("</fieldset>");
    if !pinned.is_empty() {
        let (alert, aria) = match pin_error {
            Some(m) => {
                (error_box("pin-error", m), " aria-invalid=\"true\" aria-describedby=\"pin-hint pin-error\"")
            }
            None => (String::new(), " aria-describedby=\"pin-hint\""),
        };
        out.push_str(&format!(
            "<div class=\"field\"><label for=\"pin\">Profile PIN</label>\
             <span class=\"hint\" id=\"pin-hint\">Only for a profile marked PIN: 4 to 6 digits.</span>{alert}\
             <input id=\"pin\" type=\"password\" name=\"pin\" inputmode=\"numeric\" autocomplete=\"off\" \
             maxlength=\"6\" class=\"pin-input\"{aria}></div>"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_admits_exactly_the_style_sheet_and_no_script() {
        let policy = csp(None);
        let hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        assert!(policy.contains(&format!("style-src 'sha256-{hash}'")), "{policy}");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(!policy.contains("unsafe") && !policy.contains("script-src"), "{policy}");
        assert!(csp(Some("https://app.example")).contains("form-action 'self' https://app.example"));
    }

    #[test]
    fn text_from_outside_is_escaped() {
        assert_eq!(esc("<b a='1'>&\""), "&lt;b a=&#39;1&#39;&gt;&amp;&quot;");
    }
}
