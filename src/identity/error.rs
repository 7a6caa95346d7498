//! Errors from Entra ID: Microsoft's own error bodies, ID-token rejections, transport failures.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a call to Entra ID failed. Messages never contain tokens, codes or secrets.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Entra ID answered with its JSON error (`error`, `error_description`, `error_codes`).
    #[error("Entra ID refused the request: {0}")]
    Aad(Box<AadError>),
    /// The ID token in the token response failed validation.
    #[error("the ID token was rejected: {0}")]
    InvalidIdToken(IdTokenProblem),
    /// The request could not be made or its answer could not be read.
    #[error("could not talk to Entra ID: {0}")]
    Transport(String),
    /// The provider app has neither an active certificate nor a client secret yet: nothing
    /// was sent.
    #[error(
        "the provider app has no credential yet (no certificate, no client secret): run the setup (console → Setup, or `gangway setup`)"
    )]
    NoCredential,
}

impl IdentityError {
    /// The classified AADSTS outcome, when Entra ID answered with an error.
    pub fn aad_kind(&self) -> Option<AadErrorKind> {
        match self {
            Self::Aad(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// Why an operator's sign-in with Entra ID was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorSignInError {
    /// The code could not be redeemed, or the ID token failed a check.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A valid token, but from another tenant than the provider's own.
    #[error("signed in to tenant {actual}, not the provider's tenant {expected}")]
    WrongTenant {
        /// The provider's tenant.
        expected: crate::types::TenantId,
        /// The tenant the token was issued by.
        actual: crate::types::TenantId,
        /// Who signed in there.
        username: String,
    },
    /// The user is in more groups than fit in a token: Entra sent the overage claim instead of
    /// `groups`, so the groups cannot be read from it.
    #[error("the user is in too many groups for the groups claim; map app roles instead")]
    GroupsOverage {
        /// Who signed in.
        username: String,
        /// Their object id.
        oid: uuid::Uuid,
    },
}

/// Why a customer user's sign-in with Entra ID was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserSignInError {
    /// The code could not be redeemed, or the ID token failed a check.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A valid token, but from another tenant than the one the user was routed to.
    #[error("signed in to tenant {actual}, not the routed tenant {expected}")]
    WrongTenant {
        /// The tenant Gangway routed the user to.
        expected: crate::types::TenantId,
        /// The tenant the token was issued by.
        actual: crate::types::TenantId,
        /// Who signed in there.
        username: String,
    },
}

/// The longest `error` kept from a redirect (Microsoft's are a few words).
const MAX_ERROR_CHARS: usize = 64;
/// The longest `error_description` kept from a redirect.
const MAX_DESCRIPTION_CHARS: usize = 1_000;

/// Microsoft's OAuth error body, e.g.
/// `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret …","error_codes":[7000215],…}`.
/// Also built from the `error`/`error_description` query parameters of a redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AadError {
    /// The OAuth error code (`invalid_grant`, `invalid_client`, `consent_required`, …).
    pub error: String,
    /// Human-readable text, starting with `AADSTSnnnn:` for Entra ID errors.
    #[serde(default)]
    pub error_description: Option<String>,
    /// The AADSTS numbers.
    #[serde(default)]
    pub error_codes: Vec<u32>,
    /// Finer classification sent by some errors (`consent_required`, `bad_token`, …).
    #[serde(default)]
    pub suberror: Option<String>,
    /// Microsoft's trace id, useful in support requests.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Microsoft's correlation id, useful in support requests.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// What an AADSTS error means for Gangway, i.e. what the page should tell the admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AadErrorKind {
    /// The tenant does not exist (90002) or its identifier is not a GUID or domain (900023).
    UnknownTenant,
    /// The client secret is wrong (7000215), or missing where one is required (7000218).
    BadSecret,
    /// The client secret has expired (7000222).
    ExpiredSecret,
    /// The application's service principal in the tenant is disabled (7000112).
    AppDisabled,
    /// The application is not known in that tenant (700016): no consent yet, or wrong client id.
    AppNotFoundInTenant,
    /// The application lacks consent for what was asked (65001).
    ConsentMissing,
    /// The user or admin declined consent (65004, or `error=access_denied`).
    ConsentDeclined,
    /// The signed-in user may not grant admin consent (90094, 90099).
    AdminRequired,
    /// The authorization code or refresh token was used, expired or revoked (54005, 70008, 700082).
    CodeExpiredOrReused,
    /// The PKCE verifier does not match the challenge (501481).
    PkceMismatch,
    /// Anything else.
    Other,
}

impl AadError {
    /// An error built from a redirect's `error` and `error_description` query parameters.
    /// Anyone can put anything in a redirect: `error` keeps only the characters RFC 6749 allows
    /// in it (printable ASCII but `"` and `\\`) and both are capped, so what is logged, stored
    /// and shown stays small.
    pub fn from_redirect(error: &str, error_description: Option<&str>) -> Self {
        let error: String = error
            .chars()
            .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
            .take(MAX_ERROR_CHARS)
            .collect();
        Self {
            error,
            error_description: error_description
                .map(|d| d.chars().take(MAX_DESCRIPTION_CHARS).collect()),
            ..Self::default()
        }
    }

    /// The first AADSTS code: from `error_codes`, else parsed from a description that starts
    /// with (or contains) `AADSTSnnnn:`.
    pub fn code(&self) -> Option<u32> {
        if let Some(&c) = self.error_codes.first() {
            return Some(c);
        }
        let desc = self.error_description.as_deref()?;
        let start = desc.find("AADSTS")? + "AADSTS".len();
        let digits: String = desc[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    }

    /// Classifies the error by its AADSTS code, falling back to the OAuth `error` value.
    pub fn kind(&self) -> AadErrorKind {
        match self.code() {
            Some(90002 | 900023) => AadErrorKind::UnknownTenant,
            // 7000218: "The request body must contain … 'client_assertion' or 'client_secret'":
            // the secret was not accepted as one, which the admin fixes the same way.
            Some(7000215 | 7000218) => AadErrorKind::BadSecret,
            Some(7000222) => AadErrorKind::ExpiredSecret,
            Some(7000112) => AadErrorKind::AppDisabled,
            Some(700016) => AadErrorKind::AppNotFoundInTenant,
            Some(65001) => AadErrorKind::ConsentMissing,
            Some(65004) => AadErrorKind::ConsentDeclined,
            Some(90094 | 90099) => AadErrorKind::AdminRequired,
            Some(54005 | 70008 | 700082) => AadErrorKind::CodeExpiredOrReused,
            Some(501481) => AadErrorKind::PkceMismatch,
            Some(_) => AadErrorKind::Other,
            None => match self.error.as_str() {
                "access_denied" => AadErrorKind::ConsentDeclined,
                "consent_required" => AadErrorKind::ConsentMissing,
                _ => AadErrorKind::Other,
            },
        }
    }

    /// True for `invalid_grant`: the refresh token (or code) is dead and only a new interactive
    /// consent helps; callers must not retry.
    pub fn is_invalid_grant(&self) -> bool {
        self.error == "invalid_grant"
    }

    /// True for the answers to a `prompt=none` request that only an interactive sign-in can
    /// resolve (no session, several accounts, consent to ask for).
    pub fn needs_interaction(&self) -> bool {
        matches!(
            self.error.as_str(),
            "login_required"
                | "interaction_required"
                | "consent_required"
                | "account_selection_required"
        )
    }

    /// The description's first line (Microsoft appends trace and correlation ids on later lines).
    pub fn summary(&self) -> &str {
        self.error_description
            .as_deref()
            .and_then(|d| d.lines().next())
            .unwrap_or(&self.error)
    }
}

impl fmt::Display for AadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(code) => write!(f, "{} (AADSTS{code})", self.error),
            None => f.write_str(&self.error),
        }
    }
}

impl std::error::Error for AadError {}

impl oauth2::ErrorResponse for AadError {}

/// Which ID-token check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenProblem {
    /// The RS256 signature does not verify with the key named by `kid`.
    #[error("signature does not verify")]
    BadSignature,
    /// No key with the token's `kid` in the JWKS, even after refetching it.
    #[error("signed with an unknown key")]
    UnknownKey,
    /// `alg` is not RS256 (`none`, HS256, …).
    #[error("signing algorithm not allowed")]
    AlgorithmNotAllowed,
    /// `aud` is not our client id (or names other audiences too), or `azp` names another app.
    #[error("issued for another application")]
    WrongAudience,
    /// `iss` is not `{authority}/{tid}/v2.0`, or disagrees with the key's own issuer.
    #[error("issued by an unexpected issuer")]
    WrongIssuer,
    /// `exp` is in the past (beyond the allowed clock skew).
    #[error("expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the allowed clock skew).
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is older than an ID token may live: a replayed or long-stored token.
    #[error("issued too long ago")]
    IssuedTooLongAgo,
    /// `nonce` is missing or differs from the one sent with the request.
    #[error("nonce does not match")]
    NonceMismatch,
    /// `tid` is missing or not a GUID.
    #[error("tenant id is not a GUID")]
    TenantNotGuid,
    /// Not a well-formed JWT, or a required claim (`oid`, a user name) is missing.
    #[error("malformed")]
    Malformed,
    /// The token response carried no ID token.
    #[error("missing")]
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> AadError {
        serde_json::from_str(body).expect("Microsoft error body parses")
    }

    #[test]
    fn classifies_real_microsoft_error_bodies() {
        let cases = [
            (
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'a8a0e5f5-0d2b-4b5e-8a5f-4f6c1f2f0c11'. Trace ID: 0b7e0f3c-2e8f-4d7e-9f6c-3c4b1d2e6100 Correlation ID: 6c1f1f0a-3f4e-4e7a-a1b1-1b2c3d4e5f60 Timestamp: 2024-05-02 10:11:12Z","error_codes":[7000215],"timestamp":"2024-05-02 10:11:12Z","trace_id":"0b7e0f3c-2e8f-4d7e-9f6c-3c4b1d2e6100","correlation_id":"6c1f1f0a-3f4e-4e7a-a1b1-1b2c3d4e5f60","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#,
                7000215,
                AadErrorKind::BadSecret,
            ),
            (
                r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'c1a7c3a4-0000-4000-8000-000000000000' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.\r\nTrace ID: 1e2d\r\nCorrelation ID: 3f4a\r\nTimestamp: 2024-05-02 10:11:12Z","error_codes":[90002],"timestamp":"2024-05-02 10:11:12Z","trace_id":"1e2d","correlation_id":"3f4a","error_uri":"https://login.microsoftonline.com/error?code=90002"}"#,
                90002,
                AadErrorKind::UnknownTenant,
            ),
            (
                r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'a8a0e5f5-0d2b-4b5e-8a5f-4f6c1f2f0c11' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.","error_codes":[700016],"timestamp":"2024-05-02 10:11:12Z","trace_id":"x","correlation_id":"y"}"#,
                700016,
                AadErrorKind::AppNotFoundInTenant,
            ),
            (
                r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'a8a0e5f5-0d2b-4b5e-8a5f-4f6c1f2f0c11' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.","error_codes":[7000222]}"#,
                7000222,
                AadErrorKind::ExpiredSecret,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented to use the application with ID 'a8a0e5f5-0d2b-4b5e-8a5f-4f6c1f2f0c11' named 'Gangway'. Send an interactive authorization request for this user and resource.","error_codes":[65001],"suberror":"consent_required"}"#,
                65001,
                AadErrorKind::ConsentMissing,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.","error_codes":[54005]}"#,
                54005,
                AadErrorKind::CodeExpiredOrReused,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.","error_codes":[70008]}"#,
                70008,
                AadErrorKind::CodeExpiredOrReused,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2024-01-01T00:00:00Z and was inactive for 90.00:00:00.","error_codes":[700082]}"#,
                700082,
                AadErrorKind::CodeExpiredOrReused,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.","error_codes":[501481]}"#,
                501481,
                AadErrorKind::PkceMismatch,
            ),
            (
                r#"{"error":"invalid_request","error_description":"AADSTS900023: Specified tenant identifier 'not-a-tenant' is neither a valid DNS name, nor a valid external domain.","error_codes":[900023]}"#,
                900023,
                AadErrorKind::UnknownTenant,
            ),
            (
                r#"{"error":"invalid_request","error_description":"AADSTS50059: No tenant-identifying information found in either the request or implied by any provided credentials.","error_codes":[50059]}"#,
                50059,
                AadErrorKind::Other,
            ),
        ];
        for (body, code, kind) in cases {
            let e = parse(body);
            assert_eq!(e.code(), Some(code), "{body}");
            assert_eq!(e.kind(), kind, "{body}");
        }
    }

    #[test]
    fn code_from_description_when_error_codes_absent() {
        let e = AadError::from_redirect(
            "consent_required",
            Some("AADSTS65004: User declined to consent to access the app.\r\nTrace ID: 1"),
        );
        assert_eq!(e.code(), Some(65004));
        assert_eq!(e.kind(), AadErrorKind::ConsentDeclined);
        assert_eq!(
            e.summary(),
            "AADSTS65004: User declined to consent to access the app."
        );
        assert_eq!(e.to_string(), "consent_required (AADSTS65004)");

        let e = parse(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        );
        assert_eq!(e.code(), Some(7000215));
        assert_eq!(e.kind(), AadErrorKind::BadSecret);
    }

    #[test]
    fn falls_back_to_the_oauth_error() {
        assert_eq!(
            AadError::from_redirect("access_denied", None).kind(),
            AadErrorKind::ConsentDeclined
        );
        assert_eq!(
            AadError::from_redirect("server_error", Some("something")).kind(),
            AadErrorKind::Other
        );
        assert_eq!(AadError::from_redirect("server_error", None).code(), None);
    }

    #[test]
    fn redirect_errors_are_sanitised_and_capped_where_they_enter() {
        let e = AadError::from_redirect(
            "access_denied\n2026-12-01 INFO forged\u{0}",
            Some(&"d".repeat(50_000)),
        );
        assert_eq!(e.error, "access_denied2026-12-01 INFO forged");
        assert_eq!(e.error_description.unwrap().len(), 1_000);
        let long = AadError::from_redirect(&"e".repeat(500), None);
        assert_eq!(long.error.len(), 64);
    }
}
