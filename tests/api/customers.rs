//! Customers as records through the console: picking an existing customer resolves the
//! "another customer" refusal, a customer's page lists what it owns, and its form validates.

use gangway::audit::Actor;
use gangway::operators::Role;
use gangway::tenants;
use gangway::web::paths;
use reqwest::StatusCode;
use url::Url;
use uuid::Uuid;

use crate::helpers::{Decision, TestApp, consent, input_value, location};
use crate::wizard::{Customer, tenant_count};

/// `html` with the entities askama writes decoded, for asserting on text.
pub fn decoded(html: &str) -> String {
    html.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
}

/// The opening tag of the element with `id` in `html`.
pub fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

async fn body(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

/// Creates an invitation through the console form and returns its link.
async fn invite_through_the_console(app: &TestApp, customer: &str, email: &str) -> Url {
    let response = app
        .post_and_follow(
            paths::NEW_INVITATION,
            &[
                ("customer_name", customer),
                ("admin_email", email),
                ("mode", "delegated"),
                ("tenant_domain", ""),
                ("valid_for", "7d"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = body(response).await;
    Url::parse(&input_value(&page, "invitation_link").expect("the link is shown")).unwrap()
}

async fn invitation_id_by_link(app: &TestApp, link: &Url) -> Uuid {
    let token = link
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let token = gangway::invitations::InvitationToken::parse(&token).unwrap();
    sqlx::query_scalar("select id from invitations where token_sha256 = $1")
        .bind(token.hash())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn customer_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from customers")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_misspelt_customer_is_refused_until_the_operator_picks_the_existing_customer() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let tenant = app.customer(0).clone();

    // Contoso Ltd connects its tenant.
    let first = invite_through_the_console(&app, "Contoso Ltd", &tenant.admin.username).await;
    let admin = Customer::open(&app, &first).await;
    let (_, done) = admin.consent(&app, &tenant.admin, Decision::Accept).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(tenant_count(&app).await, 1);

    // A second invitation names the customer with a typo: a new record, so it is refused.
    let typo = invite_through_the_console(&app, "Contoso (typo)", &tenant.admin.username).await;
    assert_eq!(customer_count(&app).await, 2);
    let admin = Customer::open(&app, &typo).await;
    let (_, refused) = admin.consent(&app, &tenant.admin, Decision::Accept).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(body(refused).await.contains("already connected"));

    // The operator's page for it says who owns the tenant and links owner, tenant and Offboard.
    let typo_id = invitation_id_by_link(&app, &typo).await;
    let (tenant_id, owner_id): (Uuid, Uuid) = sqlx::query_as("select id, customer_id from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let page = body(app.get(&paths::invitation(typo_id.into())).await).await;
    let owner_url = paths::customer(owner_id.into());
    let tenant_url = paths::tenant(tenant_id.into());
    for href in [
        owner_url.clone(),
        tenant_url.clone(),
        format!("{tenant_url}#offboard"),
    ] {
        assert!(
            page.contains(&format!("href=\"{href}\"")),
            "{href} in {page}"
        );
    }
    assert!(page.contains("already connected for another customer"));
    let tenant_page = body(app.get(&tenant_url).await).await;
    assert!(
        tenant_page.contains("id=\"offboard\"") && tenant_page.contains("Offboard tenant"),
        "the link lands on the Offboard action"
    );

    // The operator picks the existing record: the form offers it, any case matches it.
    let form = body(app.get(paths::NEW_INVITATION).await).await;
    assert!(
        form.contains("list=\"customer-names\"") && form.contains("<option value=\"Contoso Ltd\">"),
        "{form}"
    );
    let again = invite_through_the_console(&app, "CONTOSO LTD", &tenant.admin.username).await;
    assert_eq!(customer_count(&app).await, 2, "no third customer");
    let again_id = invitation_id_by_link(&app, &again).await;
    let picked: Uuid = sqlx::query_scalar("select customer_id from invitations where id = $1")
        .bind(again_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(picked, owner_id);
    let admin = Customer::open(&app, &again).await;
    let (_, done) = admin.consent(&app, &tenant.admin, Decision::Accept).await;
    assert_eq!(done.status(), StatusCode::OK);
    let status: String = sqlx::query_scalar("select status from invitations where id = $1")
        .bind(again_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "consented");
    assert_eq!(tenant_count(&app).await, 1);
}

#[tokio::test]
async fn the_conflict_page_offers_an_invitation_for_the_owning_customer_filled_in() {
    let app = TestApp::spawn().await;
    let entra_id = Uuid::new_v4();
    let first = app.invite("delegated", "admin@contoso.example", None).await;
    tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        first.invitation.id,
        &consent(entra_id),
        &Actor::System,
    )
    .await
    .unwrap();
    let typo = app
        .invite_for(
            "Contoso (typo)",
            "application",
            "admin@contoso.example",
            Some("contoso.example"),
        )
        .await;
    let refused = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        typo.invitation.id,
        &consent(entra_id),
        &Actor::System,
    )
    .await;
    assert!(matches!(
        refused,
        Err(tenants::ConsentError::OwnedByAnother { .. })
    ));

    app.sign_in(Role::Admin).await;
    let page = decoded(&body(app.get(&paths::invitation(typo.invitation.id)).await).await);
    let at = page
        .find("invite them again as Contoso Ltd")
        .expect("the fix is offered");
    let href_at = page[..at].rfind("href=\"").unwrap() + 6;
    let href = &page[href_at..href_at + page[href_at..].find('"').unwrap()];
    let form = body(app.get(href).await).await;
    assert_eq!(
        input_value(&form, "customer_name").as_deref(),
        Some("Contoso Ltd")
    );
    assert_eq!(
        input_value(&form, "admin_email").as_deref(),
        Some("admin@contoso.example")
    );
    assert_eq!(
        input_value(&form, "tenant_domain").as_deref(),
        Some("contoso.example")
    );
    assert!(form.contains("value=\"application\" checked"));

    // Once the tenant is offboarded the conflict is gone from the page.
    let tenant_id: Uuid = sqlx::query_scalar("select id from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    tenants::offboard(&app.db, tenant_id, &Actor::Cli)
        .await
        .unwrap();
    let page = body(app.get(&paths::invitation(typo.invitation.id)).await).await;
    assert!(!page.contains("already connected for another customer"));
}

#[tokio::test]
async fn a_customer_page_lists_its_invitations_and_tenants_and_admins_edit_its_details() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let created = app
        .post_form(
            paths::NEW_CUSTOMER,
            &[
                ("name", "Northwind Traders"),
                ("contact", "Jo Smith, IT"),
                ("notes", "Renewal in March.\nPrefers email."),
            ],
        )
        .await;
    let to = location(created).await;
    assert!(to.ends_with("?done=created"), "{to}");
    let id: Uuid = sqlx::query_scalar("select id from customers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(to, format!("{}?done=created", paths::customer(id.into())));

    let mine = app
        .invite_for(
            "northwind traders",
            "delegated",
            "admin@northwind.example",
            None,
        )
        .await;
    let open = app
        .invite_for(
            "Northwind Traders",
            "application",
            "it@northwind.example",
            None,
        )
        .await;
    let other = app
        .invite_for("Fabrikam Inc", "delegated", "admin@fabrikam.example", None)
        .await;
    let entra_id = Uuid::new_v4();
    let tenant_id = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        mine.invitation.id,
        &tenants::Consent {
            display_name: "Northwind EU".into(),
            ..consent(entra_id)
        },
        &Actor::System,
    )
    .await
    .unwrap();

    let page = body(app.get(&paths::customer(id.into())).await).await;
    assert!(page.contains("Jo Smith, IT") && page.contains("Renewal in March."));
    assert!(page.contains(&paths::invitation(mine.invitation.id)));
    assert!(page.contains(&paths::invitation(open.invitation.id)));
    assert!(
        !page.contains(&paths::invitation(other.invitation.id)),
        "another customer's invitation is not listed"
    );
    assert!(page.contains(&paths::tenant(tenant_id.into())) && page.contains("Northwind EU"));
    assert!(page.contains(&entra_id.to_string()));
    // The tenant's page and the invitation's page link back to the customer.
    let customer_url = paths::customer(id.into());
    for path in [
        paths::tenant(tenant_id.into()),
        paths::invitation(open.invitation.id),
    ] {
        assert!(
            body(app.get(&path).await).await.contains(&customer_url),
            "{path}"
        );
    }

    // The invitations list narrows to one customer.
    let only = body(
        app.get(&format!("{}?customer={id}", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(only.contains("Showing 1–2 of 2") && !only.contains("admin@fabrikam.example"));
    assert!(only.contains("Only the invitations of <strong>Northwind Traders</strong>"));

    // The list finds it by name or contact, with what it owns.
    let list = body(app.get(&format!("{}?q=jo+smith", paths::CUSTOMERS)).await).await;
    assert!(list.contains("Northwind Traders") && !list.contains("Fabrikam Inc"));
    assert!(list.contains("Showing 1–1 of 1"));

    // Admins edit the details; every change is audited.
    let edit = paths::edit_customer(id.into());
    let form = body(app.get(&edit).await).await;
    assert_eq!(
        input_value(&form, "contact").as_deref(),
        Some("Jo Smith, IT")
    );
    let saved = app
        .post_form(
            &edit,
            &[
                ("name", "Northwind Traders"),
                ("contact", "Sam Lee"),
                ("notes", "Renewed."),
            ],
        )
        .await;
    let to = location(saved).await;
    let page = body(app.get(&to).await).await;
    assert!(page.contains("Customer details saved") && page.contains("Sam Lee"));
    assert!(!page.contains("Jo Smith"));
    let audit = body(app.get(paths::AUDIT).await).await;
    assert!(audit.contains("customer.created") && audit.contains("customer.updated"));

    // Viewers read, but may not edit.
    app.sign_in(Role::Viewer).await;
    let page = body(app.get(&paths::customer(id.into())).await).await;
    assert!(page.contains("Sam Lee") && !page.contains(&edit));
    assert_eq!(app.get(&edit).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.post_form(&edit, &[("name", "Hijacked")]).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&paths::customer(Uuid::new_v4().into()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn customer_names_are_unique_regardless_of_case_and_problems_read_as_sentences() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    app.invite("delegated", "admin@contoso.example", None).await;

    let response = app
        .post_form(
            paths::NEW_CUSTOMER,
            &[("name", "  "), ("contact", "line\u{1}break"), ("notes", "")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = decoded(&body(response).await);
    assert!(page.contains("Enter the customer's name."), "{page}");
    assert!(page.contains("The contact must not contain control characters"));
    assert!(
        tag_with_id(&page, "name").contains("autofocus"),
        "the first invalid field is focused"
    );
    assert!(!tag_with_id(&page, "contact").contains("autofocus"));

    let response = app
        .post_form(
            paths::NEW_CUSTOMER,
            &[("name", "CONTOSO LTD"), ("contact", "Ann")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = decoded(&body(response).await);
    assert!(
        page.contains("A customer named \"CONTOSO LTD\" already exists"),
        "{page}"
    );
    assert_eq!(
        input_value(&page, "contact").as_deref(),
        Some("Ann"),
        "input is kept"
    );
    assert_eq!(customer_count(&app).await, 1);

    let long_notes = "n".repeat(2001);
    let response = app
        .post_form(
            paths::NEW_CUSTOMER,
            &[("name", "Fabrikam"), ("notes", &long_notes)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = body(response).await;
    assert!(page.contains("The notes must be at most 2,000 characters."));
    assert!(tag_with_id(&page, "notes").contains("autofocus"));
}

#[tokio::test]
async fn an_empty_customer_list_shows_one_call_to_action() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let page = body(app.get(paths::CUSTOMERS).await).await;
    assert!(page.contains("No customers yet"), "{page}");
    assert_eq!(
        page.matches(&format!("href=\"{}\"", paths::NEW_CUSTOMER))
            .count(),
        1,
        "one call to action"
    );
    assert!(
        !page.contains("role=\"search\""),
        "no filters on an empty list"
    );

    app.invite("delegated", "admin@contoso.example", None).await;
    let page = body(app.get(paths::CUSTOMERS).await).await;
    assert!(page.contains("Contoso Ltd") && page.contains("role=\"search\""));
    let none = body(app.get(&format!("{}?q=zzz", paths::CUSTOMERS)).await).await;
    assert!(none.contains("No customers match"), "{none}");
}
