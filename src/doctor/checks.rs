//! The doctor's comparisons: each takes what Entra ID or Graph answered (an app registration is
//! Graph's `application` resource, as JSON) and what Gangway expects, and says how it came out
//! and what to do. No I/O here.

use std::collections::BTreeSet;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use url::Url;

use super::graph_ids::{self, GRAPH_APP_ID, Kind, Lookup};
use super::{Check, CheckStatus, Expected, MULTI_TENANT_AUDIENCE, OWN_PERMISSION, ProfileNeeds};
use crate::graph::GraphError;
use crate::identity::{AadErrorKind, Discovery, IdentityError};
use crate::settings::MAX_SECRET_MONTHS;
use crate::types::{ClientId, Secret, TenantId};

/// A secret expiring within this many days is a warning.
pub const WARN_DAYS: i64 = 60;
/// Within this many, the warning says it is urgent.
pub const ALARM_DAYS: i64 = 14;

/// Where the admin center keeps the app: the start of most fixes.
const APP: &str = "Entra admin center → App registrations → your app";

fn new_secret_fix() -> String {
    format!(
        "{APP} → Certificates & secrets → New client secret (Microsoft allows at most {MAX_SECRET_MONTHS} months); copy its Value (not the Secret ID) into System Settings → Client secret, then delete the old secret."
    )
}

/// Entra ID's discovery document for `organizations`, and whether its issuer is the one
/// Gangway expects of ID tokens from `authority` (`{authority}/{tenantid}/v2.0`).
pub fn discovery(found: &Result<Discovery, IdentityError>, authority: &Url) -> Check {
    let title = "Entra ID answers";
    let base = authority.as_str().trim_end_matches('/');
    let check = Check::new("discovery", title, CheckStatus::Pass);
    match found {
        Ok(doc) => {
            let expected = format!("{base}/{{tenantid}}/v2.0");
            if doc.issuer == expected {
                check.detail(format!(
                    "{} answers; ID tokens are issued by {expected}.",
                    doc.url
                ))
            } else {
                let origin = Url::parse(&doc.issuer)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_else(|_| doc.issuer.clone());
                Check {
                    status: CheckStatus::Fail,
                    ..check
                }
                .detail(format!(
                    "{} names the issuer {}, but Gangway expects {expected}: every sign-in would be refused.",
                    doc.url, doc.issuer
                ))
                .fix(format!(
                    "Set GANGWAY_AUTHORITY to {origin} (the issuer's address) and restart Gangway."
                ))
            }
        }
        Err(e) => Check {
            status: CheckStatus::Fail,
            ..check
        }
        .detail(format!(
            "Entra ID at {base} did not answer its discovery document: {e}."
        ))
        .fix(
            "Check GANGWAY_AUTHORITY (https://login.microsoftonline.com unless you use a sovereign cloud), that this server reaches it (firewall, proxy), and GANGWAY_EXTRA_CA_FILE if a proxy re-signs TLS.",
        ),
    }
}

/// Whether the provider's tenant id is set in System Settings.
pub fn provider_tenant(tenant: Option<&TenantId>) -> Check {
    let title = "Your tenant ID is set";
    match tenant {
        Some(t) => Check::new("provider_tenant", title, CheckStatus::Pass).detail(format!(
            "The app registration is checked in tenant {t}."
        )),
        None => Check::new("provider_tenant", title, CheckStatus::Fail)
            .detail("System Settings has no tenant ID, so Gangway cannot sign in to your own tenant to check the registration.")
            .fix("Enter your tenant ID in System Settings (Entra admin center → Overview → Tenant ID)."),
    }
}

/// Before the setup: System Settings hold no Application (client) ID, so nothing that needs the
/// app can be checked.
pub fn not_set_up() -> Check {
    Check::new("app_registration", "Gangway's app registration is set up", CheckStatus::Fail)
        .detail("Not set up: System Settings hold no Application (client) ID, so customers cannot consent, nothing syncs and no one signs in with Microsoft.")
        .fix("Run the setup: console → Setup (one sign-in by an administrator of your tenant), or `gangway setup --tenant <your tenant id>`. To use an app registered by hand, enter its Application (client) ID and a client secret in System Settings.")
}

/// How the client-credentials request as the provider app in its own tenant went;
/// `certificate` is the `x5t#S256` of the certificate it was signed with, `None` when it sent
/// the client secret.
pub fn client_credentials<T>(
    token: &Result<T, IdentityError>,
    client_id: &ClientId,
    tenant: &TenantId,
    certificate: Option<&str>,
) -> Check {
    let (title, with) = match certificate {
        Some(x5t) => (
            "Your tenant accepts the app's certificate",
            format!("its certificate (x5t#S256 {x5t}) from Console → App certificates"),
        ),
        None => (
            "Your tenant accepts the app's client secret",
            "the client secret from System Settings".to_owned(),
        ),
    };
    let check = Check::new("client_credentials", title, CheckStatus::Fail);
    let aad = match token {
        Ok(_) => {
            return Check {
                status: CheckStatus::Pass,
                ..check
            }
            .detail(format!(
                "App {client_id} got a token in tenant {tenant} with {with}."
            ));
        }
        Err(IdentityError::Aad(aad)) => aad,
        Err(e @ IdentityError::NoCredential) => {
            return check.detail(format!("{e}.")).fix(
                "Run the setup (console → Setup): it registers a certificate. Or enter a client secret of the app in System Settings.",
            );
        }
        Err(other) => {
            return check
                .detail(format!("The token request failed: {other}."))
                .fix("Check that this server reaches Entra ID (see the first check), then run the doctor again.");
        }
    };
    let code = aad
        .code()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_else(|| aad.error.clone());
    match aad.kind() {
        AadErrorKind::BadSecret => check
            .detail(format!(
                "Entra ID refused the client secret ({code}: invalid client secret): the secret in System Settings is not a current secret of app {client_id}."
            ))
            .fix(format!(
                "Enter the secret's Value, not its Secret ID, in System Settings → Client secret. If it is lost, create a new one: {}",
                new_secret_fix()
            )),
        AadErrorKind::ExpiredSecret => check
            .detail(format!(
                "The client secret has expired ({code}): customers cannot consent and syncs stop."
            ))
            .fix(new_secret_fix()),
        AadErrorKind::AppNotFoundInTenant => check
            .detail(format!(
                "Tenant {tenant} has no app with the Application (client) ID {client_id} ({code})."
            ))
            .fix(format!(
                "Check both IDs in System Settings against {APP} → Overview: Application (client) ID, and Directory (tenant) ID — the tenant the app is registered in."
            )),
        AadErrorKind::UnknownTenant => check
            .detail(format!("Entra ID knows no tenant {tenant} ({code})."))
            .fix("Enter your tenant ID in System Settings (Entra admin center → Overview → Tenant ID)."),
        _ => check
            .detail(format!(
                "Entra ID refused the token request ({code}): {}",
                aad.summary()
            ))
            .fix(format!(
                "Check the Application (client) ID and client secret in System Settings against {APP}."
            )),
    }
}

/// How reading the registration through Graph went.
pub fn registration(
    read: &Result<Option<Value>, GraphError>,
    client_id: &ClientId,
    tenant: &TenantId,
) -> Check {
    let title = "Gangway can read its app registration";
    let check = Check::new("registration", title, CheckStatus::Fail);
    match read {
        Ok(Some(reg)) => Check {
            status: CheckStatus::Pass,
            ..check
        }
        .detail(format!(
            "Read \"{}\" ({client_id}) from Microsoft Graph.",
            text(reg, "/displayName").unwrap_or("the app")
        )),
        Ok(None) => check
            .detail(format!(
                "Microsoft Graph lists no app registration with Application (client) ID {client_id} in tenant {tenant}: the app is registered elsewhere, or only an enterprise application of it is here."
            ))
            .fix(format!(
                "Register the app in your own tenant, or enter the tenant it is registered in as your tenant ID in System Settings ({APP} → Overview → Directory (tenant) ID)."
            )),
        Err(e) if e.is_permission_denied() => check
            .detail(format!(
                "Microsoft Graph refused to read app registrations ({e}): the app lacks {OWN_PERMISSION} in your tenant."
            ))
            .fix(format!(
                "{APP} → API permissions → Add a permission → Microsoft Graph → Application permissions → {OWN_PERMISSION} → Add permissions, then Grant admin consent for your tenant. Customers' admin consent asks for every configured permission, so once granted you may remove {OWN_PERMISSION} from the list again: the grant in your tenant stays."
            ))
            .values([OWN_PERMISSION.to_owned()]),
        Err(e) => check
            .detail(format!("Microsoft Graph did not answer: {e}."))
            .fix("Check GANGWAY_GRAPH_URL (https://graph.microsoft.com) and that this server reaches it, then run the doctor again."),
    }
}

/// Where the doctor learns when the client secret expires.
#[derive(Debug, Clone, Copy)]
pub enum SecretSource<'a> {
    /// The registration as Graph returned it (`passwordCredentials`).
    Registration(&'a Value),
    /// Entra ID refused the secret as expired (AADSTS7000222).
    ExpiredPerEntra,
    /// Only the date entered in System Settings, if any.
    Stored(Option<Date>),
    /// Token requests are signed with a certificate: the secret is not used.
    Unused,
}

/// Every check of the registration's contents; each is a skip (with what to look at by hand)
/// when the registration could not be read. Also returns the secret's expiry when the
/// registration shows it.
pub fn registration_checks(
    reg: Option<&Value>,
    expected: &Expected,
    sso_enabled: bool,
    secret: Option<&Secret>,
    source: SecretSource<'_>,
    now: OffsetDateTime,
) -> (Vec<Check>, Option<Date>) {
    let mut checks = Vec::new();
    for uri in &expected.redirect_uris {
        checks.push(match reg {
            Some(reg) => redirect_uri(reg, uri),
            None => skipped(uri.check, uri.title, redirect_fix(&uri.uri)).values([uri.uri.clone()]),
        });
    }
    checks.push(match reg {
        Some(reg) => logout_url(reg, &expected.logout_url, sso_enabled),
        None => skipped("logout_url", LOGOUT_TITLE, logout_fix(&expected.logout_url))
            .values([expected.logout_url.clone()]),
    });
    checks.push(match reg {
        Some(reg) => audience(reg),
        None => skipped("audience", AUDIENCE_TITLE, audience_fix()),
    });
    checks.push(match reg {
        Some(reg) => wids_claim(reg),
        None => skipped("wids", WIDS_TITLE, wids_fix()),
    });
    let (expiry_check, expiry) = secret_expiry(source, secret, now);
    checks.push(expiry_check);
    checks.push(match reg {
        Some(reg) => access_token_version(reg, &expected.client_id, expected.tenant_id.as_deref()),
        None => skipped(
            "access_token_version",
            TOKEN_VERSION_TITLE,
            token_version_fix(&expected.client_id),
        ),
    });
    for profile in &expected.profiles {
        checks.push(match reg {
            Some(reg) => permissions(reg, profile),
            None => skipped(
                &format!("permissions:{}", profile.id),
                &permissions_title(profile),
                permissions_fix(&profile.delegated, &profile.application),
            ),
        });
    }
    // Users' sign-in asks for its permissions at each sign-in: until an application signs
    // users in, nothing asks for them.
    if expected.signin_in_use {
        let scopes: Vec<String> = expected.signin_scopes.map(str::to_owned).into();
        checks.push(match reg {
            Some(reg) => signin_permissions(reg, &scopes),
            None => skipped(
                SIGNIN_PERMISSIONS,
                SIGNIN_PERMISSIONS_TITLE,
                permissions_fix(&scopes, &[]),
            ),
        });
    }
    (checks, expiry)
}

fn skipped(id: &str, title: &str, fix: String) -> Check {
    Check::new(id, title, CheckStatus::Skip)
        .detail("Not checked: Gangway could not read the app registration (see above).")
        .fix(format!("Check it by hand: {fix}"))
}

fn text<'a>(reg: &'a Value, pointer: &str) -> Option<&'a str> {
    reg.pointer(pointer).and_then(Value::as_str)
}

fn strings<'a>(reg: &'a Value, pointer: &str) -> Vec<&'a str> {
    reg.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn redirect_fix(uri: &str) -> String {
    format!(
        "{APP} → Authentication → Add a platform → Web (or the Web platform's Add URI) → {uri} — exactly, Microsoft compares it character by character — then Save."
    )
}

/// Whether the registration's Web platform has redirect URI `uri` (exactly, as Microsoft
/// matches it); a URI only needed later (`required` false) is a warning when missing.
pub fn redirect_uri(reg: &Value, expected: &super::RedirectUri) -> Check {
    let (id, title, uri, required) = (
        expected.check,
        expected.title,
        expected.uri.as_str(),
        expected.required,
    );
    let web = strings(reg, "/web/redirectUris");
    let check = Check::new(id, title, CheckStatus::Pass).values([uri.to_owned()]);
    if web.contains(&uri) {
        return check.detail(format!("{uri} is registered (Web)."));
    }
    let missing = if required {
        CheckStatus::Fail
    } else {
        CheckStatus::Warn
    };
    let loose = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    let near = web.iter().find(|r| loose(r) == loose(uri));
    let elsewhere = [
        ("/spa/redirectUris", "Single-page application"),
        (
            "/publicClient/redirectUris",
            "Mobile and desktop applications",
        ),
    ]
    .into_iter()
    .find(|(pointer, _)| strings(reg, pointer).contains(&uri));
    let registered = if web.is_empty() {
        "The Web platform has no redirect URI".to_owned()
    } else {
        format!("The Web platform has {}", web.join(", "))
    };
    let mut detail = match (near, elsewhere) {
        (Some(near), _) => format!(
            "{near} is registered, but Microsoft needs exactly {uri} (it compares case and the trailing slash too)."
        ),
        (None, Some((_, platform))) => format!(
            "{uri} is registered under the {platform} platform, which Gangway's sign-ins do not use: it must be under Web."
        ),
        (None, None) => format!("{uri} is not registered. {registered}."),
    };
    if !required {
        detail.push(' ');
        detail.push_str(expected.needed_once);
    }
    Check {
        status: missing,
        ..check
    }
    .detail(detail)
    .fix(redirect_fix(uri))
}

const LOGOUT_TITLE: &str = "Front-channel logout URL";

fn logout_fix(url: &str) -> String {
    format!("{APP} → Authentication → Front-channel logout URL → {url}, then Save.")
}

/// Whether the front-channel logout URL is the console's: without it, signing out of
/// Microsoft leaves operators signed in to the console.
pub fn logout_url(reg: &Value, expected: &str, sso_enabled: bool) -> Check {
    let check =
        Check::new("logout_url", LOGOUT_TITLE, CheckStatus::Pass).values([expected.to_owned()]);
    let found = text(reg, "/web/logoutUrl").filter(|u| !u.is_empty());
    if found == Some(expected) {
        return check.detail(format!("{expected} is set."));
    }
    let seen = match found {
        Some(other) => format!("The front-channel logout URL is {other}, not {expected}."),
        None => "No front-channel logout URL is set.".to_owned(),
    };
    let consequence = if sso_enabled {
        " Operators who sign out of Microsoft stay signed in to the console."
    } else {
        " It is needed once operators sign in with Entra ID."
    };
    Check {
        status: CheckStatus::Warn,
        ..check
    }
    .detail(format!("{seen}{consequence}"))
    .fix(logout_fix(expected))
}

const AUDIENCE_TITLE: &str = "Supported account types: multiple tenants";

fn audience_fix() -> String {
    format!(
        "{APP} → Authentication → Supported account types → Accounts in any organizational directory (Any Microsoft Entra ID tenant – Multitenant), then Save."
    )
}

/// Whether the app is multi-tenant (`signInAudience` `AzureADMultipleOrgs`), so customers'
/// admins can consent to it in their own tenants.
pub fn audience(reg: &Value) -> Check {
    let check = Check::new("audience", AUDIENCE_TITLE, CheckStatus::Pass);
    match text(reg, "/signInAudience").unwrap_or("") {
        MULTI_TENANT_AUDIENCE => {
            check.detail("Accounts in any organizational directory (AzureADMultipleOrgs).")
        }
        "AzureADandPersonalMicrosoftAccount" => Check {
            status: CheckStatus::Warn,
            ..check
        }
        .detail(
            "The app also accepts personal Microsoft accounts (AzureADandPersonalMicrosoftAccount). Customers can consent, but Gangway needs only organizations.",
        )
        .fix(audience_fix()),
        other => Check {
            status: CheckStatus::Fail,
            ..check
        }
        .detail(format!(
            "The app accepts {} only: customers' admins cannot consent to it in their tenants.",
            match other {
                "AzureADMyOrg" => "accounts in your own directory (AzureADMyOrg, single tenant)",
                "PersonalMicrosoftAccount" => "personal Microsoft accounts (PersonalMicrosoftAccount)",
                "" => "an unknown audience (none is set)",
                _ => "an audience Gangway does not know",
            }
        ))
        .fix(audience_fix()),
    }
}

const WIDS_TITLE: &str = "ID tokens carry directory roles (groupMembershipClaims)";

fn wids_fix() -> String {
    format!(
        "{APP} → Token configuration → Add groups claim → tick Directory roles → Save (in the manifest: \"groupMembershipClaims\": \"DirectoryRole\"; \"All\" works too). There is no optional claim named wids: Entra ID puts wids in tokens only for these two settings."
    )
}

/// Whether ID tokens carry `wids` (the signer's directory roles), which Entra ID emits only
/// when the registration's `groupMembershipClaims` is `DirectoryRole` or `All` (access-token
/// claims reference; the portal may write several values, comma-separated). Without it Gangway
/// can confirm a Global Administrator only through Graph, with a permission that reads
/// directory roles.
pub fn wids_claim(reg: &Value) -> Check {
    let check = Check::new("wids", WIDS_TITLE, CheckStatus::Pass);
    let groups = text(reg, "/groupMembershipClaims").unwrap_or("");
    let by_groups = groups
        .split(',')
        .map(str::trim)
        .any(|g| g.eq_ignore_ascii_case("DirectoryRole") || g.eq_ignore_ascii_case("All"));
    if by_groups {
        return check.detail(format!(
            "ID tokens carry wids (groupMembershipClaims is {groups})."
        ));
    }
    let setting = if groups.is_empty() {
        "groupMembershipClaims is not set".to_owned()
    } else {
        format!("groupMembershipClaims is {groups}")
    };
    let optional = reg
        .pointer("/optionalClaims/idToken")
        .and_then(Value::as_array)
        .is_some_and(|claims| {
            claims.iter().any(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("wids"))
            })
        });
    let listed = if optional {
        " (the optional claim wids listed on the registration does nothing)"
    } else {
        ""
    };
    Check {
        status: CheckStatus::Fail,
        ..check
    }
    .detail(format!(
        "{setting}, so ID tokens carry no wids{listed}: Gangway can then confirm that the admin giving consent is a Global Administrator only through Microsoft Graph with a permission that reads directory roles (RoleManagement.Read.Directory), and refuses every consent it cannot confirm."
    ))
    .fix(wids_fix())
}

const TOKEN_VERSION_TITLE: &str = "Access tokens for your API";

fn token_version_fix(client_id: &str) -> String {
    format!(
        "{APP} → Manifest: set \"requestedAccessTokenVersion\": 2 in \"api\" (v2.0 tokens always name the client id as their audience), or keep v1.0 and add api://{client_id} under Expose an API → Application ID URI; then Save."
    )
}

/// Which access tokens Entra ID mints for the API the app exposes: the version the
/// registration asks for in `api.requestedAccessTokenVersion` (`null`, Microsoft's default,
/// means v1.0), whichever endpoint the caller used. Gangway accepts both; a v1.0 token's
/// audience is the application ID URI the client asked for, so then `api://{client id}`
/// must be one of the registration's `identifierUris`.
pub fn access_token_version(reg: &Value, client_id: &str, tenant: Option<&str>) -> Check {
    let check = Check::new(
        "access_token_version",
        TOKEN_VERSION_TITLE,
        CheckStatus::Pass,
    );
    let tenant = tenant.unwrap_or("{tenant}");
    let app_id_uri = format!("api://{client_id}");
    let version = reg
        .pointer("/api/requestedAccessTokenVersion")
        .unwrap_or(&Value::Null);
    let v1 = |asked: &str| {
        if strings(reg, "/identifierUris").contains(&app_id_uri.as_str()) {
            check.clone().detail(format!(
                "v1.0 tokens (api.requestedAccessTokenVersion is {asked}): Gangway accepts them issued by https://sts.windows.net/{tenant}/ for {app_id_uri}, the calling app in appid."
            ))
        } else {
            Check {
                status: CheckStatus::Warn,
                ..check.clone()
            }
            .detail(format!(
                "v1.0 tokens (api.requestedAccessTokenVersion is {asked}) name the application ID URI a client asked for as their audience, and {app_id_uri} is not among the registration's identifierUris: Gangway refuses tokens for any other."
            ))
            .fix(token_version_fix(client_id))
        }
    };
    match version.as_u64() {
        Some(2) => check.detail(format!(
            "v2.0 tokens (api.requestedAccessTokenVersion is 2): Gangway accepts them issued for tenant {tenant} to {client_id}, the calling app in azp."
        )),
        Some(1) => v1("1"),
        None if version.is_null() => v1("null, Microsoft's default"),
        _ => Check {
            status: CheckStatus::Fail,
            ..check
        }
        .detail(format!(
            "api.requestedAccessTokenVersion is {version}, which Entra ID does not know (1, 2 or null)."
        ))
        .fix(token_version_fix(client_id)),
    }
}

/// When the client secret in use expires: a fail once expired, a warning within
/// [`WARN_DAYS`] (an urgent one within [`ALARM_DAYS`]). Of the registration's secrets, the one
/// in use is the one whose `hint` (its first three characters) matches the configured secret.
/// Returns the expiry date read from the registration, if any.
pub fn secret_expiry(
    source: SecretSource<'_>,
    secret: Option<&Secret>,
    now: OffsetDateTime,
) -> (Check, Option<Date>) {
    let title = "Client secret expiry";
    let check = Check::new("secret_expiry", title, CheckStatus::Pass);
    let (end, whence, from_registration) = match source {
        SecretSource::Unused => {
            return (
                check.detail("Not used: token requests are signed with the app certificate."),
                None,
            );
        }
        SecretSource::ExpiredPerEntra => {
            return (
                Check {
                    status: CheckStatus::Fail,
                    ..check
                }
                .detail("Entra ID refuses the client secret as expired (AADSTS7000222).")
                .fix(new_secret_fix()),
                None,
            );
        }
        SecretSource::Stored(None) => {
            return (
                Check {
                    status: CheckStatus::Skip,
                    ..check
                }
                .detail("Not checked: Gangway could not read the app registration, and System Settings has no expiry date.")
                .fix(format!(
                    "Look it up in {APP} → Certificates & secrets (column Expires) and enter it in System Settings → Client secret expires."
                )),
                None,
            );
        }
        SecretSource::Stored(Some(date)) => (
            date.midnight().assume_utc(),
            " (as entered in System Settings; the registration could not be read)".to_owned(),
            false,
        ),
        SecretSource::Registration(reg) => {
            let credentials: Vec<(OffsetDateTime, String)> = reg
                .get("passwordCredentials")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| {
                            let end = c.get("endDateTime").and_then(Value::as_str)?;
                            let end = OffsetDateTime::parse(end, &Rfc3339).ok()?;
                            let hint = c.get("hint").and_then(Value::as_str).unwrap_or("");
                            Some((end, hint.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if credentials.is_empty() {
                return (
                    Check {
                        status: CheckStatus::Fail,
                        ..check
                    }
                    .detail("The registration has no client secret.")
                    .fix(new_secret_fix()),
                    None,
                );
            }
            // No secret stored: none of the registration's is Gangway's.
            let prefix: String = secret
                .map(|s| s.expose().chars().take(3).collect())
                .unwrap_or_default();
            let mine: Vec<_> = credentials
                .iter()
                .filter(|(_, hint)| !hint.is_empty() && *hint == prefix)
                .collect();
            // Two secrets starting alike: the earlier expiry is the one to worry about.
            match mine.iter().min_by_key(|(end, _)| *end) {
                Some((end, hint)) => (*end, format!(" (the secret starting {hint}…)"), true),
                None => {
                    let (end, _) = credentials
                        .iter()
                        .min_by_key(|(end, _)| *end)
                        .expect("not empty");
                    return (
                        Check {
                            status: CheckStatus::Warn,
                            ..check
                        }
                        .detail(format!(
                            "None of the registration's {} secret(s) starts like the one in System Settings, so Gangway cannot tell which it uses; the earliest expires on {}.",
                            credentials.len(),
                            end.date()
                        ))
                        .fix(format!(
                            "Compare the secrets' hints in {APP} → Certificates & secrets with the secret in System Settings, and enter its expiry in System Settings → Client secret expires."
                        )),
                        None,
                    );
                }
            }
        }
    };
    let date = end.date();
    let found = from_registration.then_some(date);
    // Calendar days, as people count them: a secret ending on the 11th expires "in 10 days"
    // on the 1st, whatever the hour.
    let days = (date - now.date()).whole_days();
    let check = if end <= now {
        Check {
            status: CheckStatus::Fail,
            ..check
        }
        .detail(format!(
            "The client secret expired on {date}{whence}: Entra ID refuses it, so customers cannot consent and syncs stop."
        ))
        .fix(new_secret_fix())
    } else if days <= ALARM_DAYS {
        Check {
            status: CheckStatus::Warn,
            ..check
        }
        .detail(format!(
            "Urgent: the client secret expires in {} on {date}{whence}. After that customers cannot consent and every sync stops.",
            plural_days(days)
        ))
        .fix(format!("Replace it now. {}", new_secret_fix()))
    } else if days <= WARN_DAYS {
        Check {
            status: CheckStatus::Warn,
            ..check
        }
        .detail(format!(
            "The client secret expires in {} on {date}{whence}.",
            plural_days(days)
        ))
        .fix(format!("Before then: {}", new_secret_fix()))
    } else {
        check.detail(format!(
            "The client secret expires on {date}, in {}{whence}. Microsoft lets a secret live at most {MAX_SECRET_MONTHS} months.",
            plural_days(days)
        ))
    };
    (check, found)
}

fn plural_days(days: i64) -> String {
    match days {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

fn permissions_title(profile: &ProfileNeeds) -> String {
    format!("Permissions of profile “{}”", profile.name)
}

fn permissions_fix(delegated: &[String], application: &[String]) -> String {
    let mut kinds = Vec::new();
    if !delegated.is_empty() {
        kinds.push(format!("Delegated permissions: {}", delegated.join(", ")));
    }
    if !application.is_empty() {
        kinds.push(format!(
            "Application permissions: {}",
            application.join(", ")
        ));
    }
    format!(
        "{APP} → API permissions → Add a permission → Microsoft Graph → {} → Add permissions. Customers grant them with their consent; tenants that consented before must consent again to get new ones.",
        kinds.join("; ")
    )
}

/// Whether the registration's `requiredResourceAccess` for Microsoft Graph holds every
/// permission `profile` needs: its delegated ones as `Scope`, its application ones as `Role`,
/// matched by Microsoft's permission ids. A missing one fails, naming it; a name Gangway has
/// no id for is a warning ("cannot verify").
pub fn permissions(reg: &Value, profile: &ProfileNeeds) -> Check {
    requested(
        reg,
        &format!("permissions:{}", profile.id),
        &permissions_title(profile),
        &format!("profile “{}”", profile.name),
        &profile.delegated,
        &profile.application,
    )
}

/// The check of id `id` that the registration requests every one of `delegated` and
/// `application`, which `needed_by` (words) needs.
fn requested(
    reg: &Value,
    id: &str,
    title: &str,
    needed_by: &str,
    delegated: &[String],
    application: &[String],
) -> Check {
    let granted: BTreeSet<(String, String)> = reg
        .get("requiredResourceAccess")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| {
            r.get("resourceAppId")
                .and_then(Value::as_str)
                .is_some_and(|id| id.eq_ignore_ascii_case(GRAPH_APP_ID))
        })
        .filter_map(|r| r.get("resourceAccess").and_then(Value::as_array))
        .flatten()
        .filter_map(|a| {
            Some((
                a.get("id")?.as_str()?.to_ascii_lowercase(),
                a.get("type")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let (mut missing, mut unknown, mut present) = (Vec::new(), Vec::new(), Vec::new());
    let (mut missing_delegated, mut missing_application) = (Vec::new(), Vec::new());
    for (names, kind) in [
        (delegated, Kind::Delegated),
        (application, Kind::Application),
    ] {
        for name in names {
            let label = format!("{name} ({})", kind.label());
            match graph_ids::lookup(name, kind) {
                Lookup::Id(id, canonical) => {
                    if granted.contains(&(id.to_owned(), kind.access_type().to_owned())) {
                        present.push(label);
                    } else {
                        missing.push(format!("{canonical} ({})", kind.label()));
                        match kind {
                            Kind::Delegated => missing_delegated.push(canonical.to_owned()),
                            Kind::Application => missing_application.push(canonical.to_owned()),
                        }
                    }
                }
                Lookup::NoSuchKind(canonical) => unknown.push(format!(
                    "{canonical} ({}: Microsoft offers it only as {})",
                    kind.label(),
                    match kind {
                        Kind::Delegated => "an application permission",
                        Kind::Application => "a delegated permission",
                    }
                )),
                Lookup::Unknown => unknown.push(label),
            }
        }
    }
    let cannot_verify = (!unknown.is_empty()).then(|| {
        format!(
            " Gangway cannot verify {}: it does not know Microsoft's id for {}; check that API permissions lists {}.",
            unknown.join(", "),
            if unknown.len() == 1 { "it" } else { "them" },
            if unknown.len() == 1 { "it" } else { "them" },
        )
    });
    if !missing.is_empty() {
        let mut names: Vec<String> = Vec::new();
        for name in missing_delegated.iter().chain(&missing_application) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        return Check::new(id, title, CheckStatus::Fail)
            .detail(format!(
                "The registration lacks {}, which {needed_by} needs: customers' consent cannot grant what the app does not ask for.{}",
                join_and(&missing),
                cannot_verify.unwrap_or_default()
            ))
            .fix(permissions_fix(&missing_delegated, &missing_application))
            .values(names);
    }
    if let Some(cannot_verify) = cannot_verify {
        return Check::new(id, title, CheckStatus::Warn)
            .detail(format!(
                "Requested: {}.{cannot_verify}",
                if present.is_empty() {
                    "none Gangway can check".to_owned()
                } else {
                    present.join(", ")
                }
            ))
            .fix(permissions_fix(delegated, application));
    }
    Check::new(id, title, CheckStatus::Pass).detail(format!("Requested: {}.", present.join(", ")))
}

/// The id of the sign-in permissions check.
const SIGNIN_PERMISSIONS: &str = "signin_permissions";
const SIGNIN_PERMISSIONS_TITLE: &str = "Permissions of users' sign-in to your applications";

/// Whether the registration requests the delegated `scopes` (`openid profile email`) users'
/// sign-in through Gangway asks of Entra ID.
pub fn signin_permissions(reg: &Value, scopes: &[String]) -> Check {
    requested(
        reg,
        SIGNIN_PERMISSIONS,
        SIGNIN_PERMISSIONS_TITLE,
        "users' sign-in to your applications",
        scopes,
        &[],
    )
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::identity::AadError;

    const PUBLIC: &str = "https://onboard.provider.example/";

    fn profile() -> ProfileNeeds {
        ProfileNeeds {
            id: uuid::Uuid::nil().into(),
            name: "Read-only directory".into(),
            delegated: vec![
                "User.Read.All".into(),
                "Group.Read.All".into(),
                "User.Read".into(),
            ],
            application: vec![
                "User.Read.All".into(),
                "Group.Read.All".into(),
                "Organization.Read.All".into(),
            ],
        }
    }

    /// A registration as Graph returns it, with every right value.
    fn good() -> Value {
        json!({
            "id": "1b8c2f3e-0000-4000-8000-000000000001",
            "appId": "6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f",
            "displayName": "Gangway",
            "signInAudience": "AzureADMultipleOrgs",
            "identifierUris": ["api://6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f"],
            "api": {"requestedAccessTokenVersion": null, "oauth2PermissionScopes": []},
            "groupMembershipClaims": "DirectoryRole",
            "optionalClaims": null,
            "passwordCredentials": [
                {"displayName": "old", "endDateTime": "2026-01-10T09:00:00Z", "hint": "Xy7", "keyId": "a", "secretText": null, "startDateTime": "2024-01-10T09:00:00Z"},
                {"displayName": "Gangway", "endDateTime": "2027-06-30T12:00:00.1234567Z", "hint": "abc", "keyId": "b", "secretText": null, "startDateTime": "2025-06-30T12:00:00Z"}
            ],
            "publicClient": {"redirectUris": []},
            "spa": {"redirectUris": []},
            "web": {
                "logoutUrl": "https://onboard.provider.example/console/sso/logout",
                "redirectUris": [
                    "https://onboard.provider.example/authenticate/OAuth2Callback",
                    "https://onboard.provider.example/console/sso/callback",
                    "https://onboard.provider.example/oidc/callback"
                ]
            },
            "requiredResourceAccess": [
                {"resourceAppId": "00000002-0000-0000-c000-000000000000", "resourceAccess": [{"id": "311a71cc-e848-46a1-bdf8-97ff7156d8e6", "type": "Scope"}]},
                {"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": [
                    {"id": "a154be20-db9c-4678-8ab7-66f6cc099a59", "type": "Scope"},
                    {"id": "5f8c59db-677d-491f-a6b8-5f174b11ec1d", "type": "Scope"},
                    {"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"},
                    {"id": "37f7f235-527c-4136-accd-4a02d197296e", "type": "Scope"},
                    {"id": "14dad69e-099b-42c9-810b-d002981feec1", "type": "Scope"},
                    {"id": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0", "type": "Scope"},
                    {"id": "df021288-bdef-4463-88db-98f22de89214", "type": "Role"},
                    {"id": "5b567255-7703-4780-807c-7be8301ae99b", "type": "Role"},
                    {"id": "498476ce-e0fe-48b0-b801-37ba7e2685c6", "type": "Role"}
                ]}
            ]
        })
    }

    fn expected() -> Expected {
        Expected {
            client_id: "6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f".into(),
            tenant_id: None,
            redirect_uris: vec![
                redirect("redirect_uri", "authenticate/OAuth2Callback", true, ""),
                redirect(
                    "sso_redirect_uri",
                    "console/sso/callback",
                    false,
                    "It is needed once operators sign in with Entra ID.",
                ),
                redirect(
                    "signin_redirect_uri",
                    "oidc/callback",
                    false,
                    "It is needed once an application signs users in.",
                ),
            ],
            logout_url: format!("{PUBLIC}console/sso/logout"),
            sign_in_audience: MULTI_TENANT_AUDIENCE,
            account_types: "",
            group_membership_claims: "DirectoryRole",
            profiles: vec![profile()],
            own_permission: OWN_PERMISSION,
            signin_scopes: super::super::SIGNIN_SCOPES,
            signin_in_use: false,
        }
    }

    fn redirect(
        check: &'static str,
        path: &str,
        required: bool,
        needed_once: &'static str,
    ) -> super::super::RedirectUri {
        super::super::RedirectUri {
            uri: format!("{PUBLIC}{path}"),
            purpose: "",
            required,
            check,
            title: "t",
            needed_once,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    fn by_id<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}"))
    }

    #[test]
    fn a_good_registration_passes_every_check() {
        let reg = good();
        let (checks, expiry) = registration_checks(
            Some(&reg),
            &expected(),
            true,
            Some(&Secret::new("abc~secret")),
            SecretSource::Registration(&reg),
            NOW,
        );
        for c in &checks {
            assert_eq!(c.status, CheckStatus::Pass, "{c:?}");
        }
        assert_eq!(checks.len(), 9);
        assert_eq!(expiry, Some(time::macros::date!(2027 - 06 - 30)));
        let secret = by_id(&checks, "secret_expiry");
        assert!(secret.detail.contains("2027-06-30") && secret.detail.contains("211 days"));
        assert!(secret.detail.contains("24 months"), "{}", secret.detail);
    }

    #[test]
    fn an_access_token_version_entra_does_not_know_fails() {
        let mut reg = good();
        reg["api"]["requestedAccessTokenVersion"] = json!(3);
        let check = access_token_version(&reg, &expected().client_id, None);
        assert_eq!(check.status, CheckStatus::Fail, "{check:?}");
        assert!(check.detail.contains("is 3"), "{}", check.detail);
    }

    #[test]
    fn redirect_uris_must_match_exactly_and_under_web() {
        let consent = redirect("redirect_uri", "authenticate/OAuth2Callback", true, "");
        let uri = consent.uri.clone();
        let mut reg = good();
        reg["web"]["redirectUris"] = json!([format!("{PUBLIC}authenticate/oauth2callback/")]);
        let c = redirect_uri(&reg, &consent);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("needs exactly"), "{}", c.detail);
        assert!(c.fix.as_deref().unwrap().contains(&uri));
        assert_eq!(c.values, vec![uri.clone()]);

        reg["web"]["redirectUris"] = json!([]);
        reg["spa"]["redirectUris"] = json!([uri]);
        let c = redirect_uri(&reg, &consent);
        assert!(c.detail.contains("Single-page application"), "{}", c.detail);

        reg["spa"]["redirectUris"] = json!([]);
        reg["web"]["redirectUris"] = json!(["https://elsewhere.example/cb"]);
        let c = redirect_uri(&reg, &consent);
        assert!(
            c.detail.contains("is not registered") && c.detail.contains("elsewhere.example"),
            "{}",
            c.detail
        );

        // Operator sign-in's URI, while operator sign-in is off: a warning.
        let mut sso = expected().redirect_uris[1].clone();
        let c = redirect_uri(&reg, &sso);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(c.detail.contains("once operators sign in"));
        sso.required = true;
        assert_eq!(redirect_uri(&reg, &sso).status, CheckStatus::Fail);
    }

    #[test]
    fn users_sign_in_needs_its_redirect_uri_and_openid_profile_email_once_in_use() {
        let mut reg = good();
        reg["web"]["redirectUris"] = json!([format!("{PUBLIC}authenticate/OAuth2Callback")]);
        reg["requiredResourceAccess"][1]["resourceAccess"]
            .as_array_mut()
            .unwrap()
            .retain(|a| a["id"] != "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0");
        let scopes: Vec<String> = super::super::SIGNIN_SCOPES.map(str::to_owned).into();
        let mut expected = expected();
        let idle = registration_checks(
            Some(&reg),
            &expected,
            true,
            Some(&Secret::new("abc~secret")),
            SecretSource::Registration(&reg),
            NOW,
        )
        .0;
        let uri = by_id(&idle, "signin_redirect_uri");
        assert_eq!(uri.status, CheckStatus::Warn, "{uri:?}");
        assert!(uri.detail.contains("once an application signs users in"));
        assert_eq!(uri.values, [format!("{PUBLIC}oidc/callback")]);
        assert!(
            idle.iter().all(|c| c.id != "signin_permissions"),
            "nothing asks for them yet"
        );

        // Once an application signs users in: failures, naming what is missing.
        expected.signin_in_use = true;
        expected.redirect_uris[2].required = true;
        let busy = registration_checks(
            Some(&reg),
            &expected,
            true,
            Some(&Secret::new("abc~secret")),
            SecretSource::Registration(&reg),
            NOW,
        )
        .0;
        assert_eq!(
            by_id(&busy, "signin_redirect_uri").status,
            CheckStatus::Fail
        );
        let permissions = by_id(&busy, "signin_permissions");
        assert_eq!(permissions.status, CheckStatus::Fail, "{permissions:?}");
        assert!(
            permissions.detail.contains("email (delegated)"),
            "{permissions:?}"
        );
        assert_eq!(permissions.values, ["email"]);
        assert_eq!(
            signin_permissions(&good(), &scopes).status,
            CheckStatus::Pass
        );
    }

    #[test]
    fn the_logout_url_is_a_warning_naming_what_it_found() {
        let url = format!("{PUBLIC}console/sso/logout");
        assert_eq!(logout_url(&good(), &url, true).status, CheckStatus::Pass);
        let mut reg = good();
        reg["web"]["logoutUrl"] = json!(null);
        let c = logout_url(&reg, &url, true);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.detail.contains("No front-channel logout URL") && c.detail.contains("stay signed in")
        );
        reg["web"]["logoutUrl"] = json!("https://old.example/logout");
        let c = logout_url(&reg, &url, false);
        assert!(c.detail.contains("old.example") && c.detail.contains("once operators"));
        assert!(c.fix.unwrap().contains(&url));
    }

    #[test]
    fn only_a_multi_tenant_audience_lets_customers_consent() {
        let mut reg = good();
        reg["signInAudience"] = json!("AzureADMyOrg");
        let c = audience(&reg);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("single tenant"));
        assert!(c.fix.unwrap().contains("Multitenant"));
        reg["signInAudience"] = json!("AzureADandPersonalMicrosoftAccount");
        assert_eq!(audience(&reg).status, CheckStatus::Warn);
        reg["signInAudience"] = json!(null);
        assert_eq!(audience(&reg).status, CheckStatus::Fail);
    }

    #[test]
    fn wids_come_only_from_group_membership_claims_directory_role_or_all() {
        let mut reg = good();
        assert_eq!(wids_claim(&reg).status, CheckStatus::Pass);
        reg["groupMembershipClaims"] = json!("SecurityGroup, DirectoryRole");
        assert_eq!(wids_claim(&reg).status, CheckStatus::Pass);
        reg["groupMembershipClaims"] = json!("All");
        assert_eq!(wids_claim(&reg).status, CheckStatus::Pass);
        // The registration the doctor approved before: an optional claim "wids", which Entra ID
        // does not have, and no groupMembershipClaims.
        reg["groupMembershipClaims"] = json!(null);
        reg["optionalClaims"] = json!({"idToken": [{"name": "wids"}]});
        let c = wids_claim(&reg);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.detail.contains("groupMembershipClaims is not set"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("does nothing"), "{}", c.detail);
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("Directory roles")
                && fix.contains("\"groupMembershipClaims\": \"DirectoryRole\""),
            "{fix}"
        );
        reg["groupMembershipClaims"] = json!("SecurityGroup");
        let c = wids_claim(&reg);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("groupMembershipClaims is SecurityGroup"));
    }

    #[test]
    fn secret_expiry_fails_when_expired_and_warns_ahead() {
        let secret = Secret::new("abc~secret");
        let at = |end: &str| {
            let mut reg = good();
            reg["passwordCredentials"][1]["endDateTime"] = json!(end);
            secret_expiry(SecretSource::Registration(&reg), Some(&secret), NOW)
        };
        let (c, date) = at("2026-11-30T00:00:00Z");
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("expired on 2026-11-30"));
        assert!(c.fix.as_deref().unwrap().contains("24 months"));
        assert_eq!(date, Some(time::macros::date!(2026 - 11 - 30)));

        let (c, _) = at("2026-12-11T12:00:00Z");
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.detail.starts_with("Urgent") && c.detail.contains("10 days"),
            "{}",
            c.detail
        );
        assert!(c.fix.as_deref().unwrap().starts_with("Replace it now"));

        let (c, _) = at("2027-01-20T12:00:00Z");
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(!c.detail.starts_with("Urgent") && c.detail.contains("50 days"));

        let (c, _) = at("2027-02-20T12:00:00Z");
        assert_eq!(c.status, CheckStatus::Pass);

        // The secret in use is told by its hint: the old one expiring does not matter.
        let (c, _) = at("2027-06-30T12:00:00Z");
        assert_eq!(c.status, CheckStatus::Pass, "{}", c.detail);
        // A secret no hint matches: cannot tell which.
        let reg = good();
        let (c, date) = secret_expiry(
            SecretSource::Registration(&reg),
            Some(&Secret::new("zzz")),
            NOW,
        );
        assert_eq!((c.status, date), (CheckStatus::Warn, None));
        assert!(c.detail.contains("2026-01-10"));
        let mut reg = good();
        reg["passwordCredentials"] = json!([]);
        let (c, _) = secret_expiry(SecretSource::Registration(&reg), Some(&secret), NOW);
        assert_eq!(c.status, CheckStatus::Fail);
    }

    #[test]
    fn secret_expiry_without_the_registration() {
        let secret = Secret::new("abc");
        let (c, date) = secret_expiry(SecretSource::ExpiredPerEntra, Some(&secret), NOW);
        assert_eq!((c.status, date), (CheckStatus::Fail, None));
        assert!(c.detail.contains("AADSTS7000222"));
        let (c, date) = secret_expiry(
            SecretSource::Stored(Some(time::macros::date!(2026 - 12 - 20))),
            Some(&secret),
            NOW,
        );
        assert_eq!((c.status, date), (CheckStatus::Warn, None));
        assert!(c.detail.contains("as entered in System Settings"));
        let (c, _) = secret_expiry(SecretSource::Stored(None), Some(&secret), NOW);
        assert_eq!(c.status, CheckStatus::Skip);
    }

    #[test]
    fn a_permission_a_profile_needs_but_the_registration_lacks_is_named() {
        let mut teams = profile();
        teams.name = "Live Teams".into();
        teams.delegated.push("Presence.Read.All".into());
        teams.application.push("presence.read.all".into());
        let c = permissions(&good(), &teams);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.detail.contains(
                "lacks Presence.Read.All (delegated) and Presence.Read.All (application)"
            ),
            "{}",
            c.detail
        );
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("Delegated permissions: Presence.Read.All")
                && fix.contains("Application permissions: Presence.Read.All"),
            "{fix}"
        );
        assert_eq!(c.values, vec!["Presence.Read.All".to_owned()]);

        // The same permission under another resource, or of the other kind, does not count.
        let mut reg = good();
        reg["requiredResourceAccess"][1]["resourceAccess"] = json!([
            {"id": "df021288-bdef-4463-88db-98f22de89214", "type": "Scope"}
        ]);
        let c = permissions(&reg, &profile());
        assert!(c.detail.contains("User.Read.All (application)"));

        // A name Gangway has no id for cannot be verified: a warning, not a failure.
        let mut custom = profile();
        custom.delegated.push("Coffee.Make.All".into());
        let c = permissions(&good(), &custom);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.detail
                .contains("cannot verify Coffee.Make.All (delegated)"),
            "{}",
            c.detail
        );
        let mut odd = profile();
        odd.application.push("User.Read".into());
        assert!(
            permissions(&good(), &odd)
                .detail
                .contains("only as a delegated permission")
        );
    }

    #[test]
    fn without_the_registration_every_check_is_skipped_with_what_to_look_at() {
        let (checks, expiry) = registration_checks(
            None,
            &expected(),
            false,
            Some(&Secret::new("abc")),
            SecretSource::Stored(None),
            NOW,
        );
        assert_eq!(expiry, None);
        assert!(
            checks.iter().all(|c| c.status == CheckStatus::Skip),
            "{checks:?}"
        );
        let redirect = by_id(&checks, "redirect_uri");
        assert!(
            redirect
                .fix
                .as_deref()
                .unwrap()
                .contains("authenticate/OAuth2Callback")
        );
        assert_eq!(redirect.values.len(), 1);
        assert!(
            by_id(&checks, "permissions:00000000-0000-0000-0000-000000000000")
                .fix
                .as_deref()
                .unwrap()
                .contains("Organization.Read.All")
        );
    }

    #[test]
    fn credentials_name_the_fault() {
        let client = ClientId::parse("6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f").unwrap();
        let tenant = TenantId::parse("84da47f5-0000-4000-8000-0000000000aa").unwrap();
        let refused = |code: u32, text: &str| -> Result<(), IdentityError> {
            Err(IdentityError::Aad(Box::new(AadError {
                error: "invalid_client".into(),
                error_description: Some(format!("AADSTS{code}: {text}")),
                error_codes: vec![code],
                ..AadError::default()
            })))
        };
        let c = client_credentials(
            &refused(7000215, "Invalid client secret provided."),
            &client,
            &tenant,
            None,
        );
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("AADSTS7000215") && c.detail.contains("invalid client secret"));
        assert!(c.fix.unwrap().contains("Value, not its Secret ID"));
        let c = client_credentials(&refused(7000222, "expired"), &client, &tenant, None);
        assert!(c.detail.contains("expired"));
        let c = client_credentials(&refused(700016, "not found"), &client, &tenant, None);
        assert!(c.detail.contains("has no app"));
        let ok: Result<(), IdentityError> = Ok(());
        let c = client_credentials(&ok, &client, &tenant, None);
        assert_eq!(c.status, CheckStatus::Pass);
        assert!(c.detail.contains("with the client secret"), "{}", c.detail);
        // Signed with a certificate: the line names it, never the secret.
        let c = client_credentials(&ok, &client, &tenant, Some("x5t-of-the-cert"));
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(c.title, "Your tenant accepts the app's certificate");
        assert!(
            c.detail
                .contains("its certificate (x5t#S256 x5t-of-the-cert)")
                && !c.detail.contains("secret"),
            "{}",
            c.detail
        );
        assert_eq!(provider_tenant(None).status, CheckStatus::Fail);
        assert!(
            provider_tenant(None)
                .fix
                .unwrap()
                .contains("Enter your tenant ID in System Settings")
        );
    }

    #[test]
    fn reading_the_registration_needs_application_read_all() {
        let client = ClientId::parse("6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f").unwrap();
        let tenant = TenantId::parse("84da47f5-0000-4000-8000-0000000000aa").unwrap();
        let denied = Err(GraphError::Api {
            status: 403,
            code: "Authorization_RequestDenied".into(),
            message: "Insufficient privileges to complete the operation.".into(),
        });
        let c = registration(&denied, &client, &tenant);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.fix.unwrap().contains("Application.Read.All"));
        let c = registration(&Ok(None), &client, &tenant);
        assert!(c.detail.contains("no app registration"));
        assert_eq!(
            registration(&Ok(Some(good())), &client, &tenant).status,
            CheckStatus::Pass
        );
    }

    #[test]
    fn discovery_checks_the_issuer_against_the_authority() {
        let authority = Url::parse("https://login.microsoftonline.com").unwrap();
        let doc = |issuer: &str| {
            Ok(Discovery {
                url: "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration".into(),
                issuer: issuer.into(),
                token_endpoint: String::new(),
            })
        };
        assert_eq!(
            discovery(
                &doc("https://login.microsoftonline.com/{tenantid}/v2.0"),
                &authority
            )
            .status,
            CheckStatus::Pass
        );
        let c = discovery(
            &doc("https://login.example.net/{tenantid}/v2.0"),
            &authority,
        );
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.fix
                .unwrap()
                .contains("GANGWAY_AUTHORITY to https://login.example.net")
        );
        let c = discovery(
            &Err(IdentityError::Transport("connection refused".into())),
            &authority,
        );
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("connection refused"));
    }
}
