//! The sign-in, consent and "need admin approval" pages, driven like a browser would.

use std::collections::HashMap;

use reqwest::{Client, Response, StatusCode};

/// Value of a hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// The `Location` of a redirect, as a URL.
pub fn location(resp: &Response) -> url::Url {
    assert_eq!(resp.status(), StatusCode::FOUND, "expected a redirect");
    let loc = resp.headers()["location"].to_str().unwrap();
    url::Url::parse(loc).unwrap()
}

/// Query parameters of a URL.
pub fn params(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// GETs `url` in `client` and returns (status, body).
pub async fn page(client: &Client, url: &str) -> (StatusCode, String) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Follows the "Return to the application" link of a "Need admin approval" page; returns the
/// query parameters of the redirect back to the app.
pub async fn return_to_app(client: &Client, base: &str, html: &str) -> HashMap<String, String> {
    let start = html.find("href=\"").unwrap() + 6;
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let resp = client.get(format!("{base}{href}")).send().await.unwrap();
    params(&location(&resp))
}

/// Opens the sign-in page at `url` and signs in with `user`; returns the next page.
pub async fn open_and_sign_in(
    client: &Client,
    base: &str,
    url: &str,
    user: &(String, String),
) -> String {
    let (_, html) = page(client, url).await;
    signed_in(client, base, &html, user).await
}

/// Signs in with `user` (name, password) on the sign-in page `html`; returns the next page.
pub async fn signed_in(client: &Client, base: &str, html: &str, user: &(String, String)) -> String {
    let resp = sign_in(client, base, html, &user.0, &user.1).await;
    resp.text().await.unwrap()
}

/// Clicks Accept or Cancel on a consent page; returns the query parameters sent back to the app.
pub async fn decided(
    client: &Client,
    base: &str,
    html: &str,
    decision: &str,
) -> HashMap<String, String> {
    params(&location(&decide(client, base, html, decision).await))
}

/// Submits the sign-in form found in `html`; returns the raw answer.
pub async fn sign_in(
    client: &Client,
    base: &str,
    html: &str,
    user: &str,
    password: &str,
) -> Response {
    assert!(
        html.contains("id=\"idSIButton9\""),
        "not a sign-in page:\n{html}"
    );
    let action = form_action(html);
    let ctx = hidden(html, "ctx");
    client
        .post(format!("{base}{action}"))
        .form(&[("ctx", ctx.as_str()), ("login", user), ("passwd", password)])
        .send()
        .await
        .unwrap()
}

/// Clicks Accept (`accept`) or Cancel (`decline`) on a consent page.
pub async fn decide(client: &Client, base: &str, html: &str, decision: &str) -> Response {
    assert!(
        html.contains("id=\"idBtn_Accept\"") && html.contains("id=\"idBtn_Back\""),
        "not a consent page:\n{html}"
    );
    let action = form_action(html);
    let ctx = hidden(html, "ctx");
    client
        .post(format!("{base}{action}"))
        .form(&[("ctx", ctx.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap()
}

fn form_action(html: &str) -> String {
    let marker = "action=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}
