//! Plain HTML pages (no JavaScript needed) for sign-in, consent and errors.

use axum::response::Html;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
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

/// Wraps `body` (already escaped HTML) in the emulator's page layout.
pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:Segoe UI,Helvetica,Arial,sans-serif;max-width:440px;margin:40px auto;padding:24px;border:1px solid #ddd}}
label{{display:block;margin-top:12px}} input[type=text],input[type=password]{{width:100%;padding:6px}}
.error{{color:#e81123}} .banner{{font-size:12px;color:#666}} button,input[type=submit]{{margin-top:16px;padding:6px 18px}}</style>
</head><body>
<p class="banner">Microsoft Entra ID emulator — not Microsoft</p>
<h1>{title}</h1>
{body}
</body></html>"#,
        title = escape(title),
    ))
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        escape(name),
        escape(value)
    )
}

/// An error page naming the AADSTS code, as Microsoft shows when it cannot redirect.
pub fn error(code: u32, message: &str) -> Html<String> {
    page(
        "Sorry, but we're having trouble signing you in.",
        &format!(
            r#"<p class="error" id="errorMessage">AADSTS{code}: {}</p>"#,
            escape(message)
        ),
    )
}

/// The auto-submitting form of `response_mode=form_post` (with a button for script-less browsers).
pub fn form_post(action: &str, fields: &[(&str, String)]) -> Html<String> {
    let inputs: String = fields.iter().map(|(k, v)| hidden(k, v)).collect();
    Html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()"><form method="POST" name="hiddenform" action="{}">{inputs}
<noscript><p>Script is disabled. Click Submit to continue.</p></noscript><input type="submit" id="idContinue" value="Submit"></form></body></html>"#,
        escape(action)
    ))
}
