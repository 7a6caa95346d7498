//! Tenants: every customer directory that consented, each one's detail, sync and history
//! ([`sync`]: "Sync now", the schedule, live progress) and its directory copy ([`directory`]:
//! users, groups, runs).

mod consent;
mod directory;
mod guard;
mod scope;
mod sync;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::list::{Empty, ListPage, ListQuery};
use super::{Chrome, EventRow, FormErrors, Section, When, parse_id};
use crate::audit::{self, Actor};
use crate::directory::subscriptions;
use crate::directory::views::{self, SyncHealth, TenantSync};
use crate::format;
use crate::invitations;
use crate::operators::Operator;
use crate::tenants::{self, Tenant, TenantStatus};
use crate::types::{Schedule, TenantRecordId};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};
use sync::{RunRow, ScheduleErrors, ScheduleForm, SyncCard};

const PER_PAGE: i64 = 25;
/// How many runs the tenant's page shows before linking to all of them.
const RECENT_RUNS: i64 = 5;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::TENANTS, get(list))
        .route(paths::TENANT, get(detail))
        .route(paths::OFFBOARD_TENANT, post(offboard))
        .route(paths::RECONSENT_TENANT, post(reconsent))
        .merge(consent::router())
        .merge(sync::router())
        .merge(guard::router())
        .merge(directory::router())
        .merge(scope::router())
}

/// A tenant status badge: the CSS class is the stored status.
pub(in crate::web::console) struct Badge {
    pub(in crate::web::console) class: &'static str,
    pub(in crate::web::console) label: &'static str,
}

impl Badge {
    pub(super) fn new(status: TenantStatus) -> Self {
        Self {
            class: status.as_str(),
            label: status.label(),
        }
    }

    fn sync(health: SyncHealth) -> Self {
        Self {
            class: health.as_str(),
            label: health.label(),
        }
    }
}

/// A tenant as lists show it (here and on its customer's page).
pub(in crate::web::console) struct Row {
    pub(in crate::web::console) url: String,
    pub(in crate::web::console) customer_url: String,
    pub(in crate::web::console) customer: String,
    pub(in crate::web::console) name: String,
    pub(in crate::web::console) entra_id: String,
    pub(in crate::web::console) domains: String,
    pub(in crate::web::console) mode: &'static str,
    pub(in crate::web::console) badge: Badge,
    pub(in crate::web::console) consented_by: String,
    pub(in crate::web::console) consented: When,
}

impl From<&Tenant> for Row {
    fn from(t: &Tenant) -> Self {
        Self {
            url: paths::tenant(t.id),
            customer_url: paths::customer(t.customer_id),
            customer: t.customer_name.clone(),
            name: t.display_name.clone(),
            entra_id: t.entra_tenant_id.to_string(),
            domains: t.verified_domains.join(", "),
            mode: t.consent_mode.label(),
            badge: Badge::new(t.status),
            consented_by: t.consented_by_upn.clone().unwrap_or_default(),
            consented: When::new(t.consented_at),
        }
    }
}

/// "in 2 hours", "due now" or "—" for a next run, with the absolute time for the tooltip: in
/// a daily schedule's own zone (`zoned`), else the instant the page's script shows locally.
pub(super) struct NextRun {
    text: String,
    title: String,
    iso: Option<String>,
    zoned: Option<String>,
}

impl NextRun {
    fn new(at: Option<OffsetDateTime>, health: SyncHealth, schedule: Option<&Schedule>) -> Self {
        let none = |title: &str| Self {
            text: "—".into(),
            title: title.into(),
            iso: None,
            zoned: None,
        };
        match at {
            _ if matches!(health, SyncHealth::Stopped | SyncHealth::ReconsentNeeded) => {
                none("Not synced in this state")
            }
            None => none("Not scheduled yet"),
            Some(at) => Self {
                text: if at <= OffsetDateTime::now_utc() {
                    "due now".into()
                } else {
                    When::new(at).relative
                },
                title: crate::format::datetime(at),
                iso: Some(crate::format::iso(at)),
                zoned: schedule.and_then(|s| s.in_own_zone(at)),
            },
        }
    }
}

/// A tenant's sync in the tenants list.
struct SyncCell {
    badge: Badge,
    /// Why it fails or needs consent, or how many attempts failed since the last success.
    reason: Option<String>,
    last_success: Option<When>,
    next: NextRun,
    users: i64,
    groups: i64,
    /// Deletions waiting for an operator.
    held: i64,
}

impl SyncCell {
    fn new(sync: Option<&TenantSync>, held: i64) -> Self {
        let Some(sync) = sync else {
            return Self {
                badge: Badge::sync(SyncHealth::NeverSynced),
                reason: None,
                last_success: None,
                next: NextRun::new(None, SyncHealth::NeverSynced, None),
                users: 0,
                groups: 0,
                held,
            };
        };
        let health = sync.health();
        let reason = match health {
            SyncHealth::Failing | SyncHealth::ReconsentNeeded => sync.sync_error.clone(),
            SyncHealth::Retrying => Some(failed_attempts(sync.sync_failures)),
            _ => None,
        };
        Self {
            badge: Badge::sync(health),
            reason,
            last_success: sync.last_sync_success_at.map(When::new),
            next: NextRun::new(sync.next_sync_at, health, None),
            users: sync.users,
            groups: sync.groups,
            held,
        }
    }
}

/// "1 failed attempt, retrying", "2 failed attempts in a row, retrying".
pub(super) fn failed_attempts(n: i32) -> String {
    if n == 1 {
        "The last attempt failed; it is retried.".into()
    } else {
        format!("The last {n} attempts failed; they are retried.")
    }
}

struct ListRow {
    tenant: Row,
    sync: SyncCell,
    /// "consent drifted: …" from the tenant's last consent check.
    consent: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    chrome: Chrome,
    list: ListPage<ListRow>,
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    query: ListQuery<()>,
) -> Result<TenantsPage> {
    let (found, total) = tenants::list(
        &state.db,
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let ids: Vec<Uuid> = found.iter().map(|t| t.id.into()).collect();
    let syncs = views::tenant_syncs(&state.db, &ids).await?;
    let held: std::collections::HashMap<Uuid, i64> =
        crate::directory::guard::held_counts(&state.db, &ids)
            .await?
            .into_iter()
            .collect();
    let mut drifts = crate::consent::drift::summaries(&state.db, &ids).await?;
    let rows = found
        .iter()
        .map(|t| {
            let id: Uuid = t.id.into();
            ListRow {
                tenant: Row::from(t),
                sync: SyncCell::new(syncs.get(&id), held.get(&id).copied().unwrap_or(0)),
                consent: drifts.remove(&id),
            }
        })
        .collect();
    let list = ListPage::new(
        query,
        paths::TENANTS,
        PER_PAGE,
        rows,
        total,
        "tenants",
        Empty::first_run(
            "No tenants yet",
            "Tenants appear here when a customer's admin consents through an invitation.",
            Some(("Go to invitations", paths::INVITATIONS.to_owned())),
        ),
    );
    Ok(TenantsPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        list,
    })
}

/// What every tenant page shows above its content: the name, the status and the tabs.
pub(super) struct Head {
    pub id: TenantRecordId,
    pub name: String,
    pub badge: Badge,
    pub tabs: Tabs,
}

/// The tabs every tenant page shows: overview, users, groups, runs, sync scope.
pub(super) struct Tabs {
    pub current: &'static str,
    pub overview: String,
    pub users: String,
    pub groups: String,
    pub runs: String,
    pub scope: String,
    pub user_count: i64,
    pub group_count: i64,
}

impl Tabs {
    pub fn new(id: TenantRecordId, current: &'static str, users: i64, groups: i64) -> Self {
        Self {
            current,
            overview: paths::tenant(id),
            users: paths::tenant_users(id),
            groups: paths::tenant_groups(id),
            runs: paths::tenant_runs(id),
            scope: paths::tenant_scope(id),
            user_count: users,
            group_count: groups,
        }
    }

    /// Whether `tab` is the page shown.
    pub fn is(&self, tab: &str) -> bool {
        self.current == tab
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant.html")]
struct DetailPage {
    chrome: Chrome,
    head: Head,
    entra_id: String,
    customer: String,
    customer_url: String,
    domains: Vec<String>,
    mode: &'static str,
    scopes: Vec<String>,
    consented_by_upn: Option<String>,
    consented_by_oid: Option<String>,
    consented: When,
    customer_client_id: Option<String>,
    offboarded: bool,
    reconsent_required: bool,
    /// Where the customer consents again; the re-consent invitation fills it.
    reconsent_url: Option<String>,
    notice: Option<&'static str>,
    /// A new invitation for the customer, when the tenant is gone at Microsoft.
    invite_again_url: Option<String>,
    sync: SyncCard,
    guard: guard::GuardCard,
    /// Whether Graph's change notifications reach this tenant's copy, in a sentence.
    notifications: String,
    schedule: ScheduleForm,
    errors: ScheduleErrors,
    zones: &'static [String],
    runs: Vec<RunRow>,
    runs_total: i64,
    history: Vec<EventRow>,
    sign_ins: super::sign_ins::Recent,
    /// What the tenant grants the provider's app against its profile.
    consent: consent::ConsentCard,
}

impl DetailPage {
    /// Whether there are more runs than the page shows.
    fn more_runs(&self) -> bool {
        self.runs_total > self.runs.len() as i64
    }
}

#[derive(Deserialize, Default)]
struct DetailQuery {
    done: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<DetailPage> {
    let id: TenantRecordId = parse_id(&id)?;
    let notice = match query.done.as_deref() {
        Some("offboarded") => Some(
            "Tenant offboarded. Its credential and directory copy are erased; a new invitation can connect it again.",
        ),
        Some("sync_queued") => Some("Sync queued. Its progress shows here once it starts."),
        Some("sync_already_queued") => Some(
            "A sync was already queued, so no second one was added. It starts as soon as possible.",
        ),
        Some("schedule_saved") => Some("Sync schedule saved."),
        Some("deletions_approved") => {
            Some("Held deletions applied: the objects left the copy and the provider was told.")
        }
        Some("deletions_rejected") => Some(
            "Held deletions rejected: the objects stay in the copy, and later syncs do not hold them again.",
        ),
        Some("nothing_held") => Some(
            "Nothing is held any more: the deletions were decided meanwhile, or a sync found the objects again.",
        ),
        Some("guard_saved") => Some("Deletion guard thresholds saved."),
        Some("consent_checked") => Some("Consent checked: what the tenant grants is shown below."),
        _ => None,
    };
    detail_page(&state, &operator, csrf, id, notice, None).await
}

/// The tenant page's line on change notifications.
fn notifications_line(status: subscriptions::Status) -> String {
    match status {
        subscriptions::Status::NoPublicUrl => "Off: this portal has no public HTTPS address Microsoft could deliver them to, so this tenant is polled on its schedule.".into(),
        subscriptions::Status::On { renew_before } => format!(
            "On: changes reach the copy within seconds (subscriptions renewed before {}).",
            format::datetime(renew_before)
        ),
        subscriptions::Status::Off { error: Some(e) } => {
            format!("Not subscribed: {e}. Polled on its schedule meanwhile.")
        }
        subscriptions::Status::Off { error: None } => {
            "Not subscribed yet: they start after the first full sync. Polled on its schedule meanwhile.".into()
        }
    }
}

/// How many sign-ins a tenant's page shows before linking to the Sign-ins page.
const RECENT_SIGN_INS: i64 = 10;

/// The tenant's page; with `form`, its schedule form as typed and refused.
async fn detail_page(
    state: &AppState,
    operator: &Operator,
    csrf: String,
    id: TenantRecordId,
    notice: Option<&'static str>,
    form: Option<(ScheduleForm, ScheduleErrors)>,
) -> Result<DetailPage> {
    // Credentials stay sealed in the database: `Tenant` does not even carry them.
    let tenant = tenants::get(&state.db, id).await?.ok_or(Error::NotFound)?;
    let summary = views::sync_summary(&state.db, id.into())
        .await?
        .ok_or(Error::NotFound)?;
    let (runs, runs_total) = views::runs(&state.db, id.into(), RECENT_RUNS, 0).await?;
    let consent = consent::ConsentCard::of(&state.db, id).await?;
    let sign_ins = super::sign_ins::recent(state, &tenant, RECENT_SIGN_INS).await?;
    let history = audit::for_tenant(&state.db, id.into())
        .await?
        .iter()
        .map(EventRow::from)
        .collect();
    let (schedule, errors) = form.unwrap_or_else(|| {
        (
            ScheduleForm::from(&summary.schedule),
            ScheduleErrors::default(),
        )
    });
    let now = OffsetDateTime::now_utc();
    let sync = SyncCard::new(id, &summary);
    let guard = guard::GuardCard::new(
        id,
        crate::directory::guard::summary(&state.db, id.into()).await?,
        crate::directory::guard::thresholds(&state.db, id.into()).await?,
    );
    let notifications = notifications_line(
        subscriptions::status(&state.db, id.into(), state.subscriptions().enabled()).await?,
    );
    let gone = sync.next_step.as_ref().is_some_and(|s| s.tenant_gone());
    // An active tenant whose syncs fail does not look fine at the top of its page.
    let badge = match tenant.status {
        TenantStatus::Active if gone => Badge {
            class: SyncHealth::Failing.as_str(),
            label: "Not found at Microsoft",
        },
        TenantStatus::Active if summary.sync_failures > 0 => Badge {
            class: summary.health().as_str(),
            label: "Active, syncs failing",
        },
        status => Badge::new(status),
    };
    let needs_consent = tenant.status == TenantStatus::ReconsentRequired
        || sync.next_step.as_ref().is_some_and(|s| s.needs_consent());
    let invite_again_url = gone.then(|| {
        super::list::link(
            paths::NEW_INVITATION,
            &[
                ("customer_name", tenant.customer_name.clone()),
                ("mode", tenant.consent_mode.as_str().to_owned()),
            ],
        )
    });
    Ok(DetailPage {
        chrome: Chrome::new(state, operator, csrf, Section::Tenants),
        head: Head {
            id,
            name: tenant.display_name,
            badge,
            tabs: Tabs::new(id, "overview", summary.users, summary.groups),
        },
        entra_id: tenant.entra_tenant_id.to_string(),
        customer_url: paths::customer(tenant.customer_id),
        customer: tenant.customer_name,
        domains: tenant.verified_domains,
        mode: tenant.consent_mode.label(),
        // Delegated consents record Graph's full scope URLs, application ones the role names:
        // both read as the permission's name.
        scopes: tenant
            .granted_scopes
            .iter()
            .map(|s| {
                s.trim_start_matches("https://graph.microsoft.com/")
                    .to_owned()
            })
            .collect(),
        consented_by_upn: tenant.consented_by_upn,
        consented_by_oid: tenant.consented_by_oid.map(|o| o.to_string()),
        consented: When::new(tenant.consented_at),
        customer_client_id: tenant.customer_client_id,
        offboarded: tenant.status == TenantStatus::Offboarded,
        reconsent_required: tenant.status == TenantStatus::ReconsentRequired,
        reconsent_url: needs_consent.then(|| paths::reconsent_tenant(id)),
        invite_again_url,
        notice,
        sync,
        guard,
        notifications,
        schedule,
        errors,
        zones: crate::types::schedule::time_zone_names(),
        runs: runs.iter().map(|r| RunRow::new(r, now)).collect(),
        runs_total,
        history,
        sign_ins,
        consent,
    })
}

/// "Send re-consent invitation": a new invitation for the same admin, customer and mode, bound
/// to this tenant's domain; the page shows its link as a new invitation's does.
async fn reconsent(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    session: Session,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: TenantRecordId = parse_id(&id)?;
    let live = state.live().await?;
    let issued = invitations::invite_again_for_tenant(
        &state.db,
        state.invitation_context(&live),
        id.into(),
        &Actor::Operator(operator.email.clone()),
        Some(operator.id),
    )
    .await?;
    super::invitations::reveal_link(&session, issued, false).await
}

async fn offboard(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: TenantRecordId = parse_id(&id)?;
    state.subscriptions().delete_all(id.into()).await?;
    tenants::offboard(&state.db, id.into(), &Actor::Operator(operator.email)).await?;
    crate::signin::ends::for_tenant(&state.db, id.into()).await?;
    Ok(Redirect::to(&format!(
        "{}?done=offboarded",
        paths::tenant(id)
    )))
}
