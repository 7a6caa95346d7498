//! Security headers and session-cookie flags on what the portal serves.

use gangway::web::paths;

use crate::helpers::TestApp;

#[tokio::test]
async fn pages_carry_the_security_headers_and_a_locked_down_session_cookie() {
    let app = TestApp::spawn().await;
    let response = app.get(paths::LOGIN).await;
    let headers = response.headers();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());

    let csp = header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "script-src 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    // Forms post to the portal, which redirects to Microsoft: the authority must be allowed.
    assert!(
        csp.contains(&format!("form-action 'self' {}", app.emulator.base_url())),
        "{csp}"
    );
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    assert!(header("x-request-id").is_some());
    // Plain HTTP on loopback: no HSTS, and the cookie cannot be Secure.
    assert!(header("strict-transport-security").is_none());

    // The sign-in page stores no session: its CSRF token rides in a cookie of its own.
    let cookie = header("set-cookie").expect("the sign-in page sets its CSRF cookie");
    assert!(cookie.starts_with("gangway_csrf="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");

    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let opened = app.get(&app.path_of(&issued.link)).await;
    let cookie = opened
        .headers()
        .get("set-cookie")
        .expect("opening a link starts a session")
        .to_str()
        .unwrap();
    assert!(cookie.starts_with("gangway_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn versioned_static_assets_are_cached_for_good() {
    let app = TestApp::spawn().await;
    for (path, kind) in [
        (paths::STATIC_CSS, "text/css"),
        (paths::STATIC_JS, "text/javascript"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(kind));
        assert_eq!(
            header("cache-control"),
            "public, max-age=31536000, immutable"
        );
    }
}
