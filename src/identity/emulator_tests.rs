//! The client against the real emulator over loopback: the flows Gangway's callback relies on,
//! end to end (sign-in and consent pages are driven by plain form posts).

use std::collections::HashMap;

use serde_json::Value;
use url::Url;

use super::*;
use crate::graph::GraphClient;

const CLIENT_ID: &str = "3f8c2a1e-5b6d-4c7e-9f0a-1b2c3d4e5f60";
const SECRET: &str = "provider-s3cret";
const REDIRECT: &str = "http://127.0.0.1:9/authenticate/OAuth2Callback";

struct Login {
    tenant: TenantId,
    admin: (String, String),
    member: (String, String),
}

fn ctx_of(html: &str) -> String {
    let marker = r#"name="ctx" value=""#;
    let i = html
        .find(marker)
        .unwrap_or_else(|| panic!("no ctx in {html}"));
    let rest = &html[i + marker.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Follows the emulator's sign-in (and consent, if asked) and returns the callback URL.
async fn sign_in(http: &reqwest::Client, base: &str, start: &Url, who: &(String, String)) -> Url {
    let html = http.get(start.clone()).send().await.unwrap();
    let ctx = ctx_of(&html.text().await.unwrap());
    let resp = http
        .post(format!("{base}/organizations/login"))
        .form(&[("ctx", &ctx), ("login", &who.0), ("passwd", &who.1)])
        .send()
        .await
        .unwrap();
    let resp = if resp.status().is_redirection() {
        resp
    } else {
        let ctx = ctx_of(&resp.text().await.unwrap());
        http.post(format!("{base}/organizations/consent"))
            .form(&[("ctx", ctx.as_str()), ("decision", "accept")])
            .send()
            .await
            .unwrap()
    };
    assert!(resp.status().is_redirection(), "{}", resp.status());
    Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn login(t: &Value) -> Login {
    let pair = |v: &Value| {
        (
            v["username"].as_str().unwrap().to_owned(),
            v["password"].as_str().unwrap().to_owned(),
        )
    };
    Login {
        tenant: TenantId::parse(t["id"].as_str().unwrap()).unwrap(),
        admin: pair(&t["admin"]),
        member: pair(&t["member"]),
    }
}

/// The emulator with `tenants` tenants and the app registered, its base URL, a client that does
/// not follow redirects, and its tenants as the admin API lists them.
async fn start_emulator(
    tenants: usize,
) -> (entra_emulator::Emulator, String, reqwest::Client, Value) {
    let opts = entra_emulator::Options {
        tenants,
        users: 3,
        app_client_id: Some(CLIENT_ID.into()),
        app_client_secret: Some(SECRET.into()),
        app_redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    };
    let emu = entra_emulator::Emulator::start(opts).await.unwrap();
    let base = emu.base_url().to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tenants: Value = http
        .get(format!("{base}/_emulator/tenants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (emu, base, http, tenants)
}

#[tokio::test]
async fn flows_against_the_emulator() {
    let (emu, base, http, tenants) = start_emulator(3).await;
    let (delegated, application) = (login(&tenants[1]), login(&tenants[2]));
    // ID tokens name the signer's directory roles only when the registration asks for them.
    http.patch(format!("{base}/_emulator/apps/{CLIENT_ID}"))
        .json(&serde_json::json!({"group_membership_claims": "DirectoryRole"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    let entra = EntraClient::new(
        EntraConfig {
            authority: Url::parse(&base).unwrap(),
            graph_url: Url::parse(&base).unwrap(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(SECRET)),
            redirect_uri: Url::parse(REDIRECT).unwrap(),
        },
        http.clone(),
    );
    let graph = GraphClient::new(Url::parse(&base).unwrap(), http.clone());

    // Delegated consent by the global admin.
    let req = entra.delegated_request(
        &["User.Read.All", "Organization.Read.All"],
        Some(&delegated.admin.0),
    );
    let q = query(&sign_in(&http, &base, &req.url, &delegated.admin).await);
    assert_eq!(q["state"], req.state);
    let grant = entra
        .redeem_code(&req.authority, &q["code"], &req.pkce_verifier, &req.nonce)
        .await
        .unwrap();
    assert_eq!(grant.identity.tenant_id, delegated.tenant);
    assert_eq!(grant.identity.global_admin, RoleClaim::Holds);
    assert_eq!(grant.identity.username, delegated.admin.0);
    assert!(
        grant
            .scopes
            .contains(&"https://graph.microsoft.com/User.Read.All".to_owned())
    );
    assert_eq!(
        graph.organization(&grant.access_token).await.unwrap().id,
        delegated.tenant
    );
    graph.probe_users(&grant.access_token).await.unwrap();

    let reused = entra
        .redeem_code(&req.authority, &q["code"], &req.pkce_verifier, &req.nonce)
        .await
        .unwrap_err();
    assert_eq!(reused.aad_kind(), Some(AadErrorKind::CodeExpiredOrReused));

    let refreshed = entra
        .refresh(
            &delegated.tenant,
            grant.refresh_token.as_ref().unwrap(),
            &[],
        )
        .await
        .unwrap();
    assert!(refreshed.refresh_token.is_some());

    // Signing key rotated at the emulator: the unknown kid triggers one refetch.
    http.post(format!("{base}/_emulator/keys/rotate"))
        .send()
        .await
        .unwrap();
    let req = entra.delegated_request(&["User.Read.All"], None);
    let q = query(&sign_in(&http, &base, &req.url, &delegated.admin).await);
    entra
        .redeem_code(&req.authority, &q["code"], &req.pkce_verifier, &req.nonce)
        .await
        .unwrap();

    // A verifier that does not match the challenge.
    let req = entra.delegated_request(&["User.Read.All"], None);
    let q = query(&sign_in(&http, &base, &req.url, &delegated.admin).await);
    let err = entra
        .redeem_code(&req.authority, &q["code"], &"x".repeat(43), &req.nonce)
        .await
        .unwrap_err();
    assert_eq!(err.aad_kind(), Some(AadErrorKind::PkceMismatch));

    // A plain member signing in is not a global admin.
    let req = entra.delegated_request(&["User.Read"], None);
    let q = query(&sign_in(&http, &base, &req.url, &delegated.member).await);
    let member = entra
        .redeem_code(&req.authority, &q["code"], &req.pkce_verifier, &req.nonce)
        .await
        .unwrap();
    // No role, so no `wids` at all: the token says nothing either way.
    assert_eq!(member.identity.global_admin, RoleClaim::Unstated);

    // Application consent: no token before, a working one after.
    let before = entra
        .app_token(&application.tenant, None)
        .await
        .unwrap_err();
    assert_eq!(before.aad_kind(), Some(AadErrorKind::AppNotFoundInTenant));
    let ac = entra.admin_consent_request();
    let q = query(&sign_in(&http, &base, &ac.url, &application.admin).await);
    assert_eq!(q["state"], ac.state);
    assert_eq!(q["admin_consent"], "True");
    let token = entra.app_token(&application.tenant, None).await.unwrap();
    assert_eq!(
        graph.organization(&token).await.unwrap().id,
        application.tenant
    );
    graph.probe_users(&token).await.unwrap();

    // Customer-app style credentials that are wrong, and a tenant that does not exist.
    let wrong = Secret::new("not-the-secret");
    let err = entra
        .app_token(&application.tenant, Some((CLIENT_ID, &wrong)))
        .await
        .unwrap_err();
    assert_eq!(err.aad_kind(), Some(AadErrorKind::BadSecret));
    let nowhere = TenantId::parse("00000000-0000-4000-8000-000000000001").unwrap();
    let err = entra.app_token(&nowhere, None).await.unwrap_err();
    assert_eq!(err.aad_kind(), Some(AadErrorKind::UnknownTenant));

    emu.shutdown().await;
}

const OPERATOR_CALLBACK: &str = "http://127.0.0.1:9/console/sso/callback";

#[tokio::test]
async fn operator_sign_in_against_the_emulator() {
    let opts = entra_emulator::Options {
        tenants: 2,
        users: 3,
        app_client_id: Some(CLIENT_ID.into()),
        app_client_secret: Some(SECRET.into()),
        app_redirect_uris: vec![REDIRECT.into(), OPERATOR_CALLBACK.into()],
        ..Default::default()
    };
    let emu = entra_emulator::Emulator::start(opts).await.unwrap();
    let base = emu.base_url().to_owned();
    let admin = entra_emulator::EmulatorAdmin::new(&emu).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tenants: Value = http
        .get(format!("{base}/_emulator/tenants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (home, other) = (login(&tenants[0]), login(&tenants[1]));
    let member_id = tenants[0]["member"]["id"].as_str().unwrap().to_owned();
    let patch = http
        .patch(format!("{base}/_emulator/apps/{CLIENT_ID}"))
        .json(&serde_json::json!({
            "group_membership_claims": "SecurityGroup",
            "app_roles": [{"value": "Gangway.Admin", "id": "8a4e4c9e-2f7c-4d55-9a2b-6c2f1c0d3e41", "allowedMemberTypes": ["User"]}],
        }))
        .send()
        .await
        .unwrap();
    assert!(patch.status().is_success());
    let group = admin
        .post(
            &format!("/_emulator/tenants/{}/groups", home.tenant),
            &serde_json::json!({"displayName": "Gangway operators", "members": [member_id]}),
        )
        .await
        .unwrap();
    admin
        .post(
            &format!(
                "/_emulator/tenants/{}/apps/{CLIENT_ID}/role-assignments",
                home.tenant
            ),
            &serde_json::json!({"user": home.member.0, "role": "Gangway.Admin"}),
        )
        .await
        .unwrap();

    let entra = EntraClient::new(
        EntraConfig {
            authority: Url::parse(&base).unwrap(),
            graph_url: Url::parse(&base).unwrap(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(SECRET)),
            redirect_uri: Url::parse(REDIRECT).unwrap(),
        },
        http.clone(),
    );
    let callback = Url::parse(OPERATOR_CALLBACK).unwrap();
    let req = entra.operator_sign_in_request(&home.tenant, &callback);
    let back = sign_in(&http, &base, &req.url, &home.member).await;
    assert!(back.as_str().starts_with(OPERATOR_CALLBACK), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], req.state);
    let who = entra
        .redeem_operator_code(
            &home.tenant,
            &callback,
            &q["code"],
            &req.pkce_verifier,
            &req.nonce,
        )
        .await
        .unwrap();
    assert_eq!(who.tid, home.tenant);
    assert_eq!(who.oid.to_string(), member_id);
    assert_eq!(who.username, home.member.0);
    // Seeded security groups may hold the member too.
    assert!(
        who.groups
            .contains(&Uuid::parse_str(group["id"].as_str().unwrap()).unwrap()),
        "{:?}",
        who.groups
    );
    assert_eq!(who.roles, ["Gangway.Admin"]);
    assert!(who.sid.is_some());

    // Someone of another tenant cannot even sign in at the provider's tenant.
    let req = entra.operator_sign_in_request(&home.tenant, &callback);
    let page = http.get(req.url.clone()).send().await.unwrap();
    let ctx = ctx_of(&page.text().await.unwrap());
    let refused = http
        .post(format!("{base}/{}/login", home.tenant))
        .form(&[
            ("ctx", ctx.as_str()),
            ("login", &other.admin.0),
            ("passwd", &other.admin.1),
        ])
        .send()
        .await
        .unwrap();
    assert!(refused.text().await.unwrap().contains("AADSTS50034"));

    // A code of the other tenant is no use at the provider's token endpoint.
    let req = entra.operator_sign_in_request(&other.tenant, &callback);
    let q = query(&sign_in(&http, &base, &req.url, &other.admin).await);
    let err = entra
        .redeem_operator_code(
            &home.tenant,
            &callback,
            &q["code"],
            &req.pkce_verifier,
            &req.nonce,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, OperatorSignInError::Identity(IdentityError::Aad(_))),
        "{err:?}"
    );

    emu.shutdown().await;
}

#[tokio::test]
async fn a_code_is_redeemed_at_the_authority_its_sign_in_was_requested_on() {
    let (emu, base, http, tenants) = start_emulator(2).await;
    let customer = login(&tenants[1]);
    let entra = EntraClient::new(
        EntraConfig {
            authority: Url::parse(&base).unwrap(),
            graph_url: Url::parse(&base).unwrap(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(SECRET)),
            redirect_uri: Url::parse(REDIRECT).unwrap(),
        },
        http.clone(),
    );

    // The sign-in that binds an admin consent goes to the consenting tenant itself.
    let req = entra.admin_sign_in_request(&customer.tenant, None, false);
    assert_eq!(req.authority, customer.tenant.to_string());
    let q = query(&sign_in(&http, &base, &req.url, &customer.admin).await);
    // Entra ID refuses its code anywhere else (AADSTS700005)…
    let elsewhere = entra
        .redeem_code("organizations", &q["code"], &req.pkce_verifier, &req.nonce)
        .await
        .unwrap_err();
    match elsewhere {
        IdentityError::Aad(e) => assert_eq!(e.code(), Some(700005), "{e:?}"),
        other => panic!("{other:?}"),
    }
    // …and takes it where it was requested.
    let grant = entra
        .redeem_code(&req.authority, &q["code"], &req.pkce_verifier, &req.nonce)
        .await
        .unwrap();
    assert_eq!(grant.identity.tenant_id, customer.tenant);

    // A delegated sign-in goes to `organizations`, and is redeemed there.
    let req = entra.delegated_request(&["User.Read"], None);
    assert_eq!(req.authority, "organizations");
    emu.shutdown().await;
}
