//! Unit tests: URL building, PKCE, ID-token validation (tokens signed here with fixed RSA keys),
//! and the HTTP flows against a tiny in-process stand-in for the token and keys endpoints.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openidconnect::{
    JsonWebKeyId, PrivateSigningKey,
    core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::id_token::{Expected, Jwks, validate, validate_full};
use super::*;

const SIGNING_PEM: &str = include_str!("testdata/signing_key.pem");
const ATTACKER_PEM: &str = include_str!("testdata/attacker_key.pem");
const TID: &str = "6f0bd1a1-3c47-4f2f-9b5e-2d3c4b5a6978";
const OTHER_TID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const OID: &str = "11111111-2222-4333-8444-555555555555";
const CLIENT_ID: &str = "a8a0e5f5-0d2b-4b5e-8a5f-4f6c1f2f0c11";
const NONCE: &str = "n-0S6_WzA2Mj";
const AUTHORITY: &str = "https://login.microsoftonline.com";
const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn key(pem: &str, kid: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.to_owned()))).unwrap()
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// A JWT with exactly this header and these claims, RS256-signed by `signer`.
fn sign(signer: &CoreRsaPrivateSigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = signer
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .unwrap();
    format!("{input}.{}", b64(&sig))
}

fn header(kid: &str) -> Value {
    json!({"typ": "JWT", "alg": "RS256", "kid": kid})
}

/// Claims as Entra ID v2 puts them in an ID token for a global admin.
fn claims_at(authority: &str, now: u64) -> Value {
    json!({
        "aud": CLIENT_ID,
        "iss": format!("{authority}/{TID}/v2.0"),
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "name": "Ada Admin",
        "nonce": NONCE,
        "oid": OID,
        "preferred_username": "ada@contoso.onmicrosoft.com",
        "rh": "0.AXkA",
        "sub": "Zq3cLPF7XnHhZ1W0c8fI5p0E9nC0iN2oX3D4n6m7b8Q",
        "tid": TID,
        "uti": "AbCdEf",
        "ver": "2.0",
        "wids": ["62e90394-69f5-4237-9190-012177145e10", "b79fbf4d-3ef9-4689-8143-76b194e85509"]
    })
}

fn claims() -> Value {
    claims_at(AUTHORITY, NOW)
}

fn jwks_json(keys: &[(&CoreRsaPrivateSigningKey, Option<&str>)]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(k, issuer)| {
            let mut v = serde_json::to_value(k.as_verification_key()).unwrap();
            if let Some(iss) = issuer {
                v["issuer"] = json!(iss);
            }
            v
        })
        .collect();
    json!({ "keys": keys }).to_string().into_bytes()
}

fn ms_jwks() -> Jwks {
    let k = key(SIGNING_PEM, "kid-1");
    Jwks::from_json(&jwks_json(&[(
        &k,
        Some("https://login.microsoftonline.com/{tenantid}/v2.0"),
    )]))
    .unwrap()
}

fn check(token: &str) -> Result<SignedInAdmin, IdTokenProblem> {
    check_with(token, &ms_jwks(), NONCE)
}

fn check_with(token: &str, jwks: &Jwks, nonce: &str) -> Result<SignedInAdmin, IdTokenProblem> {
    let expected = Expected {
        authority: AUTHORITY,
        client_id: CLIENT_ID,
        nonce,
    };
    validate(token, jwks, &expected, now())
}

fn with(mut c: Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    f(c.as_object_mut().unwrap());
    c
}

// ---------------------------------------------------------------- ID token: accepted

#[test]
fn accepts_a_valid_token() {
    let t = sign(&key(SIGNING_PEM, "kid-1"), &header("kid-1"), &claims());
    let who = check(&t).unwrap();
    assert_eq!(who.tenant_id.to_string(), TID);
    assert_eq!(who.object_id.to_string(), OID);
    assert_eq!(who.username, "ada@contoso.onmicrosoft.com");
    assert_eq!(who.name.as_deref(), Some("Ada Admin"));
    assert_eq!(who.global_admin, RoleClaim::Holds);
}

#[test]
fn wids_without_the_role_deny_it_and_no_wids_say_nothing() {
    let signer = key(SIGNING_PEM, "kid-1");
    let c = with(claims(), |c| {
        c.insert(
            "wids".into(),
            json!(["b79fbf4d-3ef9-4689-8143-76b194e85509"]),
        );
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c))
            .unwrap()
            .global_admin,
        RoleClaim::Lacks
    );
    let c = with(claims(), |c| {
        c.remove("wids");
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c))
            .unwrap()
            .global_admin,
        RoleClaim::Unstated
    );
}

#[test]
fn tolerates_clock_skew_within_five_minutes() {
    let signer = key(SIGNING_PEM, "kid-1");
    let c = with(claims(), |c| {
        c.insert("exp".into(), json!(NOW - 200));
        c.insert("nbf".into(), json!(NOW + 200));
        c.insert("iat".into(), json!(NOW + 200));
    });
    check(&sign(&signer, &header("kid-1"), &c)).unwrap();
}

#[test]
fn key_without_issuer_and_token_without_typ_are_fine() {
    let signer = key(SIGNING_PEM, "kid-1");
    let jwks = Jwks::from_json(&jwks_json(&[(&signer, None)])).unwrap();
    let t = sign(&signer, &json!({"alg": "RS256", "kid": "kid-1"}), &claims());
    check_with(&t, &jwks, NONCE).unwrap();
}

#[test]
fn works_with_an_emulator_authority() {
    let authority = "http://127.0.0.1:8443";
    let signer = key(SIGNING_PEM, "kid-1");
    let jwks = Jwks::from_json(&jwks_json(&[(
        &signer,
        Some("http://127.0.0.1:8443/{tenantid}/v2.0"),
    )]))
    .unwrap();
    let t = sign(&signer, &header("kid-1"), &claims_at(authority, NOW));
    let expected = Expected {
        authority,
        client_id: CLIENT_ID,
        nonce: NONCE,
    };
    validate(&t, &jwks, &expected, now()).unwrap();
    // …and the same token is refused for the real authority.
    assert_eq!(check(&t), Err(IdTokenProblem::WrongIssuer));
}

// ---------------------------------------------------------------- ID token: rejected

#[test]
fn rejects_a_signature_by_another_key_under_a_known_kid() {
    let t = sign(&key(ATTACKER_PEM, "kid-1"), &header("kid-1"), &claims());
    assert_eq!(check(&t), Err(IdTokenProblem::BadSignature));
}

#[test]
fn rejects_a_tampered_payload() {
    let t = sign(&key(SIGNING_PEM, "kid-1"), &header("kid-1"), &claims());
    let parts: Vec<&str> = t.split('.').collect();
    let forged = with(claims(), |c| {
        c.insert("oid".into(), json!("99999999-2222-4333-8444-555555555555"));
    });
    let t = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(check(&t), Err(IdTokenProblem::BadSignature));
}

#[test]
fn rejects_an_unknown_kid() {
    let t = sign(&key(SIGNING_PEM, "kid-9"), &header("kid-9"), &claims());
    assert_eq!(check(&t), Err(IdTokenProblem::UnknownKey));
}

#[test]
fn rejects_alg_none_and_hmac() {
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"typ": "JWT", "alg": "none", "kid": "kid-1"})
            .to_string()
            .as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    assert_eq!(check(&unsigned), Err(IdTokenProblem::AlgorithmNotAllowed));
    // HS256 "signed" with the client id (public) — must never be accepted.
    for alg in ["HS256", "RS384", "PS256", "ES256", "none", "None", "rs256"] {
        let h = json!({"typ": "JWT", "alg": alg, "kid": "kid-1"});
        let t = sign(&key(SIGNING_PEM, "kid-1"), &h, &claims());
        assert_eq!(check(&t), Err(IdTokenProblem::AlgorithmNotAllowed), "{alg}");
    }
    let no_alg = sign(
        &key(SIGNING_PEM, "kid-1"),
        &json!({"kid": "kid-1"}),
        &claims(),
    );
    assert_eq!(check(&no_alg), Err(IdTokenProblem::AlgorithmNotAllowed));
}

#[test]
fn rejects_a_wrong_or_extra_audience() {
    let signer = key(SIGNING_PEM, "kid-1");
    for aud in [
        json!("00000003-0000-0000-c000-000000000000"),
        json!([CLIENT_ID, "00000003-0000-0000-c000-000000000000"]),
        json!([]),
    ] {
        let c = with(claims(), |c| {
            c.insert("aud".into(), aud.clone());
        });
        assert_eq!(
            check(&sign(&signer, &header("kid-1"), &c)),
            Err(IdTokenProblem::WrongAudience),
            "{aud}"
        );
    }
}

#[test]
fn rejects_a_wrong_issuer() {
    let signer = key(SIGNING_PEM, "kid-1");
    for iss in [
        format!("https://login.microsoftonline.com/{OTHER_TID}/v2.0"),
        format!("https://sts.windows.net/{TID}/"),
        format!("https://login.microsoftonline.com/{TID}/v2.0/"),
        format!(
            "https://login.microsoftonline.com/{}/v2.0",
            TID.to_uppercase()
        ),
        "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned(),
        format!("https://evil.example/{TID}/v2.0"),
    ] {
        let c = with(claims(), |c| {
            c.insert("iss".into(), json!(iss));
        });
        assert_eq!(
            check(&sign(&signer, &header("kid-1"), &c)),
            Err(IdTokenProblem::WrongIssuer),
            "{iss}"
        );
    }
    let c = with(claims(), |c| {
        c.remove("iss");
    });
    assert!(check(&sign(&signer, &header("kid-1"), &c)).is_err());
}

#[test]
fn rejects_a_key_scoped_to_another_issuer() {
    let signer = key(SIGNING_PEM, "kid-1");
    let other = format!("https://login.microsoftonline.com/{OTHER_TID}/v2.0");
    let jwks = Jwks::from_json(&jwks_json(&[(&signer, Some(&other))])).unwrap();
    let t = sign(&signer, &header("kid-1"), &claims());
    assert_eq!(
        check_with(&t, &jwks, NONCE),
        Err(IdTokenProblem::WrongIssuer)
    );
}

#[test]
fn rejects_a_token_authorized_for_another_party() {
    let signer = key(SIGNING_PEM, "kid-1");
    let c = with(claims(), |c| {
        c.insert("azp".into(), json!("00000003-0000-0000-c000-000000000000"));
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::WrongAudience)
    );
    let ours = with(claims(), |c| {
        c.insert("azp".into(), json!(CLIENT_ID));
    });
    assert!(check(&sign(&signer, &header("kid-1"), &ours)).is_ok());
}

#[test]
fn rejects_a_token_issued_longer_ago_than_a_token_lives() {
    let signer = key(SIGNING_PEM, "kid-1");
    // Far-future `exp` does not rescue a token minted long ago.
    let old = with(claims(), |c| {
        c.insert("iat".into(), json!(NOW - 3600 - 301));
        c.insert("nbf".into(), json!(NOW - 3600 - 301));
        c.insert("exp".into(), json!(NOW + 86_400));
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &old)),
        Err(IdTokenProblem::IssuedTooLongAgo)
    );
    let within_skew = with(claims(), |c| {
        c.insert("iat".into(), json!(NOW - 3600 - 299));
    });
    assert!(check(&sign(&signer, &header("kid-1"), &within_skew)).is_ok());
}

#[test]
fn rejects_expired_and_future_tokens() {
    let signer = key(SIGNING_PEM, "kid-1");
    let c = with(claims(), |c| {
        c.insert("exp".into(), json!(NOW - 301));
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::Expired)
    );
    let c = with(claims(), |c| {
        c.insert("nbf".into(), json!(NOW + 301));
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::NotYetValid)
    );
    let c = with(claims(), |c| {
        c.insert("iat".into(), json!(NOW + 301));
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::NotYetValid)
    );
    let c = with(claims(), |c| {
        c.remove("exp");
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::Malformed)
    );
}

#[test]
fn rejects_a_wrong_missing_or_unset_nonce() {
    let signer = key(SIGNING_PEM, "kid-1");
    let t = sign(&signer, &header("kid-1"), &claims());
    assert_eq!(
        check_with(&t, &ms_jwks(), "other"),
        Err(IdTokenProblem::NonceMismatch)
    );
    assert_eq!(
        check_with(&t, &ms_jwks(), ""),
        Err(IdTokenProblem::NonceMismatch)
    );
    let c = with(claims(), |c| {
        c.remove("nonce");
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::NonceMismatch)
    );
    let c = with(claims(), |c| {
        c.insert("nonce".into(), json!(""));
    });
    assert_eq!(
        check_with(&sign(&signer, &header("kid-1"), &c), &ms_jwks(), ""),
        Err(IdTokenProblem::NonceMismatch)
    );
}

#[test]
fn rejects_a_tenant_that_is_not_a_guid() {
    let signer = key(SIGNING_PEM, "kid-1");
    for tid in [
        json!("common"),
        json!("contoso.com"),
        json!(42),
        Value::Null,
    ] {
        let c = with(claims(), |c| {
            c.insert("tid".into(), tid.clone());
            c.insert(
                "iss".into(),
                json!(format!("https://login.microsoftonline.com/{tid}/v2.0")),
            );
        });
        assert_eq!(
            check(&sign(&signer, &header("kid-1"), &c)),
            Err(IdTokenProblem::TenantNotGuid),
            "{tid}"
        );
    }
}

#[test]
fn rejects_malformed_tokens() {
    for t in ["", "abc", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.e30.e30"] {
        assert!(check(t).is_err(), "{t}");
    }
    assert_eq!(check("a.b"), Err(IdTokenProblem::Malformed));
    let signer = key(SIGNING_PEM, "kid-1");
    let no_kid = sign(&signer, &json!({"alg": "RS256"}), &claims());
    assert_eq!(check(&no_kid), Err(IdTokenProblem::Malformed));
    for claim in ["oid", "sub"] {
        let c = with(claims(), |c| {
            c.remove(claim);
        });
        assert_eq!(
            check(&sign(&signer, &header("kid-1"), &c)),
            Err(IdTokenProblem::Malformed),
            "{claim}"
        );
    }
    let c = with(claims(), |c| {
        c.remove("preferred_username");
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c)),
        Err(IdTokenProblem::Malformed)
    );
    // …but upn stands in for preferred_username.
    let c = with(claims(), |c| {
        c.remove("preferred_username");
        c.insert("upn".into(), json!("ada@contoso.com"));
    });
    assert_eq!(
        check(&sign(&signer, &header("kid-1"), &c))
            .unwrap()
            .username,
        "ada@contoso.com"
    );
}

#[test]
fn rejects_nested_or_critical_headers() {
    let signer = key(SIGNING_PEM, "kid-1");
    let h = json!({"alg": "RS256", "kid": "kid-1", "crit": ["exp"], "exp": 1});
    assert!(check(&sign(&signer, &h, &claims())).is_err());
    let h = json!({"alg": "RS256", "kid": "kid-1", "cty": "JWT"});
    assert!(check(&sign(&signer, &h, &claims())).is_err());
}

// ---------------------------------------------------------------- operator sign-in claims

const GROUP_A: &str = "0f3c6a1e-7b2d-4c9e-8a5f-1d2e3f4a5b6c";
const GROUP_B: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

/// The operator identity a token with these claims yields for the provider's tenant `TID`.
fn operator_of(c: &Value) -> Result<OperatorIdentity, OperatorSignInError> {
    let t = sign(&key(SIGNING_PEM, "kid-1"), &header("kid-1"), c);
    let expected = Expected {
        authority: AUTHORITY,
        client_id: CLIENT_ID,
        nonce: NONCE,
    };
    let verified = validate_full(&t, &ms_jwks(), &expected, now())
        .map_err(|p| OperatorSignInError::Identity(IdentityError::InvalidIdToken(p)))?;
    operator_identity(verified, &TenantId::parse(TID).unwrap())
}

#[test]
fn operator_claims_are_read_from_the_verified_token() {
    let c = with(claims(), |c| {
        c.insert(
            "groups".into(),
            json!([GROUP_A, "Ops-OnPrem", GROUP_B.to_uppercase()]),
        );
        c.insert("roles".into(), json!(["Gangway.Admin", "Gangway.Viewer"]));
        c.insert("sid".into(), json!("007e3899-e104-731f-b675-0617c1f2dd72"));
        c.insert("email".into(), json!("ada@contoso.com"));
    });
    let who = operator_of(&c).unwrap();
    assert_eq!(
        who,
        OperatorIdentity {
            oid: Uuid::parse_str(OID).unwrap(),
            tid: TenantId::parse(TID).unwrap(),
            username: "ada@contoso.onmicrosoft.com".into(),
            name: Some("Ada Admin".into()),
            // Names of on-premises groups are not object ids: skipped, never matched.
            groups: vec![
                Uuid::parse_str(GROUP_A).unwrap(),
                Uuid::parse_str(GROUP_B).unwrap()
            ],
            roles: vec!["Gangway.Admin".into(), "Gangway.Viewer".into()],
            sid: Some("007e3899-e104-731f-b675-0617c1f2dd72".into()),
        }
    );
}

#[test]
fn operator_claims_absent_are_empty() {
    let c = with(claims(), |c| {
        c.remove("preferred_username");
        c.insert("upn".into(), json!("ada@contoso.com"));
    });
    let who = operator_of(&c).unwrap();
    assert!(who.groups.is_empty() && who.roles.is_empty());
    assert_eq!(who.sid, None);
    assert_eq!(who.username, "ada@contoso.com");
    // A sid no Microsoft session would have is treated as absent.
    for junk in [json!(""), json!("x".repeat(200)), json!("a b")] {
        let c = with(claims(), |c| {
            c.insert("sid".into(), junk.clone());
        });
        assert_eq!(operator_of(&c).unwrap().sid, None, "{junk}");
    }
}

#[test]
fn operator_of_another_tenant_is_refused() {
    let authority_other = with(claims(), |c| {
        c.insert("tid".into(), json!(OTHER_TID));
        c.insert("iss".into(), json!(format!("{AUTHORITY}/{OTHER_TID}/v2.0")));
    });
    match operator_of(&authority_other).unwrap_err() {
        OperatorSignInError::WrongTenant {
            expected,
            actual,
            username,
        } => {
            assert_eq!(expected.to_string(), TID);
            assert_eq!(actual.to_string(), OTHER_TID);
            assert_eq!(username, "ada@contoso.onmicrosoft.com");
        }
        other => panic!("{other:?}"),
    }
    // `tid` and issuer disagreeing is no way around it: the issuer check refuses first.
    let mixed = with(claims(), |c| {
        c.insert("tid".into(), json!(OTHER_TID));
    });
    assert!(matches!(
        operator_of(&mixed).unwrap_err(),
        OperatorSignInError::Identity(IdentityError::InvalidIdToken(IdTokenProblem::WrongIssuer))
    ));
}

#[test]
fn a_groups_overage_is_refused_with_its_reason() {
    let jwt_overage = with(claims(), |c| {
        c.insert("_claim_names".into(), json!({"groups": "src1"}));
        c.insert(
            "_claim_sources".into(),
            json!({"src1": {"endpoint": format!("https://graph.windows.net/{TID}/users/{OID}/getMemberObjects")}}),
        );
    });
    let implicit_overage = with(claims(), |c| {
        c.insert("hasgroups".into(), json!(true));
    });
    for c in [jwt_overage, implicit_overage] {
        let err = operator_of(&c).unwrap_err();
        assert!(
            matches!(&err, OperatorSignInError::GroupsOverage { username, oid }
                if username == "ada@contoso.onmicrosoft.com" && oid.to_string() == OID),
            "{err:?}"
        );
        assert!(err.to_string().contains("too many groups"), "{err}");
    }
    // Other distributed claims are no overage.
    let other = with(claims(), |c| {
        c.insert("_claim_names".into(), json!({"roles": "src1"}));
        c.insert("hasgroups".into(), json!(false));
    });
    operator_of(&other).unwrap();
}

#[test]
fn malformed_operator_claims_refuse_the_token() {
    for (name, value) in [
        ("groups", json!(GROUP_A)),
        ("roles", json!("Gangway.Admin")),
        ("sid", json!(42)),
    ] {
        let c = with(claims(), |c| {
            c.insert(name.into(), value.clone());
        });
        assert!(
            matches!(
                operator_of(&c).unwrap_err(),
                OperatorSignInError::Identity(IdentityError::InvalidIdToken(
                    IdTokenProblem::Malformed
                ))
            ),
            "{name}: {value}"
        );
    }
}

// ---------------------------------------------------------------- URLs

fn config(authority: &str) -> EntraConfig {
    EntraConfig {
        authority: Url::parse(authority).unwrap(),
        graph_url: Url::parse("https://graph.microsoft.com").unwrap(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: Some(Secret::new("provider-secret")),
        redirect_uri: Url::parse("https://gangway.example.com/authenticate/OAuth2Callback")
            .unwrap(),
    }
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[test]
fn delegated_request_has_every_parameter() {
    let c = EntraClient::new(config(AUTHORITY), reqwest::Client::new());
    let r = c.delegated_request(
        &["User.Read.All", "Group.Read.All"],
        Some("ada@contoso.com"),
    );
    assert_eq!(
        &r.url[..url::Position::AfterPath],
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize"
    );
    let q = query(&r.url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        "https://gangway.example.com/authenticate/OAuth2Callback"
    );
    assert_eq!(
        q["scope"],
        "openid profile offline_access https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/Group.Read.All"
    );
    assert_eq!(q["state"], r.state);
    assert_eq!(q["nonce"], r.nonce);
    assert_eq!(q["prompt"], "select_account");
    assert_eq!(q["login_hint"], "ada@contoso.com");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"],
        b64(&Sha256::digest(r.pkce_verifier.as_bytes()))
    );
    assert!(!q.contains_key("code_verifier") && !r.url.as_str().contains(&r.pkce_verifier));
    assert!(r.state.len() >= 43 && r.nonce.len() >= 43 && r.pkce_verifier.len() >= 43);
    // Encoded, not just concatenated.
    assert!(r.url.as_str().contains(
        "redirect_uri=https%3A%2F%2Fgangway.example.com%2Fauthenticate%2FOAuth2Callback"
    ));
    assert!(r.url.as_str().contains("login_hint=ada%40contoso.com"));

    let r2 = c.delegated_request(&[], None);
    assert_ne!(r.state, r2.state);
    assert_ne!(r.nonce, r2.nonce);
    assert_ne!(r.pkce_verifier, r2.pkce_verifier);
    let q2 = query(&r2.url);
    assert!(!q2.contains_key("login_hint"));
    assert_eq!(q2["scope"], "openid profile offline_access");
}

#[test]
fn admin_sign_in_request_targets_the_consenting_tenant_and_keeps_no_access() {
    let c = EntraClient::new(config(AUTHORITY), reqwest::Client::new());
    let tenant = TenantId::parse(TID).unwrap();
    let r = c.admin_sign_in_request(&tenant, Some("ada@contoso.com"), true);
    assert_eq!(
        &r.url[..url::Position::AfterPath],
        format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/authorize")
    );
    let q = query(&r.url);
    assert_eq!(q["scope"], "openid profile");
    assert_eq!(q["prompt"], "none");
    assert_eq!(
        (q["state"].as_str(), q["nonce"].as_str()),
        (r.state.as_str(), r.nonce.as_str())
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["login_hint"], "ada@contoso.com");
    let interactive = c.admin_sign_in_request(&tenant, None, false);
    assert_eq!(query(&interactive.url)["prompt"], "select_account");
}

const OPERATOR_CALLBACK: &str = "https://gangway.example.com/console/sso/callback";

#[test]
fn operator_sign_in_request_targets_the_providers_tenant() {
    let c = EntraClient::new(config(AUTHORITY), reqwest::Client::new());
    let tenant = TenantId::parse(TID).unwrap();
    let r = c.operator_sign_in_request(&tenant, &Url::parse(OPERATOR_CALLBACK).unwrap());
    assert_eq!(
        &r.url[..url::Position::AfterPath],
        format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/authorize")
    );
    let q = query(&r.url);
    assert_eq!(q["scope"], "openid profile email");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["redirect_uri"], OPERATOR_CALLBACK);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        (q["state"].as_str(), q["nonce"].as_str()),
        (r.state.as_str(), r.nonce.as_str())
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"],
        b64(&Sha256::digest(r.pkce_verifier.as_bytes()))
    );
    assert!(!q.contains_key("prompt") && !q.contains_key("login_hint"));
    let again = c.operator_sign_in_request(&tenant, &Url::parse(OPERATOR_CALLBACK).unwrap());
    assert_ne!(again.state, r.state);
    assert_ne!(again.nonce, r.nonce);
}

#[test]
fn auth_request_debug_hides_the_verifier() {
    let c = EntraClient::new(config(AUTHORITY), reqwest::Client::new());
    let r = c.delegated_request(&["User.Read.All"], None);
    assert!(!format!("{r:?}").contains(&r.pkce_verifier));
    assert!(!format!("{:?}", config(AUTHORITY)).contains("provider-secret"));
}

#[test]
fn admin_consent_request_has_every_parameter() {
    let c = EntraClient::new(config("http://127.0.0.1:8443/"), reqwest::Client::new());
    let r = c.admin_consent_request();
    assert_eq!(
        &r.url[..url::Position::AfterPath],
        "http://127.0.0.1:8443/organizations/v2.0/adminconsent"
    );
    let q = query(&r.url);
    assert_eq!(q.len(), 4);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["scope"], "https://graph.microsoft.com/.default");
    assert_eq!(
        q["redirect_uri"],
        "https://gangway.example.com/authenticate/OAuth2Callback"
    );
    assert_eq!(q["state"], r.state);
    assert_ne!(r.state, c.admin_consent_request().state);
}

#[test]
fn authority_trailing_slash_does_not_matter() {
    let a = EntraClient::new(config("http://127.0.0.1:8443"), reqwest::Client::new());
    let b = EntraClient::new(config("http://127.0.0.1:8443/"), reqwest::Client::new());
    let tid = TenantId::parse(TID).unwrap();
    assert_eq!(a.issuer_for(&tid), b.issuer_for(&tid));
    assert_eq!(
        a.issuer_for(&tid),
        format!("http://127.0.0.1:8443/{TID}/v2.0")
    );
    assert_eq!(
        b.token_endpoint(TID),
        format!("http://127.0.0.1:8443/{TID}/oauth2/v2.0/token")
    );
}

#[test]
fn graph_scopes_become_full_uris() {
    assert_eq!(
        graph_scope("User.Read.All"),
        "https://graph.microsoft.com/User.Read.All"
    );
    assert_eq!(
        graph_scope("https://graph.microsoft.com/.default"),
        GRAPH_DEFAULT_SCOPE
    );
    assert_eq!(graph_scope("offline_access"), "offline_access");
}

// ---------------------------------------------------------------- over HTTP

use super::test_http::{Handler, serve};

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

/// The stand-in's state: which key signs, which keys are published, what was asked.
struct Idp {
    authority: String,
    signer: Mutex<CoreRsaPrivateSigningKey>,
    published: Mutex<Vec<u8>>,
    key_fetches: AtomicUsize,
    last_token_form: Mutex<HashMap<String, String>>,
    last_token_path: Mutex<String>,
    /// Claims merged into every ID token issued (a `null` removes one).
    extra_claims: Mutex<serde_json::Map<String, Value>>,
}

async fn idp() -> (Arc<Idp>, EntraClient) {
    let cell: Arc<Mutex<Option<Arc<Idp>>>> = Arc::default();
    let c2 = cell.clone();
    let handler: Arc<Handler> = Arc::new(move |method, path, _headers, body| {
        let idp = c2.lock().unwrap().clone().unwrap();
        idp.handle(method, path, body)
    });
    let authority = serve(handler).await;
    let signer = key(SIGNING_PEM, "kid-1");
    let published = jwks_json(&[(&signer, Some(&format!("{authority}/{{tenantid}}/v2.0")))]);
    let idp = Arc::new(Idp {
        authority: authority.clone(),
        signer: Mutex::new(signer),
        published: Mutex::new(published),
        key_fetches: AtomicUsize::new(0),
        last_token_form: Mutex::default(),
        last_token_path: Mutex::default(),
        extra_claims: Mutex::default(),
    });
    *cell.lock().unwrap() = Some(idp.clone());
    let client = EntraClient::new(config(&authority), reqwest::Client::new());
    (idp, client)
}

impl Idp {
    fn handle(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        match (method, path) {
            ("GET", "/common/discovery/v2.0/keys") => {
                self.key_fetches.fetch_add(1, Ordering::SeqCst);
                (
                    200,
                    String::from_utf8(self.published.lock().unwrap().clone()).unwrap(),
                )
            }
            ("POST", p) if p.ends_with("/oauth2/v2.0/token") => {
                let f = form(body);
                *self.last_token_form.lock().unwrap() = f.clone();
                *self.last_token_path.lock().unwrap() = p.to_owned();
                if f.get("client_secret").map(String::as_str) != Some("provider-secret") {
                    return (401, json!({
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2024-05-02 10:11:12Z",
                        "error_codes": [7000215],
                        "timestamp": "2024-05-02 10:11:12Z",
                        "trace_id": "t",
                        "correlation_id": "c"
                    }).to_string());
                }
                match f["grant_type"].as_str() {
                    "authorization_code" if f["code"] == "used" => (400, json!({
                        "error": "invalid_grant",
                        "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                        "error_codes": [54005]
                    }).to_string()),
                    "authorization_code" => {
                        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
                        let signer = self.signer.lock().unwrap();
                        let kid = openidconnect::JsonWebKey::key_id(&signer.as_verification_key()).unwrap().to_string();
                        let mut claims = claims_at(&self.authority, now);
                        for (k, v) in self.extra_claims.lock().unwrap().iter() {
                            match v {
                                Value::Null => claims.as_object_mut().unwrap().remove(k),
                                v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
                            };
                        }
                        let id_token = sign(&signer, &header(&kid), &claims);
                        (200, json!({
                            "token_type": "Bearer",
                            "scope": "https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/.default",
                            "expires_in": 3599,
                            "ext_expires_in": 3599,
                            "access_token": "at-opaque",
                            "refresh_token": "rt-opaque",
                            "id_token": id_token
                        }).to_string())
                    }
                    _ => (200, json!({
                        "token_type": "Bearer",
                        "expires_in": 3599,
                        "access_token": "app-at-opaque"
                    }).to_string()),
                }
            }
            _ => (404, "{}".into()),
        }
    }

    fn rotate(&self, kid: &str, publish: bool) {
        let signer = key(ATTACKER_PEM, kid);
        if publish {
            let old = key(SIGNING_PEM, "kid-1");
            let iss = format!("{}/{{tenantid}}/v2.0", self.authority);
            *self.published.lock().unwrap() =
                jwks_json(&[(&old, Some(&iss)), (&signer, Some(&iss))]);
        }
        *self.signer.lock().unwrap() = signer;
    }
}

#[tokio::test]
async fn redeems_a_code_and_caches_keys() {
    let (idp, client) = idp().await;
    let g = client
        .redeem_code("organizations", "code-1", "verifier-1", NONCE)
        .await
        .unwrap();
    assert_eq!(g.identity.tenant_id.to_string(), TID);
    assert_eq!(g.identity.global_admin, RoleClaim::Holds);
    assert_eq!(g.access_token.expose(), "at-opaque");
    assert_eq!(g.refresh_token.unwrap().expose(), "rt-opaque");
    assert_eq!(g.scopes.len(), 2);
    let f = idp.last_token_form.lock().unwrap().clone();
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["code"], "code-1");
    assert_eq!(f["code_verifier"], "verifier-1");
    assert_eq!(f["client_id"], CLIENT_ID);
    assert_eq!(
        f["redirect_uri"],
        "https://gangway.example.com/authenticate/OAuth2Callback"
    );

    client
        .redeem_code("organizations", "code-2", "verifier-2", NONCE)
        .await
        .unwrap();
    assert_eq!(idp.key_fetches.load(Ordering::SeqCst), 1, "keys are cached");

    let err = client
        .redeem_code("organizations", "code-3", "v", "another-nonce")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        IdentityError::InvalidIdToken(IdTokenProblem::NonceMismatch)
    ));
}

#[tokio::test]
async fn redeems_an_operator_code_at_the_providers_tenant() {
    let (idp, client) = idp().await;
    let tenant = TenantId::parse(TID).unwrap();
    let callback = Url::parse(OPERATOR_CALLBACK).unwrap();
    idp.extra_claims.lock().unwrap().extend([
        ("groups".to_owned(), json!([GROUP_A])),
        ("roles".to_owned(), json!(["Gangway.Viewer"])),
        ("sid".to_owned(), json!("s-1")),
    ]);
    let who = client
        .redeem_operator_code(&tenant, &callback, "code-1", "verifier-1", NONCE)
        .await
        .unwrap();
    assert_eq!(who.oid.to_string(), OID);
    assert_eq!(who.groups, [Uuid::parse_str(GROUP_A).unwrap()]);
    assert_eq!(who.roles, ["Gangway.Viewer"]);
    assert_eq!(who.sid.as_deref(), Some("s-1"));
    assert_eq!(
        *idp.last_token_path.lock().unwrap(),
        format!("/{TID}/oauth2/v2.0/token")
    );
    let f = idp.last_token_form.lock().unwrap().clone();
    assert_eq!(f["redirect_uri"], OPERATOR_CALLBACK);
    assert_eq!(f["code_verifier"], "verifier-1");

    // The stand-in signs for TID: a provider tenant of OTHER_TID refuses it.
    let other = TenantId::parse(OTHER_TID).unwrap();
    let err = client
        .redeem_operator_code(&other, &callback, "code-2", "v", NONCE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OperatorSignInError::WrongTenant { .. }),
        "{err:?}"
    );

    // Every check of the consent sign-in still applies.
    let err = client
        .redeem_operator_code(&tenant, &callback, "code-3", "v", "another-nonce")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        OperatorSignInError::Identity(IdentityError::InvalidIdToken(IdTokenProblem::NonceMismatch))
    ));
    let err = client
        .redeem_operator_code(&tenant, &callback, "used", "v", NONCE)
        .await
        .unwrap_err();
    let OperatorSignInError::Identity(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.aad_kind(), Some(AadErrorKind::CodeExpiredOrReused));

    idp.extra_claims
        .lock()
        .unwrap()
        .insert("_claim_names".into(), json!({"groups": "src1"}));
    let err = client
        .redeem_operator_code(&tenant, &callback, "code-4", "v", NONCE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OperatorSignInError::GroupsOverage { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn refetches_keys_once_on_rotation() {
    let (idp, client) = idp().await;
    client
        .redeem_code("organizations", "code-1", "v", NONCE)
        .await
        .unwrap();
    idp.rotate("kid-2", true);
    client
        .redeem_code("organizations", "code-2", "v", NONCE)
        .await
        .unwrap();
    assert_eq!(idp.key_fetches.load(Ordering::SeqCst), 2);

    // A kid nobody publishes: one refetch, then refusal.
    idp.rotate("kid-x", false);
    let err = client
        .redeem_code("organizations", "code-3", "v", NONCE)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        IdentityError::InvalidIdToken(IdTokenProblem::UnknownKey)
    ));
    assert_eq!(idp.key_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn token_endpoint_errors_are_classified_without_leaking() {
    let (idp, client) = idp().await;
    let err = client
        .redeem_code("organizations", "used", "v", NONCE)
        .await
        .unwrap_err();
    assert_eq!(err.aad_kind(), Some(AadErrorKind::CodeExpiredOrReused));

    let tid = TenantId::parse(TID).unwrap();
    let token = client.app_token(&tid, None).await.unwrap();
    assert_eq!(token.expose(), "app-at-opaque");
    let f = idp.last_token_form.lock().unwrap().clone();
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["scope"], GRAPH_DEFAULT_SCOPE);
    assert_eq!(f["client_id"], CLIENT_ID);

    let wrong = Secret::new("wrong-secret");
    let err = client
        .app_token(&tid, Some(("customer-app-id", &wrong)))
        .await
        .unwrap_err();
    assert_eq!(err.aad_kind(), Some(AadErrorKind::BadSecret));
    let IdentityError::Aad(aad) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(aad.trace_id.as_deref(), Some("t"));
    assert!(!format!("{err} {err:?}").contains("wrong-secret"));
    assert_eq!(
        idp.last_token_form.lock().unwrap()["client_id"],
        "customer-app-id"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let (idp, client) = idp().await;
    let tid = TenantId::parse(TID).unwrap();
    let g = client
        .refresh(&tid, &Secret::new("rt-old"), &[])
        .await
        .unwrap();
    assert_eq!(g.access_token.expose(), "app-at-opaque");
    let f = idp.last_token_form.lock().unwrap().clone();
    assert_eq!(f["grant_type"], "refresh_token");
    assert_eq!(f["refresh_token"], "rt-old");
    assert_eq!(f["scope"], GRAPH_DEFAULT_SCOPE);
}

#[tokio::test]
async fn unreachable_authority_is_a_transport_error() {
    let client = EntraClient::new(config("http://127.0.0.1:1"), reqwest::Client::new());
    let tid = TenantId::parse(TID).unwrap();
    let err = client.app_token(&tid, None).await.unwrap_err();
    assert!(matches!(err, IdentityError::Transport(_)), "{err:?}");
}

#[test]
fn app_token_roles_are_read_for_display_and_junk_names_none() {
    let payload = b64(br#"{"roles":["User.Read.All","Group.Read.All"],"tid":"x"}"#);
    let token = Secret::new(format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig"));
    assert_eq!(app_token_roles(&token), ["Group.Read.All", "User.Read.All"]);
    assert!(app_token_roles(&Secret::new("opaque-token")).is_empty());
    assert!(app_token_roles(&Secret::new("a.!!!.c")).is_empty());
}

mod access_tokens;
