//! The Doctor page (admins only): every check of the provider's app registration with its
//! outcome and fix, and the values to enter in the Entra admin center, each with a copy
//! button. "Run again" simply loads the page again: every load runs the checks. The Setup page
//! (one sign-in, then Gangway fixes it all) is linked from here.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use time::OffsetDateTime;

use super::{Chrome, Section};
use crate::doctor::{self, Check, CheckStatus, Expected};
use crate::format;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::DOCTOR, get(page))
}

/// A value to paste, with the id its copy button points at.
#[derive(Clone)]
struct Value {
    id: String,
    label: String,
    value: String,
}

#[derive(Clone)]
struct Row {
    anchor: String,
    title: String,
    status: &'static str,
    badge: &'static str,
    detail: String,
    fix: Option<String>,
    values: Vec<Value>,
}

impl Row {
    fn new(n: usize, check: &Check) -> Self {
        Self {
            anchor: format!("check-{}", check.id.replace(':', "-")),
            title: check.title.clone(),
            status: match check.status {
                CheckStatus::Pass => "Pass",
                CheckStatus::Warn => "Warning",
                CheckStatus::Fail => "Fail",
                CheckStatus::Skip => "Not checked",
            },
            badge: badge(check.status),
            detail: check.detail.clone(),
            fix: check.fix.clone(),
            // A check that passes needs nothing pasted.
            values: check
                .values
                .iter()
                .filter(|_| check.status != CheckStatus::Pass)
                .enumerate()
                .map(|(i, v)| Value {
                    id: format!("check-{n}-value-{i}"),
                    label: format!("{} — value to paste", check.title),
                    value: v.clone(),
                })
                .collect(),
        }
    }
}

/// The existing badge colours: green, amber, red, grey.
fn badge(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Pass => "succeeded",
        CheckStatus::Warn => "interrupted",
        CheckStatus::Fail => "failed",
        CheckStatus::Skip => "disabled",
    }
}

/// One profile's permissions as the "what to enter" card lists them.
struct Needs {
    name: String,
    delegated: String,
    application: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/doctor.html")]
struct Page {
    chrome: Chrome,
    checked_at: String,
    headline: &'static str,
    summary: String,
    summary_class: &'static str,
    stored_expiry: Option<String>,
    rows: Vec<Row>,
    /// The failed checks, then the warnings: linked from the summary.
    problems: Vec<Row>,
    expected: Expected,
    /// No setup has named the provider's tenant yet: the page offers the one-sign-in setup.
    first_run: bool,
    redirects: Vec<(Value, &'static str, bool)>,
    logout: Value,
    needs: Vec<Needs>,
}

async fn page(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    CsrfToken(csrf): CsrfToken,
) -> Result<Page> {
    let live = state.live().await?;
    let report = doctor::run(
        &state.db,
        &state.cfg.keys,
        &live,
        &state.graph,
        &state.cfg.public_url,
        &state.cfg.authority,
    )
    .await;
    if report.stored_secret_expiry.is_some() {
        state.settings.invalidate();
    }
    let (headline, summary_class) = if !report.passed() {
        ("Something needs fixing.", "bad")
    } else if report.count(CheckStatus::Warn) > 0 {
        ("Working, with warnings.", "warn")
    } else {
        ("Everything checks out.", "ok")
    };
    let expected = report.expected.clone();
    let redirects = expected
        .redirect_uris
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                Value {
                    id: format!("expected-redirect-{i}"),
                    label: format!("Redirect URI: {}", r.purpose),
                    value: r.uri.clone(),
                },
                r.purpose,
                r.required,
            )
        })
        .collect();
    let logout = Value {
        id: "expected-logout".into(),
        label: "Front-channel logout URL".into(),
        value: expected.logout_url.clone(),
    };
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let needs = expected
        .profiles
        .iter()
        .map(|p| Needs {
            name: p.name.clone(),
            delegated: list(&p.delegated),
            application: list(&p.application),
        })
        .collect();
    let rows: Vec<Row> = report
        .checks
        .iter()
        .enumerate()
        .map(|(n, c)| Row::new(n, c))
        .collect();
    let problems = [CheckStatus::Fail, CheckStatus::Warn]
        .into_iter()
        .flat_map(|status| {
            report
                .checks
                .iter()
                .zip(&rows)
                .filter(move |(c, _)| c.status == status)
                .map(|(_, row)| row.clone())
        })
        .collect();
    Ok(Page {
        chrome: Chrome::new(&state, &admin, csrf, Section::Doctor),
        checked_at: format::datetime(OffsetDateTime::now_utc()),
        headline,
        summary: report.summary(),
        summary_class,
        stored_expiry: report.stored_secret_expiry.map(|d| d.to_string()),
        rows,
        problems,
        first_run: live.settings.provider_tenant_id.is_none(),
        expected,
        redirects,
        logout,
        needs,
    })
}
