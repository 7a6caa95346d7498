//! The whole onboarding in a real browser: headless Chromium driven through ChromeDriver. Every
//! page on the way is also measured at phone and desktop width and checked with axe-core.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use gangway::operators::Role;
use gangway::web::paths;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{OPERATOR_PASSWORD, TestApp};
use crate::wizard::{CUSTOMER_APP_PERMISSIONS, customer_app};

/// A ChromeDriver process on a free loopback port, killed on drop with the browsers it started.
pub(crate) struct ChromeDriver {
    _process: Child,
    url: String,
    /// The browsers' profile directories, each naming its browser's processes.
    profiles: Mutex<Vec<PathBuf>>,
}

impl Drop for ChromeDriver {
    /// Killing ChromeDriver leaves the Chromium it started running (a new parent adopts it),
    /// even after a session was closed, and a failed test closes none: each browser is killed
    /// by its profile directory, which is then removed.
    fn drop(&mut self) {
        let profiles = self
            .profiles
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for profile in profiles {
            let _ = std::process::Command::new("pkill")
                .args([
                    "-KILL",
                    "-f",
                    "--",
                    &format!("--user-data-dir={}", profile.display()),
                ])
                .status();
            let _ = std::fs::remove_dir_all(&profile);
        }
    }
}

impl ChromeDriver {
    pub(crate) async fn start() -> Self {
        Self::start_in_zone("UTC").await
    }

    /// A ChromeDriver whose browsers live in time zone `tz` (an IANA name).
    pub(crate) async fn start_in_zone(tz: &str) -> Self {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(&binary)
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}): install Debian's chromium and chromium-driver (scripts/test does)")
            });
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    _process: process,
                    url: format!("http://127.0.0.1:{port}"),
                    profiles: Mutex::default(),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start listening on {port}");
    }

    /// A fresh headless browser with its own profile (its own cookies).
    pub(crate) async fn browser(&self) -> Client {
        let profile =
            std::env::temp_dir().join(format!("gangway-chrome-{}", crate::helpers::short_id()));
        if let Ok(mut profiles) = self.profiles.lock() {
            profiles.push(profile.clone());
        }
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

/// Signs `email` (an operator with the tests' password) in to the console in `browser`, and
/// waits for the console's first page.
pub(crate) async fn console_sign_in(browser: &Client, app: &TestApp, email: &str) {
    browser.goto(&app.url(paths::LOGIN)).await.unwrap();
    fill(browser, "input[name=email]", email).await;
    fill(browser, "input[name=password]", OPERATOR_PASSWORD).await;
    click(browser, "form[action='/console/login'] button[type=submit]").await;
    wait_for_text(browser, "New invitation").await;
}

pub(crate) async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no field {css}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub(crate) async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("nothing to click at {css}"))
        .click()
        .await
        .unwrap();
}

/// Waits until the page's text contains `needle`, returning the page source.
pub(crate) async fn wait_for_text(browser: &Client, needle: &str) -> String {
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

/// The widths every page must work at: a phone and a laptop.
const WIDTHS: [u32; 2] = [390, 1280];

/// Makes the page's viewport (not the window) `width` × `height` CSS pixels.
async fn set_viewport(browser: &Client, width: u32, height: u32) {
    browser.set_window_size(width, height).await.unwrap();
    let inner = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let (w, h) = (
        inner[0].as_u64().unwrap() as u32,
        inner[1].as_u64().unwrap() as u32,
    );
    if (w, h) != (width, height) {
        browser
            .set_window_size(
                width + (width - w.min(width)),
                height + (height - h.min(height)),
            )
            .await
            .unwrap();
    }
}

/// axe-core's script, installed by `scripts/test` (`npm install axe-core@4` under target/axe);
/// `AXE_JS` names another copy.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::env::var_os("AXE_JS").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/axe/node_modules/axe-core/axe.min.js")
        });
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read axe-core at {} ({e}): run `npm install --prefix target/axe axe-core@4` (scripts/test does)",
                path.display()
            )
        })
    })
}

/// Runs axe-core on the page as it is and fails with every violation and the nodes it names.
async fn assert_accessible(browser: &Client, page: &str) {
    let loaded = browser
        .execute("return typeof window.axe === 'object';", vec![])
        .await
        .unwrap();
    if loaded != json!(true) {
        browser.execute(axe_source(), vec![]).await.unwrap();
    }
    let violations = browser
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, { resultTypes: ["violations"] })
                 .then(r => done(r.violations.map(v => ({
                   id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(" ") + "  " + n.html.slice(0, 160)),
                 }))))
                 .catch(e => done([{ id: "axe-error", help: String(e), nodes: [] }]));"#,
            vec![],
        )
        .await
        .unwrap();
    let violations = violations.as_array().cloned().unwrap_or_default();
    let listed: Vec<String> = violations
        .iter()
        .map(|v| {
            let nodes: Vec<&str> = v["nodes"]
                .as_array()
                .map(|n| n.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "{} ({}): {}\n      {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                nodes.join("\n      ")
            )
        })
        .collect();
    assert!(
        listed.is_empty(),
        "axe-core found {} violation(s) on {page}:\n  {}",
        listed.len(),
        listed.join("\n  ")
    );
}

/// What the page looks like at the current width, measured in the browser.
#[derive(Debug, serde::Deserialize)]
struct Fit {
    /// The page is wider than the viewport (it scrolls sideways).
    overflow: bool,
    /// Tables wider than their box, i.e. columns cut off or scrolled away.
    clipped_tables: usize,
    /// The header's Sign out button lies fully in view (`None` when signed out).
    sign_out_in_view: Option<bool>,
    /// Stacked-card cells whose label is not set flush left like the others.
    misaligned_labels: Vec<String>,
    /// Placeholders of fields in view wider than the room inside their field (cut off).
    clipped_placeholders: Vec<String>,
}

async fn fit(browser: &Client) -> Fit {
    let measured = browser
        .execute(
            r#"const view = document.documentElement.clientWidth;
               const button = document.querySelector(".topbar .who button");
               const box = button && button.getBoundingClientRect();
               return {
                 // Against the width without the scrollbar: what fits without sideways scrolling.
                 overflow: document.documentElement.scrollWidth > view,
                 clipped_tables: [...document.querySelectorAll(".table-wrap")]
                   .filter(w => w.scrollWidth > w.clientWidth + 1).length,
                 sign_out_in_view: box ? (box.width > 0 && box.left >= 0 && box.right <= view
                   && box.top >= 0 && getComputedStyle(button).visibility === "visible") : null,
                 misaligned_labels: [...document.querySelectorAll("table.stack td[data-label]")]
                   .filter(td => {
                     // Stacked: the header row is moved out of sight.
                     const head = td.closest("table").querySelector("thead");
                     return head && getComputedStyle(head).position === "absolute";
                   })
                   .filter(td => getComputedStyle(td, "::before").textAlign === "right")
                   .map(td => td.dataset.label),
                 clipped_placeholders: [...document.querySelectorAll("input[placeholder]")]
                   .filter(i => i.offsetParent !== null)
                   .filter(i => {
                     const s = getComputedStyle(i);
                     const pen = document.createElement("canvas").getContext("2d");
                     pen.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
                     const room = i.clientWidth - parseFloat(s.paddingLeft)
                       - parseFloat(s.paddingRight);
                     return pen.measureText(i.placeholder).width > room;
                   })
                   .map(i => i.placeholder),
               };"#,
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(measured).unwrap()
}

/// Checks the page in view at phone and desktop width (no sideways scrolling, no clipped table,
/// Sign out in view on console pages), saves a screenshot of each and runs axe-core on it.
pub(crate) async fn check_page(browser: &Client, page: &str, signed_in: bool) {
    let shots = std::env::var_os("GANGWAY_SHOTS").map(PathBuf::from);
    for width in WIDTHS {
        set_viewport(browser, width, 900).await;
        let fit = fit(browser).await;
        assert!(!fit.overflow, "{page} scrolls sideways at {width} px");
        assert_eq!(fit.clipped_tables, 0, "{page} clips a table at {width} px");
        assert!(
            fit.misaligned_labels.is_empty(),
            "{page} sets card labels out of line at {width} px: {:?}",
            fit.misaligned_labels
        );
        assert!(
            fit.clipped_placeholders.is_empty(),
            "{page} cuts placeholders off at {width} px: {:?}",
            fit.clipped_placeholders
        );
        if signed_in {
            assert_eq!(
                fit.sign_out_in_view,
                Some(true),
                "{page}: Sign out is not in view at {width} px"
            );
        }
        if let Some(dir) = &shots {
            std::fs::create_dir_all(dir).unwrap();
            let png = browser.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{page}-{width}.png")), png).unwrap();
        }
        assert_accessible(browser, &format!("{page} at {width} px")).await;
    }
    set_viewport(browser, 1280, 900).await;
}

/// The `href` of the first element matching `css`.
async fn href(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no link {css}"))
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{css} has no href"))
}

/// Evaluates `expression` in the page.
pub(crate) async fn eval(browser: &Client, expression: &str) -> Value {
    browser
        .execute(&format!("return {expression};"), vec![])
        .await
        .unwrap()
}

/// Fills the (only) tenant's directory copy and sync history as syncs would: users (one in the
/// recycle bin), groups with members (one not in the copy), a failed run, and one running.
/// Returns the tenant's id.
async fn seed_directory(app: &TestApp) -> uuid::Uuid {
    let tenant: uuid::Uuid = sqlx::query_scalar("select id from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "insert into directory_users (tenant_id, object_id, display_name, user_principal_name, mail,
                                      business_phones, mobile_phone, job_title, department,
                                      account_enabled, soft_deleted_at, seen_round)
         select $1, gen_random_uuid(), name, upn, upn, '{+1 425 555 0100}', '+1 425 555 0199',
                'Senior Regional Sales Manager', 'Sales and Marketing', enabled, deleted, 1
         from (values ('Adele Vance', 'adele.vance@contoso.onmicrosoft.com', true, null::timestamptz),
                      ('Alex Wilber', 'alex.wilber.with.a.long.name@contoso.onmicrosoft.com', false, null),
                      ('Gone Person', 'gone@contoso.onmicrosoft.com', true, now()))
              as u (name, upn, enabled, deleted)",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "insert into directory_groups (tenant_id, object_id, display_name, description, mail,
                                       mail_enabled, security_enabled, seen_round)
         values ($1, gen_random_uuid(), 'Sales and Marketing', 'Everyone selling anything, anywhere',
                 'sales@contoso.onmicrosoft.com', true, false, 1),
                ($1, gen_random_uuid(), 'Engineering', null, null, false, true, 1)",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "insert into directory_group_members (tenant_id, group_id, member_id, member_type, seen_round)
         select $1, g.object_id, u.object_id, '#microsoft.graph.user', 1
         from directory_groups g, directory_users u
         where g.tenant_id = $1 and u.tenant_id = $1
         union all
         select $1, g.object_id, gen_random_uuid(), '#microsoft.graph.device', 1
         from directory_groups g where g.tenant_id = $1",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "insert into sync_runs (tenant_id, trigger, outcome, full_round, added, pages, error,
                                started_at, finished_at)
         values ($1, 'first', 'failed', true, 0, 1,
                 'User.Read.All is required to read users: an admin of the tenant must grant it to the app.',
                 now() - interval '2 hours', now() - interval '2 hours'),
                ($1, 'manual', 'running', true, 3, 2, null, now() - interval '30 seconds', null)",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    tenant
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
    check_page(&operator, "login", false).await;
    fill(&operator, "input[name=email]", "ops@provider.test").await;
    fill(&operator, "input[name=password]", "not the password").await;
    click(
        &operator,
        "form[action='/console/login'] button[type=submit]",
    )
    .await;
    wait_for_text(&operator, "error-summary").await;
    assert_eq!(
        eval(
            &operator,
            "document.activeElement.classList.contains('error-summary')"
        )
        .await,
        json!(true),
        "a refused sign-in focuses its message"
    );
    check_page(&operator, "login-error", false).await;
    fill(&operator, "input[name=email]", "ops@provider.test").await;
    fill(&operator, "input[name=password]", OPERATOR_PASSWORD).await;
    click(
        &operator,
        "form[action='/console/login'] button[type=submit]",
    )
    .await;
    wait_for_text(&operator, "New invitation").await;
    check_page(&operator, "invitations-empty", true).await;
    operator
        .goto(&app.url(paths::NEW_INVITATION))
        .await
        .unwrap();
    check_page(&operator, "invitation-new", true).await;

    // Sent empty, the form comes back with its first invalid field focused.
    click(
        &operator,
        "form[action='/console/invitations/new'] button[type=submit]",
    )
    .await;
    wait_for_text(&operator, "error-summary").await;
    assert_eq!(
        eval(&operator, "document.activeElement.id").await,
        json!("customer_name"),
        "the new-invitation form focuses its first invalid field"
    );
    check_page(&operator, "invitation-new-errors", true).await;

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
    check_page(&operator, "invitation-link", true).await;
    let invitation_url = href(&operator, "a.button[href*='/console/invitations/']").await;

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
    check_page(&admin, "wizard-review", false).await;
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
    let landed = admin.current_url().await.unwrap();
    assert!(landed.as_str().starts_with(&app.address));
    check_page(&admin, "wizard-done", false).await;

    // Refreshing the success page shows the real outcome again, from a token-free result page.
    admin.refresh().await.unwrap();
    if landed.path() == paths::CALLBACK {
        // The callback still renders the outcome itself (no redirect to a result page yet):
        // its replay is refused and connects nothing twice.
        let replayed = wait_for_text(&admin, "Nothing was connected").await;
        assert!(!replayed.contains("is connected"));
    } else {
        let again = wait_for_text(&admin, "is connected").await;
        assert!(
            again.contains(&customer.display_name),
            "the refreshed page names the tenant"
        );
        assert!(
            !landed.as_str().contains("code="),
            "no code in the result address"
        );
        assert!(!again.contains("Nothing was connected"));
    }

    // The console now lists the tenant, and every console page works at both widths.
    operator.goto(&app.url(paths::TENANTS)).await.unwrap();
    let tenants = wait_for_text(&operator, &customer.display_name).await;
    assert!(
        tenants.contains(&customer.id),
        "the tenant list shows the tenant id"
    );
    check_page(&operator, "tenants", true).await;
    let tenant_url = href(&operator, "table a[href*='/console/tenants/']").await;
    operator.goto(&app.url(&tenant_url)).await.unwrap();
    wait_for_text(&operator, "History").await;
    check_page(&operator, "tenant", true).await;

    // Its directory copy and sync, seeded as a sync would leave them, with one run under way.
    let tenant_id = seed_directory(&app).await;
    operator.goto(&app.url(&tenant_url)).await.unwrap();
    wait_for_text(&operator, "Syncing now").await;
    check_page(&operator, "tenant-syncing", true).await;
    // The counters follow the run without a reload, and say when it has finished.
    sqlx::query("update sync_runs set pages = 917 where outcome = 'running'")
        .execute(&app.db)
        .await
        .unwrap();
    wait_for_text(&operator, "data-progress=\"pages\">917<").await;
    sqlx::query(
        "update sync_runs set outcome = 'succeeded', finished_at = now() where outcome = 'running'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // Once it ends, the page shows how it went, without a reload (the first sync, queued by
    // the consent, still waits).
    wait_for_text(&operator, "data-sync-phase=\"queued\"").await;
    assert!(!operator.source().await.unwrap().contains("Syncing now"));
    // A schedule too frequent comes back with its field focused.
    operator
        .form(Locator::Css("form[data-schedule-form]"))
        .await
        .unwrap()
        .set_by_name("schedule_kind", "every")
        .await
        .unwrap();
    fill(&operator, "#every_count", "2").await;
    operator
        .form(Locator::Css("form[data-schedule-form]"))
        .await
        .unwrap()
        .set_by_name("every_unit", "minutes")
        .await
        .unwrap();
    click(&operator, "form[data-schedule-form] button[type=submit]").await;
    wait_for_text(&operator, "too often").await;
    assert_eq!(
        eval(&operator, "document.activeElement.id").await,
        json!("every_count"),
        "the refused schedule focuses its field"
    );
    // Focus scrolled to the field; the layout checks look from the top of the page.
    eval(&operator, "window.scrollTo(0, 0)").await;
    check_page(&operator, "tenant-schedule-errors", true).await;
    for (page, path, text) in [
        (
            "tenant-users",
            paths::tenant_users as fn(_) -> _,
            "Adele Vance",
        ),
        ("tenant-groups", paths::tenant_groups, "Sales and Marketing"),
        ("tenant-runs", paths::tenant_runs, "Succeeded"),
        ("tenant-scope", paths::tenant_scope, "Now in scope"),
    ] {
        operator
            .goto(&app.url(&path(tenant_id.into())))
            .await
            .unwrap();
        wait_for_text(&operator, text).await;
        check_page(&operator, page, true).await;
    }
    operator
        .goto(&app.url(&paths::tenant_groups(tenant_id.into())))
        .await
        .unwrap();
    let group_url = href(&operator, "table a[href*='/groups/']").await;
    operator.goto(&app.url(&group_url)).await.unwrap();
    wait_for_text(&operator, "Not in the copy").await;
    check_page(&operator, "tenant-group", true).await;
    operator
        .goto(&app.url(&paths::tenant_users(tenant_id.into())))
        .await
        .unwrap();
    let user_url = href(&operator, "table a[href*='/users/']").await;
    operator.goto(&app.url(&user_url)).await.unwrap();
    wait_for_text(&operator, "All groups, through nested groups").await;
    check_page(&operator, "tenant-user", true).await;
    operator.goto(&app.url(paths::INVITATIONS)).await.unwrap();
    wait_for_text(&operator, &customer.display_name).await;
    check_page(&operator, "invitations", true).await;
    operator.goto(&app.url(&invitation_url)).await.unwrap();
    wait_for_text(&operator, "Timeline").await;
    check_page(&operator, "invitation", true).await;
    operator.goto(&app.url(paths::AUDIT)).await.unwrap();
    wait_for_text(&operator, "Audit log").await;
    check_page(&operator, "audit", true).await;
    operator.goto(&app.url(paths::OPERATORS)).await.unwrap();
    wait_for_text(&operator, "ops@provider.test").await;
    check_page(&operator, "operators", true).await;
    operator.goto(&app.url(paths::SETTINGS)).await.unwrap();
    wait_for_text(&operator, "Permission profiles").await;
    check_page(&operator, "settings", true).await;
    operator.goto(&app.url(paths::API_DOCS)).await.unwrap();
    wait_for_text(&operator, "OpenAPI 3.1 document").await;
    check_page(&operator, "api-docs", true).await;
    operator.goto(&app.url(paths::API_TOKENS)).await.unwrap();
    wait_for_text(&operator, "New token").await;
    check_page(&operator, "api-tokens", true).await;

    admin.close().await.unwrap();
    operator.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_customer_app_puts_the_errors_in_view_and_focus_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(1).clone();
    let registered = customer_app(&app, 1, CUSTOMER_APP_PERMISSIONS).await;
    let issued = app
        .invite("customer-app", &tenant.admin.username, None)
        .await;
    let driver = ChromeDriver::start().await;
    let admin = driver.browser().await;
    admin.goto(issued.link.as_str()).await.unwrap();
    wait_for_text(&admin, "Check and connect").await;
    check_page(&admin, "customer-app", false).await;

    // Every value to copy from the how-to has its copy button.
    for permission in CUSTOMER_APP_PERMISSIONS {
        admin
            .find(Locator::Css(&format!(
                "ol.howto button[data-copy][aria-label='Copy {permission}']"
            )))
            .await
            .unwrap_or_else(|_| panic!("no copy button for {permission}"));
    }

    for width in WIDTHS {
        set_viewport(&admin, width, 900).await;
        admin.goto(&app.url(paths::WIZARD)).await.unwrap();
        wait_for_text(&admin, "Check and connect").await;
        // The how-to is followed before the form is filled: above it on a phone, to its left on
        // a laptop.
        let layout = eval(
            &admin,
            r#"(() => {
                 const form = document.querySelector("form[action^='/invitation/customer-app']").getBoundingClientRect();
                 const howto = document.querySelector("ol.howto").getBoundingClientRect();
                 return { above: howto.bottom <= form.top, beside: form.left >= howto.right };
               })()"#,
        )
        .await;
        let expected = if width < 800 { "above" } else { "beside" };
        assert_eq!(layout[expected], json!(true), "at {width} px: {layout}");
        fill(&admin, "#tenant_id", &tenant.id).await;
        fill(&admin, "#client_id", &registered.client_id).await;
        fill(&admin, "#client_secret", "not-the-secret-value").await;
        click(
            &admin,
            "form[action^='/invitation/customer-app'] button[type=submit]",
        )
        .await;
        wait_for_text(&admin, "These values did not work").await;

        let seen = eval(
            &admin,
            r#"(() => {
                 const summary = document.getElementById("errors");
                 const box = summary.getBoundingClientRect();
                 const secret = document.getElementById("client_secret");
                 return {
                   focused: document.activeElement === summary,
                   in_view: box.top >= 0 && box.bottom <= window.innerHeight,
                   top: box.top,
                   step: document.querySelector(".steps [aria-current=step]").textContent.trim(),
                   links_secret: !!summary.querySelector("a[href='#client_secret']"),
                   invalid: secret.getAttribute("aria-invalid"),
                   described: document.getElementById(secret.getAttribute("aria-describedby"))?.textContent ?? "",
                 };
               })()"#,
        )
        .await;
        assert_eq!(
            seen["focused"],
            json!(true),
            "the summary has focus at {width} px: {seen}"
        );
        assert_eq!(
            seen["in_view"],
            json!(true),
            "the summary is in view at {width} px: {seen}"
        );
        assert_eq!(seen["step"], json!("Your app's details"), "{seen}");
        assert_eq!(
            seen["links_secret"],
            json!(true),
            "the message links to the field: {seen}"
        );
        assert_eq!(seen["invalid"], json!("true"), "{seen}");
        assert!(
            seen["described"].as_str().unwrap().contains("Secret ID"),
            "the field is described by its message: {seen}"
        );
        if let Some(dir) = std::env::var_os("GANGWAY_SHOTS").map(PathBuf::from) {
            std::fs::create_dir_all(&dir).unwrap();
            let png = admin.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("customer-app-errors-{width}.png")), png).unwrap();
        }
        assert_accessible(&admin, &format!("the customer-app errors at {width} px")).await;

        click(&admin, "#errors a[href='#client_secret']").await;
        assert_eq!(
            eval(&admin, "document.activeElement.id").await,
            json!("client_secret"),
            "following the message focuses its field"
        );
    }
    admin.close().await.unwrap();
}

#[tokio::test]
async fn an_operator_signs_in_with_entra_id_and_out_again_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let sso = crate::sso::Sso::set_up(&app).await;
    let user = sso.user(&app, "Nia", &[&sso.admin_group]).await;
    let driver = ChromeDriver::start().await;
    let operator = driver.browser().await;

    // "Sign in with Microsoft" on the sign-in page, Microsoft's own pages, back in the console.
    operator.goto(&app.url(paths::LOGIN)).await.unwrap();
    wait_for_text(&operator, "Sign in with Microsoft").await;
    check_page(&operator, "login-sso", false).await;
    click(&operator, "#sso").await;
    wait_for_text(&operator, "idSIButton9").await;
    fill(&operator, "#i0116", &user.username).await;
    fill(&operator, "#i0118", &user.password).await;
    click(&operator, "#idSIButton9").await;
    wait_for_text(&operator, "idBtn_Accept").await;
    click(&operator, "#idBtn_Accept").await;
    let console = wait_for_text(&operator, "New invitation").await;
    assert!(console.contains(&user.username), "the top bar names them");
    assert_eq!(
        operator.current_url().await.unwrap().path(),
        paths::INVITATIONS
    );
    operator.goto(&app.url(paths::OPERATORS)).await.unwrap();
    wait_for_text(&operator, &user.username).await;
    check_page(&operator, "operators-sso", true).await;

    // Signing out at Microsoft (from any app): its page frames Gangway's front-channel logout
    // URL, which ends this session, and comes back to the sign-in page.
    let logout = format!(
        "{}/{}/oauth2/v2.0/logout?post_logout_redirect_uri={}",
        app.emulator.base_url(),
        sso.tenant,
        url::form_urlencoded::byte_serialize(app.url(paths::LOGIN).as_bytes()).collect::<String>()
    );
    operator.goto(&logout).await.unwrap();
    wait_for_text(&operator, "Sign in to the console").await;
    assert_eq!(operator.current_url().await.unwrap().path(), paths::LOGIN);
    let ended: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'operator.signed_out'
         and detail->>'method' = 'entra front-channel logout'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(ended, 1, "the framed logout URL ran in the browser");
    operator.goto(&app.url(paths::INVITATIONS)).await.unwrap();
    wait_for_text(&operator, "Sign in to the console").await;

    // Again, then Sign out in Gangway, which offers signing out of Microsoft too.
    click(&operator, "#sso").await;
    wait_for_text(&operator, "idSIButton9").await;
    fill(&operator, "#i0116", &user.username).await;
    fill(&operator, "#i0118", &user.password).await;
    click(&operator, "#idSIButton9").await;
    wait_for_text(&operator, "New invitation").await;
    click(&operator, ".topbar .who button").await;
    wait_for_text(&operator, "sign out of Microsoft too").await;
    check_page(&operator, "login-signed-out", false).await;
    click(&operator, "#microsoft-logout").await;
    wait_for_text(&operator, "Sign in to the console").await;
    assert_eq!(operator.current_url().await.unwrap().path(), paths::LOGIN);
    // Microsoft's session is over too: signing in asks for the password again.
    click(&operator, "#sso").await;
    wait_for_text(&operator, "idSIButton9").await;

    operator.close().await.unwrap();
}

/// Goes from the invitation `link` through Microsoft as `login` (sign-in, then Accept).
async fn consent_in_browser(browser: &Client, link: &str, login: &entra_emulator::EmulatedLogin) {
    browser.goto(link).await.unwrap();
    wait_for_text(browser, "Sign in with Microsoft").await;
    click(
        browser,
        "form[action='/invitation/start'] button[type=submit]",
    )
    .await;
    wait_for_text(browser, "idSIButton9").await;
    fill(browser, "#i0116", &login.username).await;
    fill(browser, "#i0118", &login.password).await;
    click(browser, "#idSIButton9").await;
    wait_for_text(browser, "idBtn_Accept").await;
    click(browser, "#idBtn_Accept").await;
}

#[tokio::test]
async fn a_consent_still_propagating_finishes_by_itself_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let set_delay = async |millis: u64| {
        reqwest::Client::new()
            .post(format!(
                "{}/_emulator/propagation",
                app.emulator.base_url().trim_end_matches('/')
            ))
            .json(&json!({"consent_delay_ms": millis}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    };
    let driver = ChromeDriver::start().await;

    // Entra ID needs a few seconds: the admin watches the page finish without touching it.
    set_delay(3000).await;
    let first = app.customer(1).clone();
    let issued = app.invite("application", &first.admin.username, None).await;
    let admin = driver.browser().await;
    consent_in_browser(&admin, issued.link.as_str(), &first.admin).await;
    wait_for_text(&admin, "Finishing the connection").await;
    let done = wait_for_text(&admin, "is connected").await;
    assert!(done.contains(&first.display_name));

    // The finishing page itself, held still (its timer cleared) to be measured and checked.
    set_delay(600_000).await;
    let second = app.customer(0).clone();
    let issued = app
        .invite("application", &second.admin.username, None)
        .await;
    let admin = driver.browser().await;
    consent_in_browser(&admin, issued.link.as_str(), &second.admin).await;
    wait_for_text(&admin, "Finishing the connection").await;
    admin
        .execute(
            "let id = setTimeout(() => {}, 0); while (id--) clearTimeout(id);",
            vec![],
        )
        .await
        .unwrap();
    check_page(&admin, "wizard-finishing", false).await;
}

#[tokio::test]
async fn a_sync_is_followed_from_queued_to_its_result_without_reloading_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    // Consenting queues the first sync.
    let tenant = crate::sync::connect(&app, &tid, &crate::sync::all_app_permissions()).await;
    app.add_operator("ops@provider.test", Role::Admin).await;
    let driver = ChromeDriver::start().await;
    let operator = driver.browser().await;
    console_sign_in(&operator, &app, "ops@provider.test").await;
    operator
        .goto(&app.url(&paths::tenant(tenant.into())))
        .await
        .unwrap();
    wait_for_text(&operator, "A sync is queued").await;
    check_page(&operator, "tenant-queued", true).await;
    // A mark a reload would wipe.
    eval(&operator, "(window.stillThisPage = true)").await;

    let report = crate::sync::work(&app).await;
    assert_eq!(
        report.outcome,
        gangway::directory::runs::RunOutcome::Succeeded
    );
    for _ in 0..100 {
        let badge = eval(
            &operator,
            "document.getElementById('sync-badge').textContent",
        )
        .await;
        if badge == json!("Synced") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let source = wait_for_text(&operator, ">Succeeded<").await;
    assert!(
        !source.contains("A sync is queued"),
        "the queued notice went"
    );
    let users: i64 =
        sqlx::query_scalar("select count(*) from directory_users where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        eval(
            &operator,
            "document.querySelector('#tenant-tabs .count').textContent"
        )
        .await,
        json!(users.to_string()),
        "the tabs count what the sync brought"
    );
    assert_eq!(
        eval(
            &operator,
            "document.getElementById('sync-badge').textContent"
        )
        .await,
        json!("Synced"),
        "the badge follows the run"
    );
    assert_eq!(
        eval(&operator, "window.stillThisPage === true").await,
        json!(true),
        "followed without a reload"
    );
    check_page(&operator, "tenant-synced", true).await;
    operator.close().await.unwrap();
}

#[tokio::test]
async fn an_admin_invites_an_operator_who_sets_a_password_in_a_real_browser() {
    let app = TestApp::spawn().await;
    app.add_operator("ops@provider.test", Role::Admin).await;
    let driver = ChromeDriver::start().await;
    let admin = driver.browser().await;
    admin.goto(&app.url(paths::LOGIN)).await.unwrap();
    fill(&admin, "input[name=email]", "ops@provider.test").await;
    fill(&admin, "input[name=password]", OPERATOR_PASSWORD).await;
    click(&admin, "form[action='/console/login'] button[type=submit]").await;
    wait_for_text(&admin, "New invitation").await;
    admin.goto(&app.url(paths::OPERATORS)).await.unwrap();
    wait_for_text(&admin, "Invite an operator").await;
    check_page(&admin, "operators-invite", true).await;
    fill(&admin, "#invite-email", "jane.doe@provider.test").await;
    click(
        &admin,
        "form[action='/console/operators/invite'] button[type=submit]",
    )
    .await;
    wait_for_text(&admin, "This link is shown only now").await;
    check_page(&admin, "operators-invited", true).await;
    let link = admin
        .find(Locator::Css("#operator-link-value"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("the link is shown");

    let invitee = driver.browser().await;
    invitee.goto(&link).await.unwrap();
    wait_for_text(&invitee, "Set your password").await;
    assert!(
        !invitee
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("token"),
        "the token left the address"
    );
    check_page(&invitee, "operator-join", false).await;
    fill(&invitee, "#password", "correct horse battery").await;
    fill(&invitee, "#confirm", "correct horse battery").await;
    click(&invitee, "form[action='/console/join'] button[type=submit]").await;
    wait_for_text(&invitee, "Your account is ready").await;
    check_page(&invitee, "login-joined", false).await;
    fill(&invitee, "input[name=password]", "correct horse battery").await;
    click(
        &invitee,
        "form[action='/console/login'] button[type=submit]",
    )
    .await;
    wait_for_text(&invitee, "jane.doe@provider.test").await;
    admin.close().await.unwrap();
    invitee.close().await.unwrap();
}

#[tokio::test]
async fn times_read_in_the_viewers_zone_with_utc_on_hover_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let customer = app.customer(0).clone();
    let issued = app
        .invite("delegated", &customer.admin.username, None)
        .await;
    let driver = ChromeDriver::start_in_zone("Asia/Kolkata").await;

    // The customer in India reads the link's expiry in their own time.
    let admin = driver.browser().await;
    admin.goto(issued.link.as_str()).await.unwrap();
    wait_for_text(&admin, "Link valid until").await;
    let utc = gangway::format::datetime(issued.invitation.expires_at);
    let shown = eval(
        &admin,
        "document.querySelector('time[datetime]').textContent",
    )
    .await;
    let title = eval(&admin, "document.querySelector('time[datetime]').title").await;
    assert!(
        shown.as_str().unwrap().contains("GMT+5:30"),
        "in the viewer's zone: {shown}"
    );
    assert_eq!(title, json!(utc), "UTC on hover");
    check_page(&admin, "wizard-local-time", false).await;

    // So does the operator, on the console's pages.
    app.add_operator("ops@provider.test", Role::Admin).await;
    let operator = driver.browser().await;
    console_sign_in(&operator, &app, "ops@provider.test").await;
    operator
        .goto(&app.url(&paths::invitation(issued.invitation.id)))
        .await
        .unwrap();
    wait_for_text(&operator, "Timeline").await;
    let created = eval(
        &operator,
        "[...document.querySelectorAll('time[data-absolute]')].map(t => t.textContent + ' | ' + t.title)[0]",
    )
    .await;
    let created = created.as_str().unwrap();
    assert!(
        created.contains("GMT+5:30") && created.contains(" UTC"),
        "local time, UTC on hover: {created}"
    );
    let expires = eval(
        &operator,
        "[...document.querySelectorAll('time:not([data-absolute])')].map(t => t.title).find(t => t.includes('UTC'))",
    )
    .await;
    assert!(
        expires.as_str().unwrap().contains("GMT+5:30"),
        "relative times get the local time on hover: {expires}"
    );
    admin.close().await.unwrap();
    operator.close().await.unwrap();
}
