//! Access tokens for the provider's exposed API: what is accepted and every refusal.

use super::*;
use crate::identity::access_token::{ApiExpected, validate as validate_api};

/// Claims as Entra ID v2 puts them in an access token for the API, on behalf of a user.
fn user_claims() -> Value {
    json!({
        "aud": CLIENT_ID,
        "iss": format!("{AUTHORITY}/{TID}/v2.0"),
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "ver": "2.0",
        "tid": TID,
        "oid": OID,
        "sub": "Zq3cLPF7XnHhZ1W0c8fI5p0E9nC0iN2oX3D4n6m7b8Q",
        "azp": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        "scp": "Gangway.Manage Reports.Read",
        "upn": "ada@contoso.onmicrosoft.com",
        "preferred_username": "ada.pref@contoso.onmicrosoft.com",
        "groups": ["3b1e0c4e-7a55-4f0e-9a51-0d6f2a3c9b10", "not-a-guid"],
        "roles": ["Gangway.Admin"],
    })
}

/// An app-only (client credentials) token: `roles`, no `scp`.
fn app_claims() -> Value {
    with(user_claims(), |c| {
        c.remove("scp");
        c.remove("upn");
        c.remove("preferred_username");
        c.remove("groups");
        c.insert("roles".into(), json!(["Gangway.Read"]));
        c.insert("idtyp".into(), json!("app"));
    })
}

fn api_check(token: &str) -> Result<ApiIdentity, ApiTokenProblem> {
    api_check_with(token, &ms_jwks())
}

fn api_check_with(token: &str, jwks: &Jwks) -> Result<ApiIdentity, ApiTokenProblem> {
    let expected = ApiExpected {
        authority: AUTHORITY,
        tenant: TenantId::parse(TID).unwrap(),
        client_id: CLIENT_ID,
    };
    validate_api(token, jwks, &expected, now())
}

fn signed(claims: &Value) -> String {
    sign(&key(SIGNING_PEM, "kid-1"), &header("kid-1"), claims)
}

#[test]
fn accepts_a_users_token_with_the_scope() {
    let who = api_check(&signed(&user_claims())).unwrap();
    assert!(who.is_delegated());
    assert_eq!(who.name, "ada@contoso.onmicrosoft.com", "upn first");
    assert_eq!(who.oid.to_string(), OID);
    assert_eq!(who.scp, ["Gangway.Manage", "Reports.Read"]);
    assert_eq!(who.roles, ["Gangway.Admin"]);
    assert_eq!(
        who.groups,
        [uuid::Uuid::parse_str("3b1e0c4e-7a55-4f0e-9a51-0d6f2a3c9b10").unwrap()]
    );
    assert!(!who.groups_overage);

    let no_upn = with(user_claims(), |c| {
        c.remove("upn");
    });
    assert_eq!(
        api_check(&signed(&no_upn)).unwrap().name,
        "ada.pref@contoso.onmicrosoft.com"
    );
    let overage = with(user_claims(), |c| {
        c.remove("groups");
        c.insert("_claim_names".into(), json!({"groups": "src1"}));
    });
    assert!(api_check(&signed(&overage)).unwrap().groups_overage);
}

#[test]
fn accepts_an_apps_token_with_a_role_named_by_its_app_id() {
    let who = api_check(&signed(&app_claims())).unwrap();
    assert!(!who.is_delegated());
    assert_eq!(who.name, "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f");
    assert_eq!(who.roles, ["Gangway.Read"]);
}

#[test]
fn refuses_tokens_without_the_scope_or_a_role() {
    let other_scope = with(user_claims(), |c| {
        c.insert("scp".into(), json!("Reports.Read"));
    });
    assert_eq!(
        api_check(&signed(&other_scope)),
        Err(ApiTokenProblem::MissingScope)
    );
    let no_roles = with(app_claims(), |c| {
        c.remove("roles");
    });
    assert_eq!(
        api_check(&signed(&no_roles)),
        Err(ApiTokenProblem::MissingScope)
    );
}

#[test]
fn refuses_other_signers_algorithms_and_tampering() {
    let forged = sign(
        &key(ATTACKER_PEM, "kid-1"),
        &header("kid-1"),
        &user_claims(),
    );
    assert_eq!(api_check(&forged), Err(ApiTokenProblem::BadSignature));
    let unknown = sign(&key(SIGNING_PEM, "kid-9"), &header("kid-9"), &user_claims());
    assert_eq!(api_check(&unknown), Err(ApiTokenProblem::UnknownKey));
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "kid-1"})
            .to_string()
            .as_bytes()),
        b64(user_claims().to_string().as_bytes())
    );
    assert_eq!(api_check(&none), Err(ApiTokenProblem::AlgorithmNotAllowed));
    let hs = sign(
        &key(SIGNING_PEM, "kid-1"),
        &json!({"alg": "HS256", "kid": "kid-1"}),
        &user_claims(),
    );
    assert_eq!(api_check(&hs), Err(ApiTokenProblem::AlgorithmNotAllowed));
    let good = signed(&user_claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = b64(with(user_claims(), |c| {
        c.insert("scp".into(), json!("Gangway.Manage Everything"));
    })
    .to_string()
    .as_bytes());
    parts[1] = &tampered_payload;
    assert_eq!(
        api_check(&parts.join(".")),
        Err(ApiTokenProblem::BadSignature)
    );
    for malformed in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
        assert!(api_check(malformed).is_err(), "{malformed}");
    }
}

#[test]
fn refuses_other_issuers_tenants_and_audiences() {
    for iss in [
        format!("{AUTHORITY}/{OTHER_TID}/v2.0"),
        format!("https://sts.windows.net/{TID}/"),
        format!("{AUTHORITY}/{TID}/v2.0/"),
    ] {
        let c = with(user_claims(), |c| {
            c.insert("iss".into(), json!(iss));
        });
        assert_eq!(
            api_check(&signed(&c)),
            Err(ApiTokenProblem::WrongIssuer),
            "{iss}"
        );
    }
    let other_tid = with(user_claims(), |c| {
        c.insert("tid".into(), json!(OTHER_TID));
    });
    assert_eq!(
        api_check(&signed(&other_tid)),
        Err(ApiTokenProblem::WrongIssuer)
    );
    for aud in [
        json!("https://graph.microsoft.com"),
        // A v2.0 token's audience is always the client id.
        json!(format!("api://{CLIENT_ID}")),
        json!(format!("api://{CLIENT_ID}/")),
        json!([CLIENT_ID]),
    ] {
        let c = with(user_claims(), |c| {
            c.insert("aud".into(), aud.clone());
        });
        assert_eq!(
            api_check(&signed(&c)),
            Err(ApiTokenProblem::WrongAudience),
            "{aud}"
        );
    }
    // A key Microsoft scopes to another tenant does not vouch for the provider's.
    let k = key(SIGNING_PEM, "kid-1");
    let scoped = Jwks::from_json(&jwks_json(&[(
        &k,
        Some(&format!("{AUTHORITY}/{OTHER_TID}/v2.0")),
    )]))
    .unwrap();
    assert_eq!(
        api_check_with(&signed(&user_claims()), &scoped),
        Err(ApiTokenProblem::WrongIssuer)
    );
}

/// Claims as Entra ID v1.0 puts them in an access token for the API (the registration leaves
/// `requestedAccessTokenVersion` null): Microsoft's fixed issuer, `appid`, `unique_name`, and
/// the application ID URI the client asked for as the audience.
fn v1_user_claims() -> Value {
    with(user_claims(), |c| {
        c.insert("ver".into(), json!("1.0"));
        c.insert(
            "iss".into(),
            json!(format!("https://sts.windows.net/{TID}/")),
        );
        c.insert("aud".into(), json!(format!("api://{CLIENT_ID}")));
        let client = c.remove("azp").unwrap();
        c.insert("appid".into(), client);
        c.insert("appidacr".into(), json!("1"));
        c.remove("preferred_username");
        c.insert(
            "unique_name".into(),
            json!("ada.unique@contoso.onmicrosoft.com"),
        );
    })
}

#[test]
fn v1_access_tokens_are_accepted_when_issued_by_sts_windows_net_for_the_provider_tenant() {
    let who = api_check(&signed(&v1_user_claims())).unwrap();
    assert!(who.is_delegated());
    assert_eq!(who.name, "ada@contoso.onmicrosoft.com");
    assert_eq!(who.scp, ["Gangway.Manage", "Reports.Read"]);
    let no_upn = with(v1_user_claims(), |c| {
        c.remove("upn");
    });
    assert_eq!(
        api_check(&signed(&no_upn)).unwrap().name,
        "ada.unique@contoso.onmicrosoft.com"
    );
    let by_client_id = with(v1_user_claims(), |c| {
        c.insert("aud".into(), json!(CLIENT_ID));
    });
    assert!(api_check(&signed(&by_client_id)).is_ok());
    let daemon = with(v1_user_claims(), |c| {
        c.remove("scp");
        c.remove("upn");
        c.remove("unique_name");
        c.remove("groups");
        c.insert("roles".into(), json!(["Gangway.Write"]));
    });
    let who = api_check(&signed(&daemon)).unwrap();
    assert_eq!(
        who.name, "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        "named by appid"
    );
    assert_eq!(who.roles, ["Gangway.Write"]);
}

#[test]
fn each_access_token_version_is_held_to_its_own_shape() {
    let refused = |edit: &dyn Fn(&mut serde_json::Map<String, Value>), base: Value| {
        api_check(&signed(&with(base, |c| edit(c))))
    };
    // A v1.0 token from the v2.0 issuer, another tenant's STS, or with a trailing path.
    for iss in [
        format!("{AUTHORITY}/{TID}/v2.0"),
        format!("https://sts.windows.net/{OTHER_TID}/"),
        format!("https://sts.windows.net/{TID}"),
        format!("{AUTHORITY}/{TID}/"),
    ] {
        assert_eq!(
            refused(
                &|c| {
                    c.insert("iss".into(), json!(iss.clone()));
                },
                v1_user_claims()
            ),
            Err(ApiTokenProblem::WrongIssuer),
            "{iss}"
        );
    }
    assert_eq!(
        refused(
            &|c| {
                c.insert("aud".into(), json!("api://someone-else"));
            },
            v1_user_claims()
        ),
        Err(ApiTokenProblem::WrongAudience)
    );
    for ver in [json!("3.0"), json!(2), Value::Null] {
        assert_eq!(
            refused(
                &|c| {
                    c.insert("ver".into(), ver.clone());
                },
                user_claims()
            ),
            Err(ApiTokenProblem::UnknownVersion),
            "{ver}"
        );
    }
    // A daemon is named by its version's claim only: azp in v2.0, appid in v1.0.
    let v2_with_appid = with(app_claims(), |c| {
        let client = c.remove("azp").unwrap();
        c.insert("appid".into(), client);
    });
    assert_eq!(
        api_check(&signed(&v2_with_appid)),
        Err(ApiTokenProblem::Malformed)
    );
    let v1_with_azp = with(v1_user_claims(), |c| {
        c.remove("scp");
        c.insert("roles".into(), json!(["Gangway.Read"]));
        let client = c.remove("appid").unwrap();
        c.insert("azp".into(), client);
    });
    assert_eq!(
        api_check(&signed(&v1_with_azp)),
        Err(ApiTokenProblem::Malformed)
    );
}

#[test]
fn refuses_expired_and_future_tokens_within_the_skew() {
    let at = |exp: u64, nbf: u64| {
        with(user_claims(), |c| {
            c.insert("exp".into(), json!(exp));
            c.insert("nbf".into(), json!(nbf));
            c.insert("iat".into(), json!(nbf));
        })
    };
    assert!(
        api_check(&signed(&at(NOW - 60, NOW - 3600))).is_ok(),
        "skew"
    );
    assert_eq!(
        api_check(&signed(&at(NOW - 301, NOW - 3600))),
        Err(ApiTokenProblem::Expired)
    );
    assert!(
        api_check(&signed(&at(NOW + 3600, NOW + 60))).is_ok(),
        "skew"
    );
    assert_eq!(
        api_check(&signed(&at(NOW + 3600, NOW + 301))),
        Err(ApiTokenProblem::NotYetValid)
    );
    let no_exp = with(user_claims(), |c| {
        c.remove("exp");
    });
    assert_eq!(api_check(&signed(&no_exp)), Err(ApiTokenProblem::Malformed));
    let no_oid = with(user_claims(), |c| {
        c.remove("oid");
    });
    assert_eq!(api_check(&signed(&no_oid)), Err(ApiTokenProblem::Malformed));
}
