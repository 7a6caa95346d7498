//! A tenant's directory copy: its users and groups (searchable, paginated), one group's
//! members and one user's groups (direct, and all through nested groups, paginated), and all
//! its sync runs. Only what is in the tenant's sync scope shows.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::super::list::{Empty, Filters, ListPage, ListQuery};
use super::super::{Chrome, Section, parse_id};
use super::sync::RunRow;
use super::{Badge, Head, Tabs};
use crate::directory::nesting;
use crate::directory::views::{
    self, DirectoryGroup, DirectoryUser, GroupMember, SyncHealth, SyncSummary, UserState,
};
use crate::tenants::{self, Tenant};
use crate::types::TenantRecordId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::CurrentOperator;

const PER_PAGE: i64 = 50;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::TENANT_USERS, get(users))
        .route(paths::TENANT_GROUPS, get(groups))
        .route(paths::TENANT_GROUP, get(group))
        .route(paths::TENANT_USER, get(user))
        .route(paths::TENANT_RUNS, get(runs))
}

/// The tenant and its sync summary, or 404.
pub(super) async fn load(
    state: &AppState,
    id: TenantRecordId,
    tab: &'static str,
) -> Result<(Head, SyncSummary)> {
    let tenant: Tenant = tenants::get(&state.db, id).await?.ok_or(Error::NotFound)?;
    let summary = views::sync_summary(&state.db, id.into())
        .await?
        .ok_or(Error::NotFound)?;
    let head = Head {
        id,
        name: tenant.display_name,
        badge: Badge::new(tenant.status),
        tabs: Tabs::new(id, tab, summary.users, summary.groups),
    };
    Ok((head, summary))
}

/// The empty state of a copy with nothing in it: why (not synced yet, and whether the first
/// sync is on its way; not synced in this state; or the directory has none).
fn nothing_yet(summary: &SyncSummary, noun: &str, overview: &str) -> Empty {
    let to_sync = Some(("See the sync", overview.to_owned()));
    match summary.health() {
        SyncHealth::ReconsentNeeded => Empty::first_run(
            format!("No {noun} copied"),
            "The tenant's access stopped working: the directory is copied again once the customer consents again.",
            to_sync,
        ),
        SyncHealth::Stopped => Empty::first_run(
            format!("No {noun} copied"),
            "This tenant is not synced.",
            None,
        ),
        _ if summary.last_sync_success_at.is_some() => Empty::first_run(
            format!("No {noun} in this directory"),
            format!("The last sync found no {noun}."),
            None,
        ),
        _ if summary.running.is_some() => Empty::first_run(
            "Not synced yet — the first sync is running",
            format!("The {noun} appear here as it copies them."),
            to_sync,
        ),
        _ if summary.queued => Empty::first_run(
            "Not synced yet — the first sync is queued",
            format!("The {noun} appear here once it has run."),
            to_sync,
        ),
        _ => Empty::first_run(
            "Not synced yet",
            format!("The {noun} appear here after the first sync."),
            to_sync,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Users

struct UserRow {
    url: String,
    name: String,
    upn: String,
    mail: String,
    phones: Vec<String>,
    mobile: Option<String>,
    job_title: String,
    department: String,
    enabled: Option<bool>,
    soft_deleted: bool,
    object_id: String,
}

impl UserRow {
    fn new(tenant_id: TenantRecordId, u: &DirectoryUser) -> Self {
        let name = u
            .display_name
            .clone()
            .or_else(|| {
                let full = [u.given_name.as_deref(), u.surname.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!full.is_empty()).then_some(full)
            })
            .unwrap_or_default();
        Self {
            url: paths::tenant_user(tenant_id, u.object_id),
            name,
            upn: u.user_principal_name.clone().unwrap_or_default(),
            mail: u.mail.clone().unwrap_or_default(),
            phones: u.business_phones.clone(),
            mobile: u.mobile_phone.clone(),
            job_title: u.job_title.clone().unwrap_or_default(),
            department: u.department.clone().unwrap_or_default(),
            enabled: u.account_enabled,
            soft_deleted: u.soft_deleted_at.is_some(),
            object_id: u.object_id.to_string(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant_users.html")]
struct UsersPage {
    chrome: Chrome,
    head: Head,
    list: ListPage<UserRow, UserFilters>,
    /// The state filter's choices: (value, label, chosen).
    states: Vec<(&'static str, &'static str, bool)>,
}

/// The users list's filter beside the search: enabled, disabled or in the recycle bin.
#[derive(Default)]
struct UserFilters {
    state: Option<UserState>,
}

impl Filters for UserFilters {
    fn parse(params: &HashMap<String, String>) -> Self {
        Self {
            state: params.get("state").and_then(|s| UserState::parse(s)),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        self.state
            .map(|s| ("state", s.as_str().to_owned()))
            .into_iter()
            .collect()
    }
}

async fn users(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    query: ListQuery<UserFilters>,
) -> Result<UsersPage> {
    let id: TenantRecordId = parse_id(&id)?;
    let (head, summary) = load(&state, id, "users").await?;
    let (found, total) = views::users(
        &state.db,
        id.into(),
        query.q.as_deref(),
        query.filters.state,
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let states = UserState::ALL
        .into_iter()
        .map(|s| (s.as_str(), s.label(), Some(s) == query.filters.state))
        .collect();
    let empty = nothing_yet(&summary, "users", &head.tabs.overview);
    let rows = found.iter().map(|u| UserRow::new(id, u)).collect();
    Ok(UsersPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        list: ListPage::new(
            query,
            &head.tabs.users,
            PER_PAGE,
            rows,
            total,
            "users",
            empty,
        ),
        head,
        states,
    })
}

// ---------------------------------------------------------------------------------------------
// Groups

struct GroupRow {
    url: String,
    name: String,
    description: String,
    mail: String,
    kind: &'static str,
    members: i64,
    soft_deleted: bool,
}

impl GroupRow {
    fn new(tenant_id: TenantRecordId, g: &DirectoryGroup) -> Self {
        Self {
            url: paths::tenant_group(tenant_id, g.object_id),
            name: g.display_name.clone().unwrap_or_default(),
            description: g.description.clone().unwrap_or_default(),
            mail: g.mail.clone().unwrap_or_default(),
            kind: g.kind(),
            members: g.members,
            soft_deleted: g.soft_deleted_at.is_some(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant_groups.html")]
struct GroupsPage {
    chrome: Chrome,
    head: Head,
    list: ListPage<GroupRow>,
}

async fn groups(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    query: ListQuery<()>,
) -> Result<GroupsPage> {
    let id: TenantRecordId = parse_id(&id)?;
    let (head, summary) = load(&state, id, "groups").await?;
    let (found, total) = views::groups(
        &state.db,
        id.into(),
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let empty = nothing_yet(&summary, "groups", &head.tabs.overview);
    let rows = found.iter().map(|g| GroupRow::new(id, g)).collect();
    Ok(GroupsPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        list: ListPage::new(
            query,
            &head.tabs.groups,
            PER_PAGE,
            rows,
            total,
            "groups",
            empty,
        ),
        head,
    })
}

// ---------------------------------------------------------------------------------------------
// One group

struct MemberRow {
    name: String,
    upn: String,
    mail: String,
    kind: String,
    /// The member's own page, for a group in the copy.
    url: Option<String>,
    in_copy: bool,
    soft_deleted: bool,
    member_id: String,
}

impl MemberRow {
    fn new(tenant_id: TenantRecordId, m: &GroupMember) -> Self {
        Self {
            name: m.display_name.clone().unwrap_or_default(),
            upn: m.user_principal_name.clone().unwrap_or_default(),
            mail: m.mail.clone().unwrap_or_default(),
            kind: m.kind(),
            url: (m.in_copy && m.is_group()).then(|| paths::tenant_group(tenant_id, m.member_id)),
            in_copy: m.in_copy,
            soft_deleted: m.soft_deleted,
            member_id: m.member_id.to_string(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant_group.html")]
struct GroupPage {
    chrome: Chrome,
    head: Head,
    group: GroupRow,
    object_id: String,
    groups_url: String,
    list: ListPage<MemberRow>,
    /// A page of the members at any depth, by id.
    all_members: Vec<MemberRow>,
    /// How many members it has at any depth.
    all_total: i64,
    /// The next page of those, if any; the first, when this is not it.
    all_next: Option<String>,
    all_first: Option<String>,
}

/// Where a keyset list of a page stands: its cursor (`all_after`, the last id of the page
/// before), beside the page's other parameters.
#[derive(Deserialize, Default)]
struct AllAfter {
    all_after: Option<Uuid>,
}

/// Cuts a keyset page fetched one longer than `PER_PAGE`: the rows, and the link to the next
/// page (from `base`) when there is one.
fn keyset<T>(mut rows: Vec<T>, base: &str, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    let next = match rows.last() {
        Some(last) if more => Some(format!("{base}?all_after={}#all", id(last))),
        _ => None,
    };
    (rows, next)
}

async fn group(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path((id, group_id)): Path<(String, String)>,
    Query(cursor): Query<AllAfter>,
    query: ListQuery<()>,
) -> Result<GroupPage> {
    let (id, group_id): (TenantRecordId, Uuid) = (parse_id(&id)?, parse_id(&group_id)?);
    let (head, _) = load(&state, id, "groups").await?;
    let found = views::group(&state.db, id.into(), group_id)
        .await?
        .ok_or(Error::NotFound)?;
    let (members, total) = views::group_members(
        &state.db,
        id.into(),
        group_id,
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let rows = members.iter().map(|m| MemberRow::new(id, m)).collect();
    let base = paths::tenant_group(id, group_id);
    let page = nesting::transitive_members(
        &state.db,
        id.into(),
        group_id,
        cursor.all_after,
        PER_PAGE + 1,
    )
    .await?;
    let (page, all_next) = keyset(page, &base, |m| m.member_id);
    let all_members = page.iter().map(|m| MemberRow::new(id, m)).collect();
    let all_first = cursor.all_after.map(|_| format!("{base}#all"));
    let all_total = nesting::transitive_member_count(&state.db, id.into(), group_id).await?;
    let list = ListPage::new(
        query,
        paths::tenant_group(id, group_id),
        PER_PAGE,
        rows,
        total,
        "members",
        Empty::first_run(
            "No members",
            "The copy holds no members of this group.",
            None,
        ),
    );
    Ok(GroupPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        group: GroupRow::new(id, &found),
        object_id: found.object_id.to_string(),
        groups_url: head.tabs.groups.clone(),
        head,
        list,
        all_members,
        all_total,
        all_next,
        all_first,
    })
}

// ---------------------------------------------------------------------------------------------
// One user

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant_user.html")]
struct UserPage {
    chrome: Chrome,
    head: Head,
    user: UserRow,
    users_url: String,
    /// The groups it is a direct member of (the first page, by id).
    direct: Vec<GroupRow>,
    /// More than that page holds.
    direct_more: bool,
    /// A page of the groups it is in at any depth, by id, and the links to the next and first.
    all: Vec<GroupRow>,
    all_next: Option<String>,
    all_first: Option<String>,
}

async fn user(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path((id, user_id)): Path<(String, String)>,
    Query(cursor): Query<AllAfter>,
) -> Result<UserPage> {
    let (id, user_id): (TenantRecordId, Uuid) = (parse_id(&id)?, parse_id(&user_id)?);
    let (head, _) = load(&state, id, "users").await?;
    let found = views::user(&state.db, id.into(), user_id)
        .await?
        .ok_or(Error::NotFound)?;
    let groups_of = |transitive: bool, after: Option<Uuid>| {
        nesting::groups_of(
            &state.db,
            id.into(),
            user_id,
            transitive,
            after,
            PER_PAGE + 1,
        )
    };
    let base = paths::tenant_user(id, user_id);
    let (direct, direct_next) = keyset(groups_of(false, None).await?, &base, |g| g.object_id);
    let direct_more = direct_next.is_some();
    let (all, all_next) = keyset(groups_of(true, cursor.all_after).await?, &base, |g| {
        g.object_id
    });
    Ok(UserPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        user: UserRow::new(id, &found),
        users_url: head.tabs.users.clone(),
        head,
        direct: direct.iter().map(|g| GroupRow::new(id, g)).collect(),
        direct_more,
        all: all.iter().map(|g| GroupRow::new(id, g)).collect(),
        all_next,
        all_first: cursor.all_after.map(|_| format!("{base}#all")),
    })
}

// ---------------------------------------------------------------------------------------------
// Runs

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant_runs.html")]
struct RunsPage {
    chrome: Chrome,
    head: Head,
    list: ListPage<RunRow>,
}

async fn runs(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    query: ListQuery<()>,
) -> Result<RunsPage> {
    let id: TenantRecordId = parse_id(&id)?;
    let (head, summary) = load(&state, id, "runs").await?;
    let (found, total) =
        views::runs(&state.db, id.into(), PER_PAGE, query.offset(PER_PAGE)).await?;
    let first = match summary.health() {
        SyncHealth::Stopped | SyncHealth::ReconsentNeeded => {
            Empty::first_run("No syncs", "This tenant has not been synced.", None)
        }
        _ if summary.queued => Empty::first_run(
            "No syncs yet — the first sync is queued",
            "Each sync shows here with what it changed.",
            None,
        ),
        _ => Empty::first_run(
            "No syncs yet",
            "Each sync shows here with what it changed.",
            None,
        ),
    };
    let now = OffsetDateTime::now_utc();
    let rows = found.iter().map(|r| RunRow::new(r, now)).collect();
    Ok(RunsPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        list: ListPage::new(query, &head.tabs.runs, PER_PAGE, rows, total, "runs", first),
        head,
    })
}
