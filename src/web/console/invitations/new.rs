//! Creating an invitation: the form (picking an existing customer or naming a new one) and its
//! validation, each message a sentence next to its field, the first invalid field focused.

use crate::web::console::FormErrors;
use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use super::{Choice, link};
use crate::audit::Actor;
use crate::customers::{self, CustomerName};
use crate::directory::scope::ScopeKind;
use crate::invitations::{self, InvitedScope, NewInvitation};
use crate::settings::profiles;
use crate::types::ConsentMode;
use crate::types::{DomainName, EmailAddress, ProfileId};
use crate::web::AppState;
use crate::web::console::{Chrome, Section};
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::AdminOperator;

/// How many existing customers the form offers to pick from.
const CUSTOMER_CHOICES: i64 = 500;

/// The form as typed, kept whole when it has to be shown again. Also read from the query
/// string, so another page can link to a form filled in (e.g. for an existing customer).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct NewForm {
    customer_name: String,
    admin_email: String,
    mode: String,
    tenant_domain: String,
    valid_for: String,
    /// The permission profile's id; empty: the default profile.
    profile: String,
    /// The sync scope's kind; empty: everyone.
    scope: String,
    /// Its groups, one per line.
    scope_groups: String,
}

impl NewForm {
    /// The sync scope the form sets, or the message for its field.
    fn scope(&self) -> std::result::Result<Option<InvitedScope>, String> {
        let groups: Vec<String> = self.scope_groups.lines().map(str::to_owned).collect();
        InvitedScope::parse(&self.scope, &groups)
    }
}

/// One message per field, shown next to it, in the form's order.
#[derive(Default)]
struct FieldErrors {
    customer_name: Option<String>,
    admin_email: Option<String>,
    mode: Option<String>,
    tenant_domain: Option<String>,
    valid_for: Option<String>,
    profile: Option<String>,
    scope: Option<String>,
}

impl FormErrors for FieldErrors {
    fn fields(&self) -> Vec<(&'static str, &Option<String>)> {
        [
            ("customer_name", &self.customer_name),
            ("admin_email", &self.admin_email),
            ("mode-delegated", &self.mode),
            ("tenant_domain", &self.tenant_domain),
            ("valid_for", &self.valid_for),
            ("profile", &self.profile),
            ("scope_groups", &self.scope),
        ]
        .into()
    }
}

/// A permission profile in the form's list.
struct ProfileChoice {
    value: String,
    label: String,
    selected: bool,
}

/// A sync scope in the form's list: (value, label, what it means, checked).
struct ScopeChoice {
    value: &'static str,
    label: &'static str,
    explain: &'static str,
    checked: bool,
}

/// What each scope an invitation may set means, for the operator.
fn scope_explanation(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::All => {
            "Every user and group of the tenant (a tenant already connected keeps its scope)."
        }
        ScopeKind::Groups => {
            "The members of the groups named below, at any depth. They resolve after the first sync; a name that matches no group, or several, copies no one until you choose the groups on the tenant."
        }
        ScopeKind::AppAssignments => {
            "The users and groups the customer's admin assigns to your enterprise app; needs Application.Read.All in the permission profile."
        }
    }
}

struct ModeChoice {
    value: &'static str,
    label: &'static str,
    explain: &'static str,
    checked: bool,
}

fn mode_explanation(mode: ConsentMode) -> &'static str {
    match mode {
        ConsentMode::Delegated => {
            "The admin signs in with Microsoft and consents; Gangway keeps a refresh token to sync the directory."
        }
        ConsentMode::Application => {
            "The admin grants your app read access for the whole tenant (admin consent); no user token is kept."
        }
        ConsentMode::CustomerApp => {
            "The admin registers an app in their own tenant and enters its tenant id, client id and secret."
        }
    }
}

const VALIDITIES: [(&str, &str); 5] = [
    ("24h", "24 hours"),
    ("3d", "3 days"),
    ("7d", "7 days"),
    ("14d", "14 days"),
    ("30d", "30 days"),
];

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::NEW_INVITATION, get(form).post(create))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/invitation_new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    errors: FieldErrors,
    modes: Vec<ModeChoice>,
    scopes: Vec<ScopeChoice>,
    validities: Vec<Choice>,
    /// The permission profiles to pick from (the default first).
    profiles: Vec<ProfileChoice>,
    /// Existing customers, for the name field's suggestions.
    customers: Vec<String>,
    /// No support contact is set: the customer's pages and mail can only point back at the
    /// person who invited them.
    no_support_contact: bool,
}

impl NewPage {
    async fn new(
        state: &AppState,
        chrome: Chrome,
        form: NewForm,
        errors: FieldErrors,
    ) -> Result<Self> {
        let chosen_mode = ConsentMode::parse(&form.mode).ok();
        let modes = ConsentMode::ALL
            .into_iter()
            .map(|m| ModeChoice {
                value: m.as_str(),
                label: m.label(),
                explain: mode_explanation(m),
                checked: Some(m) == chosen_mode,
            })
            .collect();
        let chosen_scope = ScopeKind::parse(form.scope.trim()).unwrap_or(ScopeKind::All);
        let scopes = ScopeKind::ALL
            .into_iter()
            .map(|k| ScopeChoice {
                value: k.as_str(),
                label: k.label(),
                explain: scope_explanation(k),
                checked: k == chosen_scope,
            })
            .collect();
        let validity = if form.valid_for.is_empty() {
            "7d"
        } else {
            form.valid_for.as_str()
        };
        let validities = VALIDITIES
            .into_iter()
            .map(|(value, label)| Choice {
                value,
                label,
                selected: value == validity,
            })
            .collect();
        let profiles = profiles::list(&state.db)
            .await?
            .into_iter()
            .map(|p| ProfileChoice {
                selected: form.profile == p.id.to_string()
                    || (form.profile.is_empty() && p.is_default),
                value: p.id.to_string(),
                label: if p.is_default {
                    format!("{} (default)", p.name)
                } else {
                    p.name
                },
            })
            .collect();
        Ok(Self {
            chrome,
            form,
            errors,
            modes,
            scopes,
            validities,
            profiles,
            customers: customers::names(&state.db, CUSTOMER_CHOICES).await?,
            no_support_contact: !state.live().await?.settings.branding.has_support_contact(),
        })
    }
}

async fn form(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Query(prefill): Query<NewForm>,
) -> Result<NewPage> {
    let form = NewForm {
        mode: if prefill.mode.is_empty() {
            ConsentMode::Delegated.as_str().into()
        } else {
            prefill.mode.clone()
        },
        valid_for: "7d".into(),
        ..prefill
    };
    NewPage::new(
        &state,
        Chrome::new(&state, &operator, csrf, Section::Invitations),
        form,
        FieldErrors::default(),
    )
    .await
}

/// The permission profile the form picked.
enum PickedProfile {
    /// None: the default profile.
    Default,
    /// This one.
    Chosen(ProfileId),
    /// Not one of the profiles listed (gone meanwhile, or not an id).
    Unknown,
}

impl PickedProfile {
    /// What the invitation stores: `None` for the default; the field's error when unknown.
    fn profile(self) -> std::result::Result<Option<ProfileId>, String> {
        match self {
            Self::Default => Ok(None),
            Self::Chosen(id) => Ok(Some(id)),
            Self::Unknown => Err("Choose one of the permission profiles listed.".to_owned()),
        }
    }
}

/// The profile picked in the form's `raw` value.
async fn chosen_profile(state: &AppState, raw: &str) -> Result<PickedProfile> {
    if raw.trim().is_empty() {
        return Ok(PickedProfile::Default);
    }
    let Ok(id) = raw.trim().parse() else {
        return Ok(PickedProfile::Unknown);
    };
    Ok(match profiles::get(&state.db, id).await? {
        Some(p) => PickedProfile::Chosen(p.id),
        None => PickedProfile::Unknown,
    })
}

/// Checks each field on its own so every problem shows next to its field at once.
fn validate(form: &NewForm) -> std::result::Result<NewInvitation, Box<FieldErrors>> {
    let email = form.admin_email.trim();
    let domain = form.tenant_domain.trim();
    let errors = FieldErrors {
        customer_name: CustomerName::parse(&form.customer_name)
            .err()
            .map(|e| e.to_string()),
        admin_email: if email.is_empty() {
            Some("Enter the admin's email address.".into())
        } else {
            EmailAddress::parse(email).err().map(|_| {
                format!("Enter the admin's email address like admin@contoso.com: “{email}” is not an email address.")
            })
        },
        mode: ConsentMode::parse(&form.mode)
            .err()
            .map(|_| "Choose how the customer grants access.".into()),
        tenant_domain: (!domain.is_empty())
            .then(|| DomainName::parse(domain).err())
            .flatten()
            .map(|_| {
                format!("Enter a domain name such as contoso.com, or leave the field empty: “{domain}” is not one.")
            }),
        valid_for: (!form.valid_for.trim().is_empty())
            .then(|| invitations::parse_validity(&form.valid_for).err())
            .flatten()
            .map(|_| "Choose how long the link works, between 1 hour and 30 days.".into()),
        // Checked against the stored profiles by the handler.
        profile: None,
        scope: form.scope().err(),
    };
    if errors.any() {
        return Err(Box::new(errors));
    }
    NewInvitation::parse(
        &form.customer_name,
        &form.admin_email,
        &form.mode,
        Some(&form.tenant_domain),
        Some(&form.valid_for),
    )
    .map(|new| NewInvitation {
        scope: form.scope().ok().flatten(),
        ..new
    })
    // Every field passed on its own, so the whole passes too; should the rules ever drift
    // apart, the message still lands on the form.
    .map_err(|e| {
        Box::new(FieldErrors {
            customer_name: Some(e.to_string()),
            ..FieldErrors::default()
        })
    })
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Form(form): Form<NewForm>,
) -> Result<Response> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Invitations);
    let profile = chosen_profile(&state, &form.profile).await?.profile();
    let new = match (validate(&form), profile) {
        (Ok(new), Ok(profile)) => NewInvitation { profile, ..new },
        (validated, profile) => {
            let errors = FieldErrors {
                profile: profile.err(),
                ..validated.err().map(|e| *e).unwrap_or_default()
            };
            let page = NewPage::new(&state, chrome, form, errors).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let actor = Actor::Operator(operator.email.clone());
    let live = state.live().await?;
    let issued = invitations::create(
        &state.db,
        state.invitation_context(&live),
        &new,
        &actor,
        Some(operator.id),
    )
    .await?;
    Ok(link::reveal(&session, issued, false).await?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, email: &str, mode: &str, domain: &str, validity: &str) -> NewForm {
        NewForm {
            customer_name: name.into(),
            admin_email: email.into(),
            mode: mode.into(),
            tenant_domain: domain.into(),
            valid_for: validity.into(),
            profile: String::new(),
            scope: String::new(),
            scope_groups: String::new(),
        }
    }

    #[test]
    fn each_problem_lands_on_its_field_and_the_first_gets_the_focus() {
        assert!(validate(&form("Contoso", "admin@contoso.com", "delegated", "", "7d")).is_ok());
        let e = validate(&form("Contoso", "nope", "sideways", "bad domain", "7d")).unwrap_err();
        assert!(e.admin_email.is_some() && e.mode.is_some() && e.tenant_domain.is_some());
        assert!(e.customer_name.is_none() && e.valid_for.is_none());
        assert!(e.focus("admin_email") && !e.focus("mode-delegated"));
        let e = validate(&form("", "", "delegated", "", "7d")).unwrap_err();
        assert_eq!(
            e.customer_name.as_deref(),
            Some("Enter the customer's name.")
        );
        assert_eq!(
            e.admin_email.as_deref(),
            Some("Enter the admin's email address.")
        );
        assert!(e.focus("customer_name"));
        let e = validate(&form(
            &"x".repeat(201),
            "admin@contoso.com",
            "delegated",
            "",
            "7d",
        ))
        .unwrap_err();
        assert!(e.customer_name.is_some());
        let e = validate(&form("C", "admin@contoso.com", "", "", "90d")).unwrap_err();
        assert!(e.mode.is_some() && e.valid_for.is_some());
        for (_, message) in e.all() {
            assert!(message.ends_with('.'), "{message}");
        }
    }
}
