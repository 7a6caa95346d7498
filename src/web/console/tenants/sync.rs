//! A tenant's sync on its page: where it stands, "Sync now", the schedule form (admins), the
//! recent runs, and the JSON its page polls while a run is under way.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::super::{FormErrors, When, parse_id};
use super::{Badge, NextRun, detail_page, failed_attempts};
use crate::audit::Actor;
use crate::directory::control;
use crate::directory::sync::FailureKind;
use crate::directory::views::{self, SyncHealth, SyncRun, SyncSummary};
use crate::types::{Schedule, ScheduleError, TenantRecordId};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SYNC_TENANT, post(sync_now))
        .route(paths::SYNC_SCHEDULE, post(set_schedule))
        .route(paths::SYNC_PROGRESS, get(progress))
}

/// The run under way, as the page shows it and the script updates it.
pub(super) struct Running {
    pub(super) id: i64,
    pub(super) started: When,
    pub(super) trigger: &'static str,
    pub(super) full_round: bool,
    pub(super) objects: i64,
    pub(super) pages: i32,
    pub(super) added: i32,
    pub(super) updated: i32,
    pub(super) soft_deleted: i32,
    pub(super) removed: i32,
    pub(super) members_added: i32,
    pub(super) members_removed: i32,
    pub(super) throttled_waits: i32,
    /// About how many objects this run touches: a full round's only (a round of changes
    /// cannot be foreseen).
    pub(super) expected: Option<i64>,
}

impl Running {
    fn new(run: &SyncRun, full_round_objects: Option<i64>) -> Self {
        Self {
            expected: full_round_objects.filter(|_| run.full_round),
            id: run.id,
            started: When::new(run.started_at),
            trigger: run.trigger.label(),
            full_round: run.full_round,
            objects: run.counts.objects(),
            pages: run.counts.pages,
            added: run.counts.added,
            updated: run.counts.updated,
            soft_deleted: run.counts.soft_deleted,
            removed: run.counts.removed,
            members_added: run.counts.members_added,
            members_removed: run.counts.members_removed,
            throttled_waits: run.counts.throttled_waits,
        }
    }
}

/// Where the tenant's sync stands, for its page.
pub(super) struct SyncCard {
    pub(super) badge: Badge,
    pub(super) schedule: String,
    pub(super) default_schedule: bool,
    pub(super) next: NextRun,
    pub(super) last_success: Option<When>,
    /// Shown prominently: why syncs fail (a missing permission, a revoked consent…).
    pub(super) error: Option<String>,
    /// Failing for good (unhealthy), rather than an attempt or two that failed.
    pub(super) failing: bool,
    /// What to do about the failure.
    pub(super) next_step: Option<NextStep>,
    pub(super) failures: i32,
    pub(super) users: i64,
    pub(super) groups: i64,
    pub(super) memberships: i64,
    pub(super) running: Option<Running>,
    pub(super) queued: bool,
    pub(super) can_sync: bool,
    pub(super) never_synced: bool,
    pub(super) sync_url: String,
    pub(super) schedule_url: String,
    pub(super) progress_url: String,
}

impl SyncCard {
    pub fn new(id: TenantRecordId, s: &SyncSummary) -> Self {
        let next_step = s
            .sync_error
            .as_ref()
            .zip(s.failure_kind)
            .map(|(_, kind)| NextStep::new(kind, s.queued_for));
        // A failure no retry mends fails for good from the first time.
        let health = match s.health() {
            SyncHealth::Retrying if next_step.as_ref().is_some_and(|n| !n.retried()) => {
                SyncHealth::Failing
            }
            health => health,
        };
        Self {
            badge: Badge::sync(health),
            schedule: s.schedule.label(),
            default_schedule: s.default_schedule,
            next: NextRun::new(s.next_sync_at, health, Some(&s.schedule)),
            last_success: s.last_sync_success_at.map(When::new),
            error: s.sync_error.clone().filter(|e| !e.trim().is_empty()),
            failing: health == SyncHealth::Failing,
            failures: s.sync_failures,
            users: s.users,
            groups: s.groups,
            memberships: s.memberships,
            running: s
                .running
                .as_ref()
                .map(|r| Running::new(r, s.full_round_objects)),
            queued: s.queued,
            next_step,
            can_sync: control::syncable(s.status),
            never_synced: s.last_sync_success_at.is_none(),
            sync_url: paths::sync_tenant(id),
            schedule_url: paths::sync_schedule(id),
            progress_url: paths::sync_progress(id),
        }
    }

    /// Where the sync stands, for the script that follows it: `running`, `queued` or `idle`.
    pub(super) fn phase(&self) -> &'static str {
        if self.running.is_some() {
            "running"
        } else if self.queued {
            "queued"
        } else {
            "idle"
        }
    }

    /// What the error notice says first.
    pub(super) fn error_heading(&self) -> String {
        let retried = self.next_step.as_ref().is_none_or(NextStep::retried);
        if self.failing && self.failures > 1 {
            format!("The last {} syncs failed.", self.failures)
        } else if !retried {
            "The last sync failed.".into()
        } else if self.failures > 0 {
            failed_attempts(self.failures)
        } else {
            "The last sync reported a problem.".into()
        }
    }
}

/// What to do about a failing sync, by the kind of failure.
pub(super) struct NextStep {
    pub(super) kind: FailureKind,
    pub(super) text: &'static str,
    /// When the retry is due, for the kinds that are retried.
    pub(super) retry: Option<When>,
}

impl NextStep {
    fn new(kind: FailureKind, queued_for: Option<OffsetDateTime>) -> Self {
        let text = match kind {
            FailureKind::TenantNotFound => {
                "Microsoft Entra ID no longer knows this tenant: it was deleted, or the customer moved to another tenant. Gangway stopped syncing it. If the customer left, offboard it; if they use a new tenant, invite their admin again."
            }
            FailureKind::PermissionMissing => {
                "The customer's admin must grant the permission named above: a re-consent invitation asks them for every permission again. An admin of that tenant can also grant it in the Microsoft Entra admin center, under Enterprise applications, this app, Permissions, \"Grant admin consent\"; then sync again."
            }
            FailureKind::Throttled => {
                "Microsoft is limiting requests for this tenant. Gangway waits as Microsoft asks and tries again by itself."
            }
            FailureKind::Other => "Gangway tries again by itself.",
        };
        Self {
            kind,
            text,
            retry: queued_for.filter(|_| kind.retried()).map(When::new),
        }
    }

    /// Whether Gangway tries again by itself.
    pub(super) fn retried(&self) -> bool {
        self.kind.retried()
    }

    /// Whether the next step is to offboard or invite again.
    pub(super) fn tenant_gone(&self) -> bool {
        self.kind == FailureKind::TenantNotFound
    }

    /// Whether a re-consent invitation is the next step.
    pub(super) fn needs_consent(&self) -> bool {
        self.kind == FailureKind::PermissionMissing
    }
}

/// One sync run as tables show it.
pub(super) struct RunRow {
    pub(super) started: When,
    pub(super) duration: String,
    pub(super) trigger: &'static str,
    pub(super) full_round: bool,
    pub(super) outcome: Badge,
    pub(super) added: i32,
    pub(super) updated: i32,
    pub(super) soft_deleted: i32,
    pub(super) removed: i32,
    pub(super) members_added: i32,
    pub(super) members_removed: i32,
    pub(super) pages: i32,
    pub(super) throttled_waits: i32,
    pub(super) throttled_seconds: String,
    pub(super) error: Option<String>,
}

impl RunRow {
    pub fn new(run: &SyncRun, now: OffsetDateTime) -> Self {
        Self {
            started: When::new(run.started_at),
            duration: duration_text(run.duration(now)),
            trigger: run.trigger.label(),
            full_round: run.full_round,
            outcome: Badge {
                class: run.outcome.as_str(),
                label: run.outcome.label(),
            },
            added: run.counts.added,
            updated: run.counts.updated,
            soft_deleted: run.counts.soft_deleted,
            removed: run.counts.removed,
            members_added: run.counts.members_added,
            members_removed: run.counts.members_removed,
            pages: run.counts.pages,
            throttled_waits: run.counts.throttled_waits,
            throttled_seconds: format!("{:.1}", run.counts.throttled_seconds),
            error: run.error.clone(),
        }
    }
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`.
fn duration_text(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

// ---------------------------------------------------------------------------------------------
// Sync now

async fn sync_now(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: TenantRecordId = parse_id(&id)?;
    // Only for the message: the request itself coalesces with a queued sync either way.
    let already = views::sync_queued(&state.db, id.into()).await?;
    control::request_sync(&state.db, id.into(), &Actor::Operator(operator.email)).await?;
    let done = if already {
        "sync_already_queued"
    } else {
        "sync_queued"
    };
    Ok(Redirect::to(&format!("{}?done={done}", paths::tenant(id))))
}

// ---------------------------------------------------------------------------------------------
// The schedule form

/// The schedule form as typed: a kind, and the inputs of each kind.
#[derive(Deserialize, Clone)]
#[serde(default)]
pub(super) struct ScheduleForm {
    pub(super) schedule_kind: String,
    pub(super) every_count: String,
    pub(super) every_unit: String,
    pub(super) daily_at: String,
    pub(super) daily_zone: String,
}

impl Default for ScheduleForm {
    fn default() -> Self {
        Self {
            schedule_kind: "every".into(),
            every_count: "1".into(),
            every_unit: "hours".into(),
            daily_at: "02:00".into(),
            daily_zone: "UTC".into(),
        }
    }
}

impl From<&Schedule> for ScheduleForm {
    fn from(schedule: &Schedule) -> Self {
        let defaults = Self::default();
        match schedule {
            Schedule::Every(interval) => {
                let (count, unit) = Schedule::interval_parts(*interval);
                Self {
                    every_count: count.to_string(),
                    every_unit: format!("{unit}s"),
                    ..defaults
                }
            }
            Schedule::Daily { at, zone, .. } => Self {
                schedule_kind: "daily".into(),
                daily_at: format!("{:02}:{:02}", at.hour(), at.minute()),
                daily_zone: zone.clone(),
                ..defaults
            },
            Schedule::Manual => Self {
                schedule_kind: "manual".into(),
                ..defaults
            },
        }
    }
}

/// The units the interval's select offers: (value, label).
const UNITS: [(&str, &str); 3] = [("minutes", "minutes"), ("hours", "hours"), ("days", "days")];
/// The kinds the form's select offers: (value, label).
const KINDS: [(&str, &str); 3] = [
    ("every", "At an interval"),
    ("daily", "Once a day"),
    ("manual", "Only when asked"),
];

impl ScheduleForm {
    pub(super) fn kinds(&self) -> Vec<(&'static str, &'static str, bool)> {
        KINDS
            .iter()
            .map(|(v, l)| (*v, *l, *v == self.schedule_kind))
            .collect()
    }

    pub(super) fn units(&self) -> Vec<(&'static str, &'static str, bool)> {
        UNITS
            .iter()
            .map(|(v, l)| (*v, *l, *v == self.every_unit))
            .collect()
    }

    /// The schedule the form describes, or a message on the field at fault.
    fn parse(&self) -> std::result::Result<Schedule, ScheduleErrors> {
        let mut errors = ScheduleErrors::default();
        let text = match self.schedule_kind.as_str() {
            "every" => {
                let count = self.every_count.trim();
                if count.is_empty() {
                    errors.every_count = Some("Enter how often, e.g. every 6 hours.".into());
                    return Err(errors);
                }
                if !count.bytes().all(|b| b.is_ascii_digit()) {
                    errors.every_count = Some(format!(
                        "Enter a whole number, e.g. 6: “{count}” is not one."
                    ));
                    return Err(errors);
                }
                // The unit as sent, never a default: whatever it names is what is checked
                // (seconds are refused as too often, an unknown unit as not an interval).
                let unit = self.every_unit.trim();
                if !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
                    errors.every_count = Some("Choose minutes, hours or days.".into());
                    return Err(errors);
                }
                format!("every {count} {unit}")
            }
            "daily" => {
                let (at, zone) = (self.daily_at.trim(), self.daily_zone.trim());
                if at.is_empty() {
                    errors.daily_at = Some("Enter the time of day, e.g. 02:30.".into());
                    return Err(errors);
                }
                // A zone is one word; "Europe/ Berlin" is a mistyped zone, not extra words.
                if zone.contains(char::is_whitespace) {
                    errors.daily_zone = Some(ScheduleError::UnknownZone(zone.into()).to_string());
                    return Err(errors);
                }
                // Browsers may send seconds with a time input.
                let at = at
                    .strip_suffix(":00")
                    .filter(|a| a.len() == 5)
                    .unwrap_or(at);
                format!("daily {at} {zone}")
            }
            "manual" => "manual".into(),
            _ => {
                errors.schedule_kind = Some("Choose how often the directory is synced.".into());
                return Err(errors);
            }
        };
        text.parse::<Schedule>().map_err(|e| {
            let message = Some(e.to_string());
            match e {
                ScheduleError::BadTime(_) => errors.daily_at = message,
                ScheduleError::UnknownZone(_) | ScheduleError::Trailing(..) => {
                    errors.daily_zone = message
                }
                ScheduleError::Empty | ScheduleError::UnknownKind(_) => {
                    errors.schedule_kind = message
                }
                ScheduleError::TooLong if self.schedule_kind == "daily" => {
                    errors.daily_zone = message
                }
                _ => errors.every_count = message,
            }
            errors
        })
    }
}

/// The schedule form's messages, one per field.
#[derive(Default)]
pub(super) struct ScheduleErrors {
    pub(super) schedule_kind: Option<String>,
    pub(super) every_count: Option<String>,
    pub(super) daily_at: Option<String>,
    pub(super) daily_zone: Option<String>,
}

impl FormErrors for ScheduleErrors {
    fn fields(&self) -> Vec<(&'static str, &Option<String>)> {
        [
            ("schedule_kind", &self.schedule_kind),
            ("every_count", &self.every_count),
            ("daily_at", &self.daily_at),
            ("daily_zone", &self.daily_zone),
        ]
        .into()
    }
}

async fn set_schedule(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<ScheduleForm>,
) -> Result<Response> {
    let id: TenantRecordId = parse_id(&id)?;
    match form.parse() {
        Ok(schedule) => {
            let actor = Actor::Operator(operator.email);
            control::set_schedule(&state.db, id.into(), &schedule, &actor).await?;
            Ok(Redirect::to(&format!("{}?done=schedule_saved", paths::tenant(id))).into_response())
        }
        Err(errors) => {
            let page = detail_page(&state, &operator, csrf, id, None, Some((form, errors))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Progress

/// The tenant's sync as JSON: whether a run is under way and how far it got, polled every two
/// seconds by the tenant's page while one is.
async fn progress(
    State(state): State<AppState>,
    operator: std::result::Result<CurrentOperator, Error>,
    Path(id): Path<String>,
) -> Result<Response> {
    match operator {
        Ok(_) => {}
        // A script asks: it gets a status, not the sign-in page.
        Err(Error::SignInRequired { .. }) => {
            let body = json!({
                "type": "about:blank",
                "title": "Unauthorized",
                "status": 401,
                "detail": "Sign in to the console to follow a sync.",
            });
            return Ok((
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
                body.to_string(),
            )
                .into_response());
        }
        Err(other) => return Err(other),
    }
    let id: TenantRecordId = parse_id(&id)?;
    let summary = views::sync_summary(&state.db, id.into())
        .await?
        .ok_or(Error::NotFound)?;
    let now = OffsetDateTime::now_utc();
    let run = summary.running.as_ref().map(|run| {
        json!({
            "id": run.id,
            "trigger": run.trigger,
            "full_round": run.full_round,
            "started_at": run.started_at.format(&time::format_description::well_known::Rfc3339).ok(),
            "elapsed_seconds": run.duration(now).whole_seconds(),
            "objects": run.counts.objects(),
            "expected_objects": summary.full_round_objects.filter(|_| run.full_round),
            "pages": run.counts.pages,
            "added": run.counts.added,
            "updated": run.counts.updated,
            "soft_deleted": run.counts.soft_deleted,
            "removed": run.counts.removed,
            "members_added": run.counts.members_added,
            "members_removed": run.counts.members_removed,
            "throttled_waits": run.counts.throttled_waits,
            "throttled_seconds": run.counts.throttled_seconds,
        })
    });
    let health = summary.health();
    let phase = if summary.running.is_some() {
        "running"
    } else if summary.queued {
        "queued"
    } else {
        "idle"
    };
    Ok(Json(json!({
        "phase": phase,
        "running": summary.running.is_some(),
        "queued": summary.queued,
        "health": health,
        "health_label": health.label(),
        "users": summary.users,
        "groups": summary.groups,
        "memberships": summary.memberships,
        "last_success_at": summary
            .last_sync_success_at
            .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
        "sync_failures": summary.sync_failures,
        "sync_error": summary.sync_error,
        "failure_kind": summary.failure_kind,
        "run": run,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, count: &str, unit: &str, at: &str, zone: &str) -> ScheduleForm {
        ScheduleForm {
            schedule_kind: kind.into(),
            every_count: count.into(),
            every_unit: unit.into(),
            daily_at: at.into(),
            daily_zone: zone.into(),
        }
    }

    #[test]
    fn the_form_reads_into_a_schedule_or_names_the_field_at_fault() {
        let ok = |f: ScheduleForm| f.parse().ok().unwrap().to_string();
        assert_eq!(ok(form("every", "6", "hours", "", "")), "every 6h");
        assert_eq!(ok(form("every", " 90 ", "minutes", "", "")), "every 90m");
        assert_eq!(
            ok(form("daily", "", "", "02:30:00", "Europe/Berlin")),
            "daily 02:30 Europe/Berlin"
        );
        assert_eq!(ok(form("daily", "", "", "02:30", "")), "daily 02:30 UTC");
        assert_eq!(ok(form("manual", "x", "", "", "")), "manual");
        let err = |f: ScheduleForm| f.parse().err().unwrap().all().first().unwrap().0;
        assert_eq!(err(form("every", "2", "minutes", "", "")), "every_count");
        // A unit is never replaced by another: 30 seconds is too often, not every 30 hours.
        let message = |f: ScheduleForm| f.parse().err().unwrap().every_count.unwrap();
        assert_eq!(
            message(form("every", "30", "seconds", "", "")),
            "Every 30 seconds is too often: the shortest interval is 5 minutes."
        );
        assert!(message(form("every", "30", "fortnights", "", "")).contains("not an interval"));
        assert!(message(form("every", "30", "", "", "")).contains("not an interval"));
        assert!(message(form("every", "30 seconds", "hours", "", "")).contains("whole number"));
        assert_eq!(err(form("every", "", "hours", "", "")), "every_count");
        assert_eq!(err(form("daily", "", "", "", "UTC")), "daily_at");
        assert_eq!(err(form("daily", "", "", "25:00", "UTC")), "daily_at");
        assert_eq!(
            err(form("daily", "", "", "02:30", "Mars/Olympus")),
            "daily_zone"
        );
        assert_eq!(
            err(form("daily", "", "", "02:30", "Europe/ Berlin")),
            "daily_zone"
        );
        assert_eq!(err(form("weekly", "", "", "", "")), "schedule_kind");
    }

    #[test]
    fn the_form_shows_the_stored_schedule() {
        let f = ScheduleForm::from(&"every 90m".parse::<Schedule>().unwrap());
        assert_eq!(
            (f.every_count.as_str(), f.every_unit.as_str()),
            ("90", "minutes")
        );
        let f = ScheduleForm::from(&"daily 06:05 America/New_York".parse::<Schedule>().unwrap());
        assert_eq!(
            (
                f.schedule_kind.as_str(),
                f.daily_at.as_str(),
                f.daily_zone.as_str()
            ),
            ("daily", "06:05", "America/New_York")
        );
    }

    #[test]
    fn durations_read_in_the_largest_units() {
        assert_eq!(duration_text(time::Duration::seconds(42)), "42 s");
        assert_eq!(duration_text(time::Duration::seconds(185)), "3 min 5 s");
        assert_eq!(duration_text(time::Duration::minutes(130)), "2 h 10 min");
    }
}
