//! What each way a consent can go wrong means for the admin: a page that says what happened
//! and what to do next, and the short reason recorded on the invitation.

use axum::http::StatusCode;

use super::StateProblem;
use super::pages::{Action, Chrome, MessagePage};
use crate::audit::Actor;
use crate::graph::GraphError;
use crate::identity::{AadError, AadErrorKind, IdTokenProblem, IdentityError};
use crate::invitations::{self, Invitation, InvitationStatus, Setback};
use crate::onboarding::ConsentRefusal;
use crate::tenants::ConsentError;
use crate::types::Branding;
use crate::types::ConsentMode;
use crate::types::TenantId;
use crate::web::error::Error;
use crate::web::paths;

/// What went wrong, as the admin needs to hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The admin chose Cancel (`access_denied`, AADSTS65004).
    Declined,
    /// The account may not grant this (AADSTS90094/90099: "need admin approval").
    NotAdmin,
    /// Wrong kind of account or tenant (personal account, guest, unknown user or tenant).
    WrongAccount,
    /// The provider's app is unknown or blocked in the tenant (AADSTS700016).
    AppUnknownInTenant,
    /// Consent is not (yet) in effect (AADSTS65001, `consent_required`).
    ConsentMissing,
    /// The sign-in took too long or its code was used already (AADSTS54005/70008/700082).
    CodeExpired,
    /// Our side of the sign-in does not check out (PKCE mismatch).
    Verification,
    /// The provider's own app registration is broken (bad or expired secret).
    ProviderSetup,
    /// Anything else: the AADSTS code is shown.
    Other,
}

/// Classifies a Microsoft error by its AADSTS code (then its OAuth `error`).
pub fn classify(e: &AadError) -> Problem {
    // 50020: account from another identity provider (guest or personal) not in the tenant;
    // 50034: no such user; 500200 and 50177: personal or external accounts not allowed;
    // 90072: external account not in the tenant.
    if matches!(e.code(), Some(50020 | 50034 | 500200 | 50177 | 90072)) {
        return Problem::WrongAccount;
    }
    match e.kind() {
        AadErrorKind::ConsentDeclined => Problem::Declined,
        AadErrorKind::AdminRequired => Problem::NotAdmin,
        AadErrorKind::UnknownTenant => Problem::WrongAccount,
        AadErrorKind::AppNotFoundInTenant => Problem::AppUnknownInTenant,
        AadErrorKind::ConsentMissing => Problem::ConsentMissing,
        AadErrorKind::CodeExpiredOrReused => Problem::CodeExpired,
        AadErrorKind::PkceMismatch => Problem::Verification,
        AadErrorKind::BadSecret | AadErrorKind::ExpiredSecret => Problem::ProviderSetup,
        AadErrorKind::AppDisabled | AadErrorKind::Other => Problem::Other,
    }
}

/// A bad ending of a consent attempt: recorded on the invitation, then shown.
#[derive(Debug, Clone)]
pub struct SetbackReport {
    pub setback: Setback,
    /// Short, names the code; kept on the invitation for the operator (may name other customers).
    pub reason: String,
    /// The AADSTS code (or OAuth error) Microsoft answered with, if it did.
    pub code: Option<String>,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub next_steps: Vec<String>,
    pub detail: Option<String>,
    pub status: StatusCode,
    /// Whether a retry from the wizard makes sense (not when the invitation is closed).
    pub retry: bool,
}

impl SetbackReport {
    /// Keeps this setback on the invitation (status, attempts, reason) and in the audit trail,
    /// credited to `actor`.
    pub async fn record(
        &self,
        db: &sqlx::PgPool,
        invitation: &Invitation,
        actor: &Actor,
    ) -> Result<(), Error> {
        invitations::record_setback(
            db,
            invitation.id,
            self.setback,
            &self.reason,
            &self.notice(),
            actor,
        )
        .await?;
        tracing::info!(invitation_id = %invitation.id, setback = ?self.setback, "consent attempt refused");
        Ok(())
    }

    /// What the customer is reminded of when they come back: the heading they saw, with
    /// Microsoft's code for support.
    pub fn notice(&self) -> String {
        match &self.code {
            Some(code) => format!("{} ({code}).", self.heading),
            None => format!("{}.", self.heading),
        }
    }

    fn failed(reason: impl Into<String>, heading: impl Into<String>) -> Self {
        Self {
            setback: Setback::Failed,
            reason: reason.into(),
            code: None,
            heading: heading.into(),
            paragraphs: Vec::new(),
            next_steps: Vec::new(),
            detail: None,
            status: StatusCode::OK,
            retry: true,
        }
    }

    fn say(mut self, p: impl Into<String>) -> Self {
        self.paragraphs.push(p.into());
        self
    }

    fn then(mut self, s: impl Into<String>) -> Self {
        self.next_steps.push(s.into());
        self
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The page for this outcome, with a "Try again" button back to the wizard.
    pub fn page(self, provider: &Branding) -> MessagePage {
        let tone = if self.setback == Setback::Declined {
            "warn"
        } else {
            "bad"
        };
        MessagePage {
            chrome: Chrome::new(provider, self.heading.clone(), 2),
            tone,
            heading: self.heading,
            paragraphs: self.paragraphs,
            next_steps: self.next_steps,
            detail: self.detail,
            action: self.retry.then(|| Action {
                href: paths::WIZARD.into(),
                label: "Try again".into(),
            }),
        }
    }
}

fn code_label(e: &AadError) -> String {
    e.code()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_else(|| e.error.clone())
}

/// The outcome of an `error` (+ `error_description`) Microsoft sent back, or returned by the
/// token endpoint, during `mode`'s round-trip.
pub fn for_aad_error(e: &AadError, mode: ConsentMode, provider: &Branding) -> SetbackReport {
    let code = code_label(e);
    let admin_word = match mode {
        ConsentMode::Application => "grant admin consent",
        _ => "consent",
    };
    let mut outcome = match classify(e) {
        Problem::Declined => SetbackReport {
            setback: Setback::Declined,
            ..SetbackReport::failed(format!("declined at Microsoft ({code})"), "You declined the request")
        }
        .say(format!("You chose not to {admin_word} for {provider}, so nothing was connected and {provider} has no access."))
        .then("If that was a mistake, click Try again and choose Accept on Microsoft's page.")
        .then(format!("If you have questions about the permissions, contact {contact} before trying again.", contact = provider.contact())),
        Problem::NotAdmin => SetbackReport::failed(
            format!("signed-in account may not grant consent ({code}): not a Global Administrator"),
            "This account cannot approve the request",
        )
        .say("Microsoft says the account you signed in with may not grant these permissions: only a Global Administrator (or a Privileged Role Administrator) can approve them for your organisation.")
        .then("Click Try again and, on Microsoft's page, choose \"Use another account\" to sign in as a Global Administrator.")
        .then("Or forward the invitation email to your Global Administrator."),
        Problem::WrongAccount => SetbackReport::failed(
            format!("wrong account or tenant ({code})"),
            "That account is not one Microsoft accepts here",
        )
        .say("Microsoft did not accept the account for this request: it may be a personal Microsoft account, a guest account, or an account of another organisation.")
        .then("Click Try again and sign in with a work account of your own organisation that is a Global Administrator."),
        Problem::AppUnknownInTenant => SetbackReport::failed(
            format!("the provider's app is not available in the tenant ({code})"),
            format!("{provider}'s app is not available in your organisation"),
        )
        .say(format!("Microsoft could not find {provider}'s application in your organisation. Your tenant may block applications from other organisations, or the request went to a different tenant than the one you signed in to."))
        .then("Click Try again and sign in with an account of your organisation.")
        .then(format!("If your organisation restricts third-party applications, allow {provider}'s application, or contact {contact} with the code below.", contact = provider.contact())),
        Problem::ConsentMissing => SetbackReport::failed(
            format!("consent not in effect ({code})"),
            "Consent was not granted",
        )
        .say(format!("Microsoft reports that the permissions for {provider} have not been granted in your organisation."))
        .then("Click Try again and choose Accept on Microsoft's page. If you just accepted, wait a minute: Microsoft can take a moment to apply a new consent."),
        Problem::CodeExpired => SetbackReport::failed(
            format!("sign-in expired or was already used ({code})"),
            "The sign-in expired",
        )
        .say("The answer from Microsoft was too old or had already been used, so it could not be accepted. Nothing was connected.")
        .then("Click Try again and sign in once more, without pausing between the steps."),
        Problem::Verification => SetbackReport::failed(
            format!("sign-in could not be verified ({code})"),
            "The sign-in could not be verified",
        )
        .say("The answer from Microsoft did not match the sign-in this browser started, so it was refused for your safety.")
        .then("Click Try again and complete the sign-in in this same browser window."),
        Problem::ProviderSetup => SetbackReport::failed(
            format!("provider app credentials refused ({code})"),
            format!("A problem on {provider}'s side"),
        )
        .say(format!("Microsoft refused {provider}'s own application credentials. This is not something you can fix."))
        .then(format!("Contact {contact} and mention the code below; the link in your email will keep working.", contact = provider.contact())),
        Problem::Other => SetbackReport::failed(format!("Microsoft error {code}"), "Microsoft returned an error")
            .say("The sign-in did not complete because Microsoft reported an error.")
            .then("Click Try again. If it happens again, send the code below to your contact."),
    };
    outcome.detail = Some(e.summary().chars().take(300).collect());
    outcome.code = Some(code);
    outcome
}

/// The outcome of a failed code redemption or app-token request.
fn for_identity_error(e: &IdentityError, mode: ConsentMode, provider: &Branding) -> SetbackReport {
    match e {
        IdentityError::Aad(aad) => for_aad_error(aad, mode, provider),
        IdentityError::InvalidIdToken(problem) => for_id_token(*problem),
        IdentityError::Transport(_) => unreachable_microsoft(),
        IdentityError::NoCredential => not_set_up(provider),
    }
}

/// The provider's app registration is not set up (or has no credential) yet: nothing a
/// customer can do.
pub fn not_set_up(provider: &Branding) -> SetbackReport {
    SetbackReport::failed(
        "the provider's app registration is not set up yet",
        format!("{}'s portal is not ready yet", provider.name),
    )
    .say(format!("{} has not finished setting up its connection to Microsoft, so nothing can be connected yet. Nothing was changed in your organisation.", provider.name))
    .then(format!("Contact {contact}; the link in your email will keep working once they are ready.", contact = provider.contact()))
    .status(StatusCode::SERVICE_UNAVAILABLE)
}

/// A consent that did not verify.
pub fn for_refusal(
    refusal: &ConsentRefusal,
    mode: ConsentMode,
    provider: &Branding,
) -> SetbackReport {
    match refusal {
        ConsentRefusal::Identity(e) => for_identity_error(e, mode, provider),
        ConsentRefusal::Graph(e) => for_graph_error(e, provider),
        ConsentRefusal::NotGlobalAdmin { username } => not_global_admin(username),
        ConsentRefusal::RoleUnproven { username } => role_unproven(username, provider),
        ConsentRefusal::SignedInElsewhere {
            consented,
            signed_in,
        } => signed_in_elsewhere(consented, signed_in),
        ConsentRefusal::OrganisationMismatch => organisation_mismatch(),
        ConsentRefusal::NoRefreshToken => no_refresh_token(),
    }
}

/// Application mode: consent came from one tenant, but the sign-in from another.
fn signed_in_elsewhere(consented: &TenantId, signed_in: &TenantId) -> SetbackReport {
    SetbackReport::failed(
        format!("admin consent answer named tenant {consented}, but the administrator signed in to {signed_in}"),
        "The sign-in does not match the consent",
    )
    .say("The consent and the sign-in that confirms it came from different organisations, so nothing was connected.")
    .then("Click Try again and grant consent and sign in as a Global Administrator of the same organisation, in this same browser window.")
    .status(StatusCode::FORBIDDEN)
}

/// An ID token failed validation: refused, whatever the reason.
pub fn for_id_token(problem: IdTokenProblem) -> SetbackReport {
    SetbackReport::failed(format!("ID token rejected: {problem}"), "The sign-in could not be verified")
        .say("The identity Microsoft's answer claimed could not be verified, so it was refused for your safety. Nothing was connected.")
        .then("Click Try again and sign in once more in this same browser window.")
        .then("If it happens again, contact your provider: how is at the bottom of this page.")
        .status(StatusCode::BAD_REQUEST)
}

/// Microsoft (or Graph) could not be reached or answered nonsense.
pub fn unreachable_microsoft() -> SetbackReport {
    SetbackReport::failed("could not reach Microsoft", "Microsoft could not be reached")
        .say("The connection to Microsoft failed before the consent could be confirmed. Nothing was connected.")
        .then("Wait a minute and click Try again.")
        .status(StatusCode::BAD_GATEWAY)
}

/// The signer is not a Global Administrator (delegated mode).
fn not_global_admin(username: &str) -> SetbackReport {
    SetbackReport::failed(
        format!("signed in as {username}, who is not a Global Administrator"),
        "A Global Administrator must approve this",
    )
    .say(format!("You signed in as {username}, who is not a Global Administrator of the organisation."))
    .then("Click Try again and, on Microsoft's page, choose \"Use another account\" to sign in as a Global Administrator.")
    .status(StatusCode::FORBIDDEN)
}

/// Neither `wids` nor Graph proved the signer a Global Administrator: the provider's app
/// registration must be changed, which the reason (kept for the operator) spells out.
fn role_unproven(username: &str, provider: &Branding) -> SetbackReport {
    SetbackReport::failed(
        format!("could not confirm that {username} is a Global Administrator: ID tokens carry no wids and Graph did not name the role. Fix the app registration: Token configuration → Add groups claim → tick Directory roles (manifest \"groupMembershipClaims\": \"DirectoryRole\"), or grant it RoleManagement.Read.Directory"),
        "Your administrator role could not be confirmed",
    )
    .say(format!("Microsoft did not tell {provider} whether {username} is a Global Administrator, so nothing was connected. This is a setting of {provider}'s app, not of your organisation."))
    .then(format!("Let {provider} know (how is at the bottom of this page): they have been told what to change."))
    .then("Once they have, click Try again.")
    .status(StatusCode::FORBIDDEN)
}

/// Delegated: the token endpoint gave no refresh token (`offline_access` not granted).
fn no_refresh_token() -> SetbackReport {
    SetbackReport::failed("no refresh token returned (offline_access missing)", "The access could not be kept")
        .say("Microsoft did not grant ongoing access (the \"Maintain access\" permission), without which the directory copy cannot stay current. Nothing was connected.")
        .then("Click Try again and accept all the permissions on Microsoft's page.")
}

/// The organisation Graph describes is not the one that signed in or consented.
fn organisation_mismatch() -> SetbackReport {
    SetbackReport::failed("organization read does not match the signed-in tenant", "The organisation could not be confirmed")
        .say("Microsoft reported a different organisation than the one you signed in to, so the consent was not recorded.")
        .then("Click Try again. If it happens again, contact your provider: how is at the bottom of this page.")
        .status(StatusCode::BAD_REQUEST)
}

/// Application mode: the query's `tenant` is not a tenant id.
pub fn bad_tenant_in_answer() -> SetbackReport {
    SetbackReport::failed("admin consent answer named no valid tenant", "Microsoft's answer was incomplete")
        .say("The answer from Microsoft did not say which organisation gave consent, so nothing was recorded.")
        .then("Click Try again.")
        .status(StatusCode::BAD_REQUEST)
}

/// A Graph read failed while confirming the consent.
fn for_graph_error(e: &GraphError, provider: &Branding) -> SetbackReport {
    match e {
        GraphError::Api { status: 401 | 403, code, .. } => SetbackReport::failed(
            format!("Graph refused the organization read ({code})"),
            "The consent could not be confirmed",
        )
        .say(format!("Microsoft Graph refused to tell {provider} which organisation this is ({code}). The permissions may not have been granted fully."))
        .then("Click Try again and accept every permission on Microsoft's page. If you just accepted, wait a minute first."),
        GraphError::Throttled { .. } | GraphError::Transport(_) => unreachable_microsoft(),
        _ => SetbackReport::failed("unexpected Graph answer", "The consent could not be confirmed")
            .say("Microsoft Graph answered in an unexpected way, so nothing was recorded.")
            .then("Click Try again. If it happens again, contact your provider: how is at the bottom of this page."),
    }
}

/// `record_consent` refused: wrong tenant, tenant owned by another customer, invitation closed.
/// `None` for internal errors (database), which are not the admin's to fix.
pub fn for_consent_error(
    e: &ConsentError,
    mode: ConsentMode,
    provider: &Branding,
) -> Option<SetbackReport> {
    Some(match e {
        ConsentError::WrongTenant { expected, found } => {
            let found_text = if found.is_empty() { "another organisation".to_owned() } else { found.join(", ") };
            let mut o = SetbackReport::failed(
                format!("consent came from the wrong tenant ({found_text}); invitation is for {expected}"),
                "That is not the organisation this invitation is for",
            )
            .say(if mode == ConsentMode::CustomerApp {
                format!("This invitation is for {expected}, but the app you entered belongs to {found_text}. Nothing was connected.")
            } else {
                format!("This invitation is for {expected}, but you signed in to {found_text}. Nothing was connected.")
            })
            .then(if mode == ConsentMode::CustomerApp {
                format!("Click Try again and enter the details of an app registered in {expected}.")
            } else {
                format!("Click Try again and sign in with an account of {expected}.")
            })
            .status(StatusCode::FORBIDDEN);
            if mode == ConsentMode::Application {
                o = o.then(format!(
                    "Your consent was still given in {found_text}; if you did not mean that, remove {provider}'s app under Enterprise applications there."
                ));
            }
            o
        }
        ConsentError::OwnedByAnother { owner } => SetbackReport::failed(
            format!("tenant already connected for another customer ({owner})"),
            "This organisation is already connected",
        )
        .say(format!("Your organisation is already connected to {provider} under another customer account, so it cannot be connected again without {provider}'s decision."))
        .then(format!("Contact {contact}: they need to resolve this before you try again.", contact = provider.contact()))
        .status(StatusCode::CONFLICT),
        ConsentError::InvitationClosed(status) => {
            let mut o = SetbackReport::failed(format!("invitation is {}", status.as_str()), "This invitation can no longer be used")
                .status(StatusCode::GONE);
            o.retry = false;
            match status {
                InvitationStatus::Consented => o.say("Consent was already given through this invitation: nothing more to do."),
                InvitationStatus::Revoked => o.say(format!("{provider} withdrew this invitation.")).then(format!("Contact {contact} if you still need to connect.", contact = provider.contact())),
                _ => o.say("The link expired.").then(format!("Ask {provider} for a new link.")),
            }
        }
        ConsentError::Invitation(_) | ConsentError::Db(_) => return None,
    })
}

/// The page for a callback whose `state` was refused (nothing is recorded: it may not even be
/// this admin's browser).
pub fn state_page(problem: StateProblem, provider: &Branding) -> MessagePage {
    let (heading, paragraph) = match problem {
        StateProblem::NothingPending => (
            "This sign-in was already used or has expired",
            "The answer from Microsoft does not belong to a sign-in this browser has in progress: it was used already, or it was started in another browser.",
        ),
        StateProblem::Mismatch | StateProblem::OtherInvitation => (
            "This sign-in does not match",
            "The answer from Microsoft does not match the sign-in this browser started, so it was refused for your safety.",
        ),
        StateProblem::Expired => (
            "This sign-in has expired",
            "More than 15 minutes passed between leaving for Microsoft and coming back, so the answer was refused.",
        ),
    };
    MessagePage {
        chrome: Chrome::new(provider, heading, 0),
        tone: "bad",
        heading: heading.into(),
        paragraphs: vec![paragraph.into(), "Nothing was connected.".into()],
        next_steps: vec!["Start again: open the wizard (or the link in your invitation email) and sign in once more.".into()],
        detail: None,
        action: Some(Action { href: paths::WIZARD.into(), label: "Start again".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Branding {
        Branding {
            name: "Acme".into(),
            ..Branding::default()
        }
    }

    fn redirect(error: &str, description: Option<&str>) -> AadError {
        AadError::from_redirect(error, description)
    }

    #[test]
    fn microsoft_errors_map_to_what_the_admin_should_do() {
        let cases = [
            (
                redirect(
                    "access_denied",
                    Some("AADSTS65004: User declined to consent to access the app."),
                ),
                Problem::Declined,
            ),
            (redirect("access_denied", None), Problem::Declined),
            (
                redirect(
                    "consent_required",
                    Some("AADSTS65004: User declined to consent."),
                ),
                Problem::Declined,
            ),
            (
                redirect(
                    "access_denied",
                    Some("AADSTS90094: The grant requires admin permission."),
                ),
                Problem::NotAdmin,
            ),
            (
                redirect(
                    "invalid_request",
                    Some("AADSTS90099: The application has not been authorized."),
                ),
                Problem::NotAdmin,
            ),
            (
                redirect(
                    "invalid_request",
                    Some(
                        "AADSTS50020: User account from identity provider does not exist in tenant.",
                    ),
                ),
                Problem::WrongAccount,
            ),
            (
                redirect(
                    "invalid_request",
                    Some("AADSTS500200: User account is a personal Microsoft account."),
                ),
                Problem::WrongAccount,
            ),
            (
                redirect("invalid_request", Some("AADSTS90002: Tenant not found.")),
                Problem::WrongAccount,
            ),
            (
                redirect(
                    "unauthorized_client",
                    Some("AADSTS700016: Application not found in the directory."),
                ),
                Problem::AppUnknownInTenant,
            ),
            (
                redirect(
                    "invalid_grant",
                    Some("AADSTS54005: OAuth2 Authorization code was already redeemed."),
                ),
                Problem::CodeExpired,
            ),
            (
                redirect(
                    "invalid_grant",
                    Some("AADSTS70008: The provided authorization code has expired."),
                ),
                Problem::CodeExpired,
            ),
            (
                redirect(
                    "invalid_grant",
                    Some("AADSTS501481: The Code_Verifier does not match."),
                ),
                Problem::Verification,
            ),
            (
                redirect(
                    "invalid_client",
                    Some("AADSTS7000215: Invalid client secret provided."),
                ),
                Problem::ProviderSetup,
            ),
            (
                redirect(
                    "invalid_grant",
                    Some("AADSTS65001: The user or administrator has not consented."),
                ),
                Problem::ConsentMissing,
            ),
            (
                redirect(
                    "server_error",
                    Some("AADSTS50000: There was an error issuing a token."),
                ),
                Problem::Other,
            ),
            (redirect("temporarily_unavailable", None), Problem::Other),
        ];
        for (e, expected) in cases {
            assert_eq!(classify(&e), expected, "{e:?}");
        }
    }

    #[test]
    fn declines_are_recorded_as_declines_and_the_rest_as_failures_naming_the_code() {
        let declined = for_aad_error(
            &redirect("consent_required", Some("AADSTS65004: User declined.")),
            ConsentMode::Application,
            &acme(),
        );
        assert_eq!(declined.setback, Setback::Declined);
        assert!(
            declined.reason.contains("AADSTS65004"),
            "{}",
            declined.reason
        );
        assert!(declined.retry);

        let other = for_aad_error(
            &redirect("server_error", Some("AADSTS50000: Boom.\r\nTrace ID: x")),
            ConsentMode::Delegated,
            &acme(),
        );
        assert_eq!(other.setback, Setback::Failed);
        assert!(other.reason.contains("AADSTS50000"));
        assert_eq!(other.detail.as_deref(), Some("AADSTS50000: Boom."));
        let page = other.page(&acme());
        assert_eq!(page.action.unwrap().href, paths::WIZARD);
    }

    #[test]
    fn wrong_tenant_names_both_domains() {
        let e = ConsentError::WrongTenant {
            expected: "contoso.com".into(),
            found: vec!["fabrikam.com".into()],
        };
        let o = for_consent_error(&e, ConsentMode::Delegated, &acme()).unwrap();
        let text = o.paragraphs.join(" ") + &o.next_steps.join(" ");
        assert!(
            text.contains("contoso.com") && text.contains("fabrikam.com"),
            "{text}"
        );
        assert_eq!(o.status, StatusCode::FORBIDDEN);
        let owned = for_consent_error(
            &ConsentError::OwnedByAnother {
                owner: "Globex".into(),
            },
            ConsentMode::Delegated,
            &acme(),
        )
        .unwrap();
        // The other customer's name is for the operator, never for this admin.
        assert!(!owned.paragraphs.join(" ").contains("Globex"));
        assert!(owned.reason.contains("Globex"));
        let closed = for_consent_error(
            &ConsentError::InvitationClosed(InvitationStatus::Revoked),
            ConsentMode::Delegated,
            &acme(),
        )
        .unwrap();
        assert!(!closed.retry);
    }
}
