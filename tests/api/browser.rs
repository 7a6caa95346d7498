//! The whole onboarding in a real browser: headless Chromium driven through ChromeDriver.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use gangway::operators::Role;
use gangway::web::paths;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::{OPERATOR_PASSWORD, TestApp};

/// A ChromeDriver process on a free loopback port, killed on drop.
struct ChromeDriver {
    _process: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Self {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}): install Debian's chromium and chromium-driver (bash .ci/run does)")
            });
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    _process: process,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start listening on {port}");
    }

    /// A fresh headless browser with its own profile (its own cookies).
    async fn browser(&self) -> Client {
        let profile =
            std::env::temp_dir().join(format!("gangway-chrome-{}", crate::helpers::short_id()));
        let binary = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("chromedriver opens a Chromium session")
    }
}

async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no field {css}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("nothing to click at {css}"))
        .click()
        .await
        .unwrap();
}

/// Waits until the page's text contains `needle`, returning the page source.
async fn wait_for_text(browser: &Client, needle: &str) -> String {
    for _ in 0..100 {
        let source = browser.source().await.unwrap();
        if source.contains(needle) {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = browser.current_url().await.unwrap();
    panic!(
        "{url} never showed {needle:?}:\n{}",
        browser.source().await.unwrap()
    );
}

#[tokio::test]
async fn an_operator_invites_and_the_customer_admin_consents_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let customer = app.customer(0).clone();
    app.add_operator("ops@provider.test", Role::Admin).await;
    let driver = ChromeDriver::start().await;

    // The operator signs in and creates an invitation.
    let operator = driver.browser().await;
    operator.goto(&app.url(paths::LOGIN)).await.unwrap();
    fill(&operator, "input[name=email]", "ops@provider.test").await;
    fill(&operator, "input[name=password]", OPERATOR_PASSWORD).await;
    click(
        &operator,
        "form[action='/console/login'] button[type=submit]",
    )
    .await;
    wait_for_text(&operator, "New invitation").await;
    operator
        .goto(&app.url(paths::NEW_INVITATION))
        .await
        .unwrap();
    fill(
        &operator,
        "input[name=customer_name]",
        &customer.display_name,
    )
    .await;
    fill(
        &operator,
        "input[name=admin_email]",
        &customer.admin.username,
    )
    .await;
    operator
        .form(Locator::Css("form[action='/console/invitations/new']"))
        .await
        .unwrap()
        .set_by_name("mode", "delegated")
        .await
        .unwrap();
    click(
        &operator,
        "form[action='/console/invitations/new'] button[type=submit]",
    )
    .await;
    wait_for_text(&operator, "/authenticate?token=").await;
    let link = operator
        .find(Locator::Css("input[name=invitation_link]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("the created page shows the link");

    // The customer's admin, in another browser, opens the link and consents at "Microsoft".
    let admin = driver.browser().await;
    admin.goto(&link).await.unwrap();
    let review = wait_for_text(&admin, "Sign in with Microsoft").await;
    assert!(
        review.contains("Test Provider"),
        "the wizard says who is asking"
    );
    assert!(
        review.contains("User.Read.All"),
        "the wizard lists the permissions"
    );
    assert!(
        !admin
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("token="),
        "the token left the address bar"
    );
    click(
        &admin,
        "form[action='/invitation/start'] button[type=submit]",
    )
    .await;
    wait_for_text(&admin, "idSIButton9").await;
    fill(&admin, "#i0116", &customer.admin.username).await;
    fill(&admin, "#i0118", &customer.admin.password).await;
    click(&admin, "#idSIButton9").await;
    wait_for_text(&admin, "idBtn_Accept").await;
    click(&admin, "#idBtn_Accept").await;
    let done = wait_for_text(&admin, "is connected").await;
    assert!(
        done.contains(&customer.display_name),
        "the success page names the tenant"
    );
    assert!(
        admin
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&app.address)
    );

    // The console now lists the tenant.
    operator.goto(&app.url(paths::TENANTS)).await.unwrap();
    let tenants = wait_for_text(&operator, &customer.display_name).await;
    assert!(
        tenants.contains(&customer.id),
        "the tenant list shows the tenant id"
    );

    admin.close().await.unwrap();
    operator.close().await.unwrap();
}
