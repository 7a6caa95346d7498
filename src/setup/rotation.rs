//! Client-secret rotation for the secret the setup added: when it expires within the
//! *rotate days before expiry* setting, Gangway adds a new one (`addPassword`, app-only with
//! `Application.ReadWrite.OwnedBy` on its own registration), stores it sealed, waits until every
//! live process has taken it (each heartbeat in `background_tasks` newer than the switch plus a
//! settings-cache lifetime), then removes the old one (`removePassword`). Each activation does
//! the next due half, so a restart in between resumes where it stopped.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SECRET_LIFETIME_DAYS, SECRET_NAME};
use crate::audit::{self, Action, Actor};
use crate::credentials::{self, Rotated};
use crate::crypto::Keyring;
use crate::doctor::{Check, CheckStatus};
use crate::graph::GraphClient;
use crate::settings::{self, Edit, Key, Live};

/// How often the task looks: the removal follows the switch within a minute or so.
pub const PERIOD: Duration = Duration::from_secs(30);
/// How long after the switch every process surely reads the new secret: a few lifetimes of
/// the settings cache (seconds), so a process that just read the old one has read again.
pub const SETTLE: Duration = Duration::from_secs(10);
/// A process whose heartbeat is older than this is gone and is not waited for.
const GONE_AFTER: Duration = Duration::from_secs(2 * 15 * 2);

/// What one activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Gangway did not add the stored secret (no setup ran): it leaves it alone.
    NotManaged,
    /// Nothing due; the next rotation starts on this day.
    NotDue(time::Date),
    /// Graph refused `addPassword` or `removePassword` (the app lacks
    /// `Application.ReadWrite.OwnedBy` or does not own its registration): nothing changed.
    NoPermission(String),
    /// A new secret was added and stored; the old one waits for every process to switch.
    Added {
        /// The new secret's key id.
        key_id: Uuid,
    },
    /// Some process may still use the old secret: removing it waits.
    Waiting,
    /// The old secret was removed: the rotation is complete.
    Removed {
        /// The removed secret's key id.
        key_id: Uuid,
    },
}

impl Rotation {
    /// A line for the task's status.
    pub fn summary(&self) -> String {
        match self {
            Self::NotManaged => "the client secret is not one Gangway added: not rotated".into(),
            Self::NotDue(day) => format!("next rotation on {day}"),
            Self::NoPermission(why) => format!("cannot rotate: {why}"),
            Self::Added { key_id } => format!(
                "added client secret {key_id}; the old one is removed once every process uses it"
            ),
            Self::Waiting => "waiting for every process to use the new client secret".into(),
            Self::Removed { key_id } => format!("removed the old client secret {key_id}"),
        }
    }
}

/// Does the next due step of the rotation of the secret the setup added, with the settings
/// `live` (the current secret authenticates Graph's calls; the rotation starts their *rotate
/// days before expiry* before the secret expires).
pub async fn try_rotate(
    db: &PgPool,
    keys: &Keyring,
    live: &Live,
    graph: &GraphClient,
) -> anyhow::Result<Rotation> {
    let Some(row) = sqlx::query!(
        "select object_id, secret_key_id, secret_expires_at, retiring_key_id, switched_at
           from provider_registration"
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(Rotation::NotManaged);
    };
    let (Some(key_id), Some(expires), Some(tenant)) = (
        row.secret_key_id,
        row.secret_expires_at,
        live.settings.provider_tenant_id,
    ) else {
        return Ok(Rotation::NotManaged);
    };
    let object = row.object_id.to_string();

    if let (Some(old), Some(switched_at)) = (row.retiring_key_id, row.switched_at) {
        if !switched(db, switched_at).await? {
            return Ok(Rotation::Waiting);
        }
        let token = live.entra()?.app_token(&tenant, None).await?;
        match graph.remove_password(&token, &object, old).await {
            // Already gone (removed by hand, or an earlier activation died after the call).
            Ok(()) | Err(crate::graph::GraphError::Api { status: 404, .. }) => {}
            Err(e) if e.is_permission_denied() => {
                return Ok(Rotation::NoPermission(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        let mut tx = db.begin().await?;
        sqlx::query!(
            "update provider_registration set retiring_key_id = null, switched_at = null, updated_at = now()"
        )
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            &Actor::System,
            Action::ClientSecretRotated,
            None,
            None,
            serde_json::json!({ "removed_key_id": old, "key_id": key_id }),
        )
        .await?;
        tx.commit().await?;
        return Ok(Rotation::Removed { key_id: old });
    }

    let renew_days = i64::from(live.settings.secret_rotation_days);
    let starts = expires - time::Duration::days(renew_days);
    let now = OffsetDateTime::now_utc();
    if now < starts {
        return Ok(Rotation::NotDue(starts.date()));
    }
    let token = live.entra()?.app_token(&tenant, None).await?;
    let new = match graph
        .add_password(
            &token,
            &object,
            SECRET_NAME,
            now + time::Duration::days(SECRET_LIFETIME_DAYS),
        )
        .await
    {
        Ok(new) => new,
        Err(e) if e.is_permission_denied() || e.is_not_found() => {
            return Ok(Rotation::NoPermission(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    // The registration row first: were the settings saved and this lost, the next activation
    // would add yet another secret and never remove this one.
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update provider_registration
            set secret_key_id = $1, secret_expires_at = $2, retiring_key_id = $3,
                switched_at = now(), updated_at = now()",
        new.key_id,
        new.end_date_time,
        key_id,
    )
    .execute(&mut *tx)
    .await?;
    credentials::announce_rotation(
        &mut tx,
        Rotated::Secret,
        Some(new.key_id),
        None,
        new.end_date_time,
    )
    .await?;
    tx.commit().await?;
    let edits = [
        Edit {
            key: Key::ClientSecret,
            raw: new.secret_text.expose().to_owned(),
        },
        Edit {
            key: Key::ClientSecretExpires,
            raw: new.end_date_time.date().to_string(),
        },
    ];
    settings::save(db, keys, &edits, &Actor::System).await?;
    Ok(Rotation::Added { key_id: new.key_id })
}

/// Whether every live process has read the settings since `switched_at`: it heartbeated after
/// the switch plus [`SETTLE`] (its settings cache has expired since), or has gone silent.
async fn switched(db: &PgPool, switched_at: OffsetDateTime) -> Result<bool, sqlx::Error> {
    let settled = switched_at + SETTLE;
    if OffsetDateTime::now_utc() < settled {
        return Ok(false);
    }
    let gone = OffsetDateTime::now_utc() - GONE_AFTER;
    let lagging = sqlx::query_scalar!(
        r#"select count(distinct process) as "n!" from background_tasks
            where heartbeat_at < $1 and heartbeat_at > $2"#,
        settled,
        gone,
    )
    .fetch_one(db)
    .await?;
    Ok(lagging == 0)
}

/// The doctor's line on rotation: when the next one starts, or why Gangway cannot rotate;
/// none for a secret entered by hand (the expiry check covers it).
pub async fn check(db: &PgPool, live: &Live) -> Option<Check> {
    const TITLE: &str = "Client secret rotation";
    let row = sqlx::query!(
        "select secret_key_id, secret_expires_at, retiring_key_id from provider_registration"
    )
    .fetch_optional(db)
    .await;
    let renew_days = live.settings.secret_rotation_days;
    // The task's last word, when it could not rotate: the doctor says so until it can.
    let refused = sqlx::query_scalar!(
        "select last_summary from background_tasks
          where name = $1 and last_summary like 'cannot rotate:%'
          order by last_finished_at desc nulls last limit 1",
        crate::background::Task::SecretRotation.name()
    )
    .fetch_optional(db)
    .await
    .ok()
    .flatten()
    .flatten();
    if let Some(why) = refused {
        return Some(Check::new("secret_rotation", TITLE, CheckStatus::Warn)
            .detail(format!("Gangway {why}."))
            .fix(format!(
                "Run `gangway setup` again: it grants {} in your tenant and makes Gangway an owner of its registration.",
                super::ROTATION_PERMISSION
            )));
    }
    let check = |status| Check::new("secret_rotation", TITLE, status);
    match row {
        Err(e) => Some(check(CheckStatus::Warn).detail(format!(
            "Gangway could not read its registration record: {e}."
        ))),
        Ok(Some(r)) if r.retiring_key_id.is_some() => Some(check(CheckStatus::Pass).detail(
            "A new client secret is in use; the old one is removed once every process uses it.",
        )),
        Ok(Some(r)) => match (r.secret_key_id, r.secret_expires_at) {
            (Some(_), Some(expires)) => {
                let starts = (expires - time::Duration::days(renew_days.into())).date();
                Some(check(CheckStatus::Pass).detail(format!(
                    "Gangway rotates the client secret it added on {starts}, {renew_days} days before it expires (with {} in your tenant, which the setup granted).",
                    super::ROTATION_PERMISSION
                )))
            }
            _ => None,
        },
        Ok(None) => None,
    }
}
