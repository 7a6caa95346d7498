//! The console's side of directory replication, over HTTP: the directory copy (users, groups,
//! members; searched and paged), the schedule form, "Sync now", a running sync's progress and
//! the tenants list's sync columns. The copy and the runs are seeded with SQL: the sync engine
//! itself is tested elsewhere.

use gangway::audit::Actor;
use gangway::directory::SYNC_JOB;
use gangway::operators::Role;
use gangway::tenants;
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, browser, consent, input_value, location};

async fn body(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

/// `html` with the entities askama writes decoded, for asserting on text.
fn decoded(html: &str) -> String {
    html.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

/// A consented tenant named `name` (its own invitation and Entra id).
/// A consented tenant whose first sync (queued by the consent) is out of the way.
pub async fn tenant(app: &TestApp, name: &str) -> Uuid {
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let consent = tenants::Consent {
        display_name: name.into(),
        ..consent(Uuid::new_v4())
    };
    let id = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent,
        &Actor::System,
    )
    .await
    .unwrap();
    let first = queued_sync_jobs(app, id).await;
    assert_eq!(first.len(), 1, "the consent queues the first sync");
    assert_eq!(first[0]["trigger"], "first");
    sqlx::query("update jobs set status = 'done', finished_at = now() where tenant_id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    id
}

/// Inserts a user into the copy and returns its object id.
pub async fn user(
    app: &TestApp,
    tenant: Uuid,
    name: &str,
    upn: &str,
    mail: Option<&str>,
    soft_deleted: bool,
) -> Uuid {
    sqlx::query_scalar(
        "insert into directory_users (tenant_id, object_id, display_name, user_principal_name, mail,
                                      business_phones, mobile_phone, job_title, department,
                                      account_enabled, soft_deleted_at, seen_round)
         values ($1, gen_random_uuid(), $2, $3, $4, '{+1 425 555 0100}', '+1 425 555 0199',
                 'Sales Manager', 'Sales', true, case when $5 then now() end, 1)
         returning object_id",
    )
    .bind(tenant)
    .bind(name)
    .bind(upn)
    .bind(mail)
    .bind(soft_deleted)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

pub async fn group(app: &TestApp, tenant: Uuid, name: &str, mail: Option<&str>) -> Uuid {
    sqlx::query_scalar(
        "insert into directory_groups (tenant_id, object_id, display_name, description, mail,
                                       mail_enabled, security_enabled, seen_round)
         values ($1, gen_random_uuid(), $2, 'The ' || $2 || ' team', $3, $3 is not null, true, 1)
         returning object_id",
    )
    .bind(tenant)
    .bind(name)
    .bind(mail)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

pub async fn member(app: &TestApp, tenant: Uuid, group: Uuid, member: Uuid, kind: &str) {
    sqlx::query(
        "insert into directory_group_members (tenant_id, group_id, member_id, member_type, seen_round)
         values ($1, $2, $3, $4, 1)",
    )
    .bind(tenant)
    .bind(group)
    .bind(member)
    .bind(format!("#microsoft.graph.{kind}"))
    .execute(&app.db)
    .await
    .unwrap();
}

/// 60 numbered users besides the named ones, so the users list has two pages.
async fn many_users(app: &TestApp, tenant: Uuid) {
    sqlx::query(
        "insert into directory_users (tenant_id, object_id, display_name, user_principal_name, mail, seen_round)
         select $1, gen_random_uuid(), 'Staff ' || lpad(n::text, 2, '0'),
                'staff' || n || '@contoso.example', 'staff' || n || '@mail.contoso.example', 1
         from generate_series(1, 60) n",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn mark_synced(app: &TestApp, tenant: Uuid) {
    sqlx::query(
        "update tenants set last_sync_success_at = now() - interval '20 minutes',
                next_sync_at = now() + interval '40 minutes' where id = $1",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
}

/// Inserts a run; a `running` one has no end.
async fn run(app: &TestApp, tenant: Uuid, outcome: &str, error: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "insert into sync_runs (tenant_id, trigger, outcome, full_round, added, updated, pages,
                                throttled_waits, throttled_seconds, error, started_at, finished_at)
         values ($1, 'schedule', $2, true, 120, 4, 3, 1, 2.5, $3, now() - interval '90 seconds',
                 case when $2 = 'running' then null else now() end)
         returning id",
    )
    .bind(tenant)
    .bind(outcome)
    .bind(error)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn queued_sync_jobs(app: &TestApp, tenant: Uuid) -> Vec<Value> {
    sqlx::query_scalar(
        "select payload from jobs where tenant_id = $1 and kind = $2 and status = 'queued'",
    )
    .bind(tenant)
    .bind(SYNC_JOB)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn audit_count(app: &TestApp, tenant: Uuid, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_events where tenant_id = $1 and action = $2")
        .bind(tenant)
        .bind(action)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The rows of the first table in `html` (its `<tbody>`), as text chunks.
fn rows(html: &str) -> Vec<String> {
    let Some(start) = html.find("<tbody>") else {
        return Vec::new();
    };
    let end = start + html[start..].find("</tbody>").unwrap();
    html[start..end].split("<tr").skip(1).map(decoded).collect()
}

#[tokio::test]
async fn users_are_found_by_upn_mail_or_name_paged_and_soft_deleted_ones_flagged() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    let other = tenant(&app, "Fabrikam").await;
    mark_synced(&app, id).await;
    user(
        &app,
        id,
        "Adele Vance",
        "adele.vance@contoso.example",
        Some("adele@contoso-mail.example"),
        false,
    )
    .await;
    user(
        &app,
        id,
        "Alex Wilber",
        "alexw@contoso.example",
        Some("alex.w@contoso-mail.example"),
        false,
    )
    .await;
    user(
        &app,
        id,
        "100% Support",
        "support@contoso.example",
        None,
        false,
    )
    .await;
    user(&app, id, "Gone Person", "gone@contoso.example", None, true).await;
    many_users(&app, id).await;
    user(
        &app,
        other,
        "Adele Elsewhere",
        "adele@fabrikam.example",
        None,
        false,
    )
    .await;
    app.sign_in(Role::Viewer).await;
    let users = paths::tenant_users(id.into());

    let first = body(app.get(&users).await).await;
    assert_eq!(rows(&first).len(), 50, "{first}");
    assert!(first.contains("Showing 1–50 of 64"), "{first}");
    assert!(first.contains("Synced from Entra ID") && first.contains("Sales Manager"));
    assert!(first.contains("+1 425 555 0100") && first.contains("(mobile)"));
    assert!(
        first.contains("aria-current=\"page\">Users"),
        "the Users tab is current"
    );
    let second = body(app.get(&format!("{users}?page=2")).await).await;
    assert_eq!(rows(&second).len(), 14);
    assert!(second.contains("Showing 51–64 of 64") && second.contains("rel=\"prev\""));

    let found = |q: &str| {
        let url = format!(
            "{users}?q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let app = &app;
        async move { rows(&body(app.get(&url).await).await) }
    };
    for q in ["adele.vance@contoso", "ADELE@CONTOSO-MAIL", "vance"] {
        let hits = found(q).await;
        assert_eq!(hits.len(), 1, "{q}: {hits:?}");
        assert!(hits[0].contains("Adele Vance"), "{q}");
    }
    // Another tenant's users never show; a wildcard is just a character.
    assert!(found("Elsewhere").await.is_empty());
    let percent = found("%").await;
    assert_eq!(percent.len(), 1, "{percent:?}");
    assert!(percent[0].contains("100% Support"));
    assert_eq!(found("staff_1").await.len(), 0, "_ is not a wildcard");
    assert_eq!(found("staff1").await.len(), 11, "staff1, staff10 … staff19");

    let gone = found("gone@").await;
    assert_eq!(gone.len(), 1);
    assert!(gone[0].contains("soft-deleted") && gone[0].contains("In recycle bin"));

    let none = body(app.get(&format!("{users}?q=nobody-at-all")).await).await;
    assert!(none.contains("No users match"), "{none}");

    // Filtered by account: disabled ones, those in the recycle bin, enabled ones with a search.
    sqlx::query("update directory_users set account_enabled = false where user_principal_name = 'alexw@contoso.example'")
        .execute(&app.db)
        .await
        .unwrap();
    let by_state = |state: &str, q: &str| {
        let url = format!("{users}?state={state}&q={q}");
        let app = &app;
        async move { rows(&body(app.get(&url).await).await) }
    };
    let disabled = by_state("disabled", "").await;
    assert_eq!(disabled.len(), 1);
    assert!(disabled[0].contains("Alex Wilber"));
    let deleted = by_state("deleted", "").await;
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].contains("Gone Person"));
    assert!(by_state("enabled", "alexw").await.is_empty());
    assert_eq!(by_state("enabled", "adele").await.len(), 1);
    let page = body(app.get(&format!("{users}?state=disabled")).await).await;
    assert!(
        page.contains("<option value=\"disabled\" selected>") && page.contains("Clear filters")
    );
    assert_eq!(
        by_state("sideways", "").await.len(),
        50,
        "junk means no filter"
    );
}

#[tokio::test]
async fn groups_show_member_counts_and_a_group_page_lists_its_members() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    mark_synced(&app, id).await;
    let adele = user(
        &app,
        id,
        "Adele Vance",
        "adele.vance@contoso.example",
        Some("adele@contoso-mail.example"),
        false,
    )
    .await;
    let alex = user(
        &app,
        id,
        "Alex Wilber",
        "alexw@contoso.example",
        None,
        false,
    )
    .await;
    let sales = group(&app, id, "Sales", Some("sales@contoso.example")).await;
    let sales_eu = group(&app, id, "Sales EU", None).await;
    group(&app, id, "Engineering", None).await;
    let not_yet = Uuid::new_v4();
    member(&app, id, sales, adele, "user").await;
    member(&app, id, sales, alex, "user").await;
    member(&app, id, sales, sales_eu, "group").await;
    member(&app, id, sales, not_yet, "device").await;
    member(&app, id, sales_eu, adele, "user").await;
    app.sign_in(Role::Viewer).await;

    let groups = body(app.get(&paths::tenant_groups(id.into())).await).await;
    let listed = rows(&groups);
    assert_eq!(listed.len(), 3, "{groups}");
    let sales_row = listed.iter().find(|r| r.contains(">Sales</a>")).unwrap();
    assert!(
        sales_row.contains("Mail-enabled security") && sales_row.contains("sales@contoso.example")
    );
    assert!(sales_row.contains("class=\"num\">4<"), "{sales_row}");
    assert!(groups.contains(&paths::tenant_group(id.into(), sales)));
    let searched = body(
        app.get(&format!("{}?q=eu", paths::tenant_groups(id.into())))
            .await,
    )
    .await;
    assert_eq!(rows(&searched).len(), 1);
    assert!(rows(&searched)[0].contains("Sales EU"));

    let page = body(app.get(&paths::tenant_group(id.into(), sales)).await).await;
    // Addresses carry word-break hints (`<wbr>`), read past here.
    let members: Vec<String> = rows(&page).iter().map(|r| r.replace("<wbr>", "")).collect();
    assert_eq!(members.len(), 4, "{page}");
    assert!(
        members[0].contains("Adele Vance") && members[0].contains("adele.vance@contoso.example")
    );
    assert!(members[1].contains("Alex Wilber"));
    assert!(
        members[2].contains("Sales EU")
            && members[2].contains(&paths::tenant_group(id.into(), sales_eu)),
        "a nested group links to its page"
    );
    assert!(
        members[3].contains("Not in the copy")
            && members[3].contains(&not_yet.to_string())
            && members[3].contains("Device"),
        "a member the copy does not hold shows by id and type: {}",
        members[3]
    );
    // Members are found by name, UPN, mail or object id.
    let group_url = paths::tenant_group(id.into(), sales);
    for (q, expected) in [
        ("wilber", "Alex Wilber"),
        ("adele.vance@", "Adele Vance"),
        ("sales eu", "Sales EU"),
        (&not_yet.to_string()[..], "Not in the copy"),
    ] {
        let found = rows(
            &body(
                app.get(&format!("{group_url}?q={q}").replace(' ', "+"))
                    .await,
            )
            .await,
        );
        assert_eq!(found.len(), 1, "{q}: {found:?}");
        assert!(found[0].contains(expected), "{q}: {}", found[0]);
    }
    let none = body(app.get(&format!("{group_url}?q=nobody")).await).await;
    assert!(none.contains("No members match"), "{none}");
    // Another tenant's id in the path finds nothing.
    let other = tenant(&app, "Fabrikam").await;
    assert_eq!(
        app.get(&paths::tenant_group(other.into(), sales))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&paths::tenant_group(id.into(), Uuid::new_v4()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_empty_copy_says_why() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    app.sign_in(Role::Admin).await;
    let users = paths::tenant_users(id.into());
    let page = body(app.get(&users).await).await;
    assert!(
        page.contains("Not synced yet") && !page.contains("role=\"search\""),
        "{page}"
    );
    app.post_form(&paths::sync_tenant(id.into()), &[]).await;
    let page = decoded(&body(app.get(&users).await).await);
    assert!(
        page.contains("Not synced yet — the first sync is queued"),
        "{page}"
    );
    let groups = decoded(&body(app.get(&paths::tenant_groups(id.into())).await).await);
    assert!(groups.contains("Not synced yet — the first sync is queued"));
    let runs = decoded(&body(app.get(&paths::tenant_runs(id.into())).await).await);
    assert!(
        runs.contains("No syncs yet — the first sync is queued"),
        "{runs}"
    );
    mark_synced(&app, id).await;
    let page = body(app.get(&users).await).await;
    assert!(page.contains("No users in this directory"), "{page}");
}

#[tokio::test]
async fn a_schedule_edit_is_saved_and_audited_and_bad_input_comes_back_with_its_error() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    app.sign_in(Role::Admin).await;
    let page_url = paths::tenant(id.into());
    let schedule_url = paths::sync_schedule(id.into());
    let page = body(app.get(&page_url).await).await;
    assert!(
        page.contains("Every hour") && page.contains("(the default)"),
        "{page}"
    );
    assert!(
        page.contains("Save schedule") && page.contains("Europe/Berlin"),
        "the zones are suggested"
    );

    let saved = app
        .post_form(
            &schedule_url,
            &[
                ("schedule_kind", "daily"),
                ("every_count", "1"),
                ("every_unit", "hours"),
                ("daily_at", "02:30"),
                ("daily_zone", "Europe/Berlin"),
            ],
        )
        .await;
    assert_eq!(
        location(saved).await,
        format!("{page_url}?done=schedule_saved")
    );
    let (stored, next): (Option<String>, Option<time::OffsetDateTime>) =
        sqlx::query_as("select sync_schedule, next_sync_at from tenants where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored.as_deref(), Some("daily 02:30 Europe/Berlin"));
    let next = next.expect("the next run is set");
    let now = time::OffsetDateTime::now_utc();
    assert!(
        next > now && next <= now + time::Duration::days(1),
        "{next}"
    );
    let page = decoded(&body(app.get(&format!("{page_url}?done=schedule_saved")).await).await);
    assert!(
        page.contains("Sync schedule saved")
            && page.contains("Daily at 02:30 (Europe/Berlin)")
            && page.contains(" 02:30 Europe/Berlin</time>)"),
        "the next run reads in the schedule's own zone: {page}"
    );
    assert!(!page.contains("(the default)"));
    assert_eq!(
        input_value(&page, "daily_zone").as_deref(),
        Some("Europe/Berlin")
    );
    let detail: Value = sqlx::query_scalar(
        "select detail from audit_events where tenant_id = $1 and action = 'sync.schedule_changed'",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(detail["from"], "every 1h (default)");
    assert_eq!(detail["to"], "daily 02:30 Europe/Berlin");
    assert!(
        page.contains("Sync schedule changed"),
        "the history shows it"
    );

    // Too often: refused, the input kept, the field marked and focused, nothing stored.
    let refused = app
        .post_form(
            &schedule_url,
            &[
                ("schedule_kind", "every"),
                ("every_count", "2"),
                ("every_unit", "minutes"),
                ("daily_at", "02:30"),
                ("daily_zone", "Europe/Berlin"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = decoded(&body(refused).await);
    assert!(
        page.contains("too often: the shortest interval is 5 minutes"),
        "{page}"
    );
    assert!(page.contains("href=\"#every_count\""));
    assert_eq!(input_value(&page, "every_count").as_deref(), Some("2"));
    assert!(
        page.contains("id=\"every_count\"")
            && page.contains("aria-describedby=\"every_count-error\"")
    );
    assert!(page.contains("<option value=\"minutes\" selected>"));

    // A unit the form does not offer is not read as hours: 30 seconds is refused as too often.
    let seconds = app
        .post_form(
            &schedule_url,
            &[
                ("schedule_kind", "every"),
                ("every_count", "30"),
                ("every_unit", "seconds"),
            ],
        )
        .await;
    assert_eq!(seconds.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = decoded(&body(seconds).await);
    assert!(
        page.contains("Every 30 seconds is too often: the shortest interval is 5 minutes."),
        "{page}"
    );

    let unknown_zone = app
        .post_form(
            &schedule_url,
            &[
                ("schedule_kind", "daily"),
                ("every_count", "1"),
                ("every_unit", "hours"),
                ("daily_at", "06:00"),
                ("daily_zone", "Mars/Olympus"),
            ],
        )
        .await;
    assert_eq!(unknown_zone.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = decoded(&body(unknown_zone).await);
    assert!(
        page.contains("\"Mars/Olympus\" is not a time zone"),
        "{page}"
    );
    assert_eq!(
        input_value(&page, "daily_zone").as_deref(),
        Some("Mars/Olympus")
    );
    assert_eq!(input_value(&page, "daily_at").as_deref(), Some("06:00"));

    let stored: Option<String> =
        sqlx::query_scalar("select sync_schedule from tenants where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("daily 02:30 Europe/Berlin"),
        "refused input stores nothing"
    );
    assert_eq!(audit_count(&app, id, "sync.schedule_changed").await, 1);

    let manual = app
        .post_form(&schedule_url, &[("schedule_kind", "manual")])
        .await;
    assert!(manual.status().is_redirection());
    let page = body(app.get(&page_url).await).await;
    assert!(page.contains("Manual only"));
}

#[tokio::test]
async fn viewers_can_neither_sync_nor_edit_the_schedule() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    app.sign_in(Role::Viewer).await;
    let page = body(app.get(&paths::tenant(id.into())).await).await;
    assert!(page.contains("Directory sync") && page.contains("Every hour"));
    assert!(
        !page.contains(">Sync now<") && !page.contains("Save schedule"),
        "no buttons for viewers"
    );
    let sync = app.post_form(&paths::sync_tenant(id.into()), &[]).await;
    assert_eq!(sync.status(), StatusCode::FORBIDDEN);
    let schedule = app
        .post_form(
            &paths::sync_schedule(id.into()),
            &[("schedule_kind", "manual")],
        )
        .await;
    assert_eq!(schedule.status(), StatusCode::FORBIDDEN);
    assert!(queued_sync_jobs(&app, id).await.is_empty());
    let stored: Option<String> =
        sqlx::query_scalar("select sync_schedule from tenants where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, None);
}

#[tokio::test]
async fn sync_now_queues_exactly_one_job_even_when_clicked_twice() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    app.sign_in(Role::Admin).await;
    let page_url = paths::tenant(id.into());
    let sync_url = paths::sync_tenant(id.into());
    assert!(body(app.get(&page_url).await).await.contains(">Sync now<"));

    let first = location(app.post_form(&sync_url, &[]).await).await;
    assert_eq!(first, format!("{page_url}?done=sync_queued"));
    let second = location(app.post_form(&sync_url, &[]).await).await;
    assert_eq!(second, format!("{page_url}?done=sync_already_queued"));
    let jobs = queued_sync_jobs(&app, id).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["trigger"], "manual");
    assert_eq!(audit_count(&app, id, "sync.requested").await, 2);

    let page = decoded(&body(app.get(&second).await).await);
    assert!(page.contains("A sync was already queued"), "{page}");
    assert!(page.contains("A sync is queued"));
    let page = body(app.get(&first).await).await;
    assert!(page.contains("Sync queued."));

    // Two clicks at once still make one job.
    sqlx::query("delete from jobs")
        .execute(&app.db)
        .await
        .unwrap();
    let (a, b) = tokio::join!(app.post_form(&sync_url, &[]), app.post_form(&sync_url, &[]));
    assert!(a.status().is_redirection() && b.status().is_redirection());
    assert_eq!(queued_sync_jobs(&app, id).await.len(), 1);

    // A tenant whose access stopped working is not synced: refused, nothing queued, and its
    // page says why.
    let stopped = tenant(&app, "Fabrikam").await;
    sqlx::query(
        "update tenants set status = 'reconsent_required',
                sync_error = 'The refresh token was revoked (AADSTS50173): the admin must consent again.'
         where id = $1",
    )
    .bind(stopped)
    .execute(&app.db)
    .await
    .unwrap();
    let refused = app
        .post_form(&paths::sync_tenant(stopped.into()), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(decoded(&body(refused).await).contains("consents again"));
    assert!(queued_sync_jobs(&app, stopped).await.is_empty());
    let page = decoded(&body(app.get(&paths::tenant(stopped.into())).await).await);
    assert!(
        page.contains("Consent needed again") && page.contains("AADSTS50173"),
        "{page}"
    );
    assert!(!page.contains(">Sync now<"));
}

#[tokio::test]
async fn the_progress_json_follows_a_running_sync() {
    let app = TestApp::spawn().await;
    let id = tenant(&app, "Contoso").await;
    let progress_url = paths::sync_progress(id.into());
    // Signed out: a status for the script, not a page.
    let anonymous = browser().get(app.url(&progress_url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    app.sign_in(Role::Viewer).await;
    let idle: Value = app.get(&progress_url).await.json().await.unwrap();
    assert_eq!(idle["running"], false);
    assert_eq!(idle["health"], "never_synced");
    assert!(idle["run"].is_null());
    let page_url = paths::tenant(id.into());
    assert!(
        body(app.get(&page_url).await)
            .await
            .contains("data-sync-phase=\"idle\""),
        "nothing to follow"
    );

    let run_id = run(&app, id, "running", None).await;
    let page = body(app.get(&page_url).await).await;
    assert!(
        page.contains(&format!("data-progress-url=\"{progress_url}\""))
            && page.contains(&format!("data-run-id=\"{run_id}\"")),
        "the page polls while a run runs"
    );
    assert!(page.contains("Syncing now") && page.contains("badge syncing"));
    let running: Value = app.get(&progress_url).await.json().await.unwrap();
    assert_eq!(running["running"], true);
    assert_eq!(running["health"], "syncing");
    assert_eq!(running["run"]["id"], run_id);
    assert_eq!(running["run"]["pages"], 3);
    assert_eq!(running["run"]["objects"], 124);
    assert_eq!(running["run"]["full_round"], true);
    assert!(running["run"]["elapsed_seconds"].as_i64().unwrap() >= 90);

    sqlx::query("update sync_runs set pages = 7, added = 400 where id = $1")
        .bind(run_id)
        .execute(&app.db)
        .await
        .unwrap();
    let later: Value = app.get(&progress_url).await.json().await.unwrap();
    assert_eq!(
        (
            later["run"]["pages"].as_i64(),
            later["run"]["objects"].as_i64()
        ),
        (Some(7), Some(404))
    );

    sqlx::query("update sync_runs set outcome = 'succeeded', finished_at = now() where id = $1")
        .bind(run_id)
        .execute(&app.db)
        .await
        .unwrap();
    mark_synced(&app, id).await;
    let done: Value = app.get(&progress_url).await.json().await.unwrap();
    assert_eq!(done["running"], false);
    assert_eq!(done["health"], "synced");
    assert!(done["last_success_at"].is_string());

    // The finished run is in the history, with what it did.
    let runs = rows(&body(app.get(&paths::tenant_runs(id.into())).await).await);
    assert_eq!(runs.len(), 1);
    for expected in [
        "Schedule",
        "Full",
        "Succeeded",
        "400 added",
        "4 updated",
        "1 wait, 2.5 s",
    ] {
        assert!(runs[0].contains(expected), "{expected} in {}", runs[0]);
    }

    // The next full round is measured against the last one: "N of about M objects".
    let next = run(&app, id, "running", None).await;
    let following: Value = app.get(&progress_url).await.json().await.unwrap();
    assert_eq!(following["phase"], "running");
    assert_eq!(following["run"]["id"], next);
    assert_eq!(following["run"]["expected_objects"], 404);
    let page = body(app.get(&page_url).await).await;
    assert!(
        page.contains("<span data-progress=\"objects\">124</span> of about 404 objects"),
        "{page}"
    );
    assert!(page.contains("<progress max=\"404\" value=\"124\""));

    assert_eq!(
        app.get(&paths::sync_progress(Uuid::new_v4().into()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_tenants_list_shows_each_sync_and_a_missing_permission_is_shown_prominently() {
    let app = TestApp::spawn().await;
    let synced = tenant(&app, "Synced Corp").await;
    mark_synced(&app, synced).await;
    for n in 0..3 {
        user(
            &app,
            synced,
            &format!("Person {n}"),
            &format!("p{n}@synced.example"),
            None,
            false,
        )
        .await;
    }
    user(
        &app,
        synced,
        "Deleted Person",
        "gone@synced.example",
        None,
        true,
    )
    .await;
    group(&app, synced, "Everyone", None).await;
    let failing = tenant(&app, "Failing Corp").await;
    let missing =
        "User.Read.All is required to read the directory: an admin must grant it to the app.";
    sqlx::query("update tenants set sync_failures = 3, sync_error = $2 where id = $1")
        .bind(failing)
        .bind(missing)
        .execute(&app.db)
        .await
        .unwrap();
    run(&app, failing, "failed", Some(missing)).await;
    let retrying = tenant(&app, "Retrying Corp").await;
    mark_synced(&app, retrying).await;
    sqlx::query(
        "update tenants set sync_failures = 1, sync_error = 'Graph answered 503' where id = $1",
    )
    .bind(retrying)
    .execute(&app.db)
    .await
    .unwrap();
    let consent_needed = tenant(&app, "Revoked Corp").await;
    sqlx::query("update tenants set status = 'reconsent_required', sync_error = 'Consent was revoked' where id = $1")
        .bind(consent_needed)
        .execute(&app.db)
        .await
        .unwrap();
    tenant(&app, "New Corp").await;
    let syncing = tenant(&app, "Busy Corp").await;
    run(&app, syncing, "running", None).await;
    app.sign_in(Role::Viewer).await;

    let list = rows(&body(app.get(paths::TENANTS).await).await);
    let row = |name: &str| {
        list.iter()
            .find(|r| r.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {list:?}"))
            .clone()
    };
    let synced_row = row("Synced Corp");
    assert!(synced_row.contains("badge synced\">Synced"), "{synced_row}");
    assert!(
        synced_row.contains("20 minutes ago") && synced_row.contains("in 40 minutes"),
        "{synced_row}"
    );
    assert!(
        synced_row.contains("data-label=\"Users\" class=\"num\">3<"),
        "soft-deleted users are not counted: {synced_row}"
    );
    assert!(synced_row.contains("data-label=\"Groups\" class=\"num\">1<"));
    let failing_row = row("Failing Corp");
    assert!(
        failing_row.contains("Failing") && failing_row.contains("User.Read.All is required"),
        "{failing_row}"
    );
    let retrying_row = row("Retrying Corp");
    assert!(
        retrying_row.contains("badge retrying") && retrying_row.contains("The last attempt failed"),
        "{retrying_row}"
    );
    assert!(row("Revoked Corp").contains("Consent needed again"));
    assert!(row("New Corp").contains("Never synced") && row("New Corp").contains(">never<"));
    assert!(row("Busy Corp").contains("badge syncing"));

    let page = decoded(&body(app.get(&paths::tenant(failing.into())).await).await);
    let notice_at = page
        .find("notice bad sync-error")
        .expect("the error is a notice");
    let notice = &page[notice_at..notice_at + 400];
    assert!(
        notice.contains("<strong>The last 3 syncs failed.</strong>") && notice.contains(missing),
        "{notice}"
    );
    assert!(page.contains("badge failing") && page.contains("run-error"));
}
