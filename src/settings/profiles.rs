//! Permission profiles: named sets of Microsoft Graph permissions, for delegated and for
//! application consent, each with the plain-words reason the customer is shown. The built-in
//! read-only directory profile is the default; a provider may add broader ones. An invitation
//! picks one, and the wizard, the authorize request, the doctor and the sync read it.

use serde_json::json;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::types::profile::{Permission, Profile};
use crate::types::{ProfileId, permissions};

/// The built-in profile's id (fixed by the migration).
pub const BUILT_IN: Uuid = Uuid::from_u128(0x00000000_0000_4000_8000_000000000001);

/// Why a profile could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// An input is not acceptable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// Another profile has this name.
    #[error("a profile named {0} exists already")]
    Exists(String),
    /// The built-in profile is Gangway's own.
    #[error("the built-in profile cannot be changed or deleted")]
    BuiltIn,
    /// Invitations or tenants still use it.
    #[error(
        "profile {0} is in use by invitations or tenants; make another profile the default or leave it"
    )]
    InUse(String),
    /// No profile has this id.
    #[error("no such permission profile")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A checked query reading [`Profile`] rows from `permission_profiles p`; `$tail` (a string
/// literal) filters and orders.
macro_rules! select_profiles {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Profile,
            r#"select id as "id: crate::types::ProfileId", name::text as "name!", description,
                      delegated as "delegated: Json<Vec<Permission>>",
                      application as "application: Json<Vec<Permission>>", built_in, is_default
               from permission_profiles p "# + $tail
            $(, $arg)*
        )
    };
}

/// Writes the built-in profile's permissions from Gangway's own list (at every start, so a
/// new version's list takes effect).
pub async fn refresh_built_in(db: &PgPool) -> Result<(), sqlx::Error> {
    let delegated: Vec<Permission> = permissions::DIRECTORY_SYNC
        .iter()
        .chain([&permissions::USER_READ])
        .map(Permission::from)
        .collect();
    let application: Vec<Permission> = permissions::DIRECTORY_SYNC
        .iter()
        .chain([&permissions::ORGANIZATION_READ])
        .map(Permission::from)
        .collect();
    sqlx::query!(
        "update permission_profiles set delegated = $2, application = $3 where id = $1",
        BUILT_IN,
        Json(delegated) as _,
        Json(application) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Every profile, the default first, then by name.
pub async fn list(db: &PgPool) -> Result<Vec<Profile>, sqlx::Error> {
    select_profiles!("order by is_default desc, name")
        .fetch_all(db)
        .await
}

/// One profile.
pub async fn get(db: &PgPool, id: ProfileId) -> Result<Option<Profile>, sqlx::Error> {
    select_profiles!("where id = $1", id as ProfileId)
        .fetch_optional(db)
        .await
}

/// The profile used where none is named.
pub async fn default(db: &PgPool) -> Result<Profile, sqlx::Error> {
    select_profiles!("where is_default").fetch_one(db).await
}

/// The profiles that open invitations or connected tenants use (the doctor checks these).
pub async fn in_use(db: &PgPool) -> Result<Vec<Profile>, sqlx::Error> {
    select_profiles!(
        "where is_default
            or exists (select 1 from tenants t where t.permission_profile_id = p.id and t.status <> 'offboarded')
            or exists (select 1 from invitation_view i where i.permission_profile_id = p.id
                       and i.effective_status in ('pending', 'opened', 'declined', 'failed'))
         order by is_default desc, name"
    )
    .fetch_all(db)
    .await
}

/// A profile as typed: each permission one line, `Name | plain words | why`.
#[derive(Debug, Clone)]
pub struct NewProfile {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Delegated permissions.
    pub delegated: Vec<Permission>,
    /// Application permissions.
    pub application: Vec<Permission>,
}

impl NewProfile {
    /// Validates the typed form, naming the first problem.
    pub fn parse(
        name: &str,
        description: &str,
        delegated: &str,
        application: &str,
    ) -> Result<Self, ProfileError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(ProfileError::Invalid(
                "The name must be 1 to 80 characters.".into(),
            ));
        }
        let description = description.trim();
        if description.chars().count() > 500 {
            return Err(ProfileError::Invalid(
                "The description must be at most 500 characters.".into(),
            ));
        }
        let delegated = lines(delegated, "delegated")?;
        let application = lines(application, "application")?;
        if delegated.is_empty() && application.is_empty() {
            return Err(ProfileError::Invalid(
                "A profile needs at least one permission.".into(),
            ));
        }
        Ok(Self {
            name: name.into(),
            description: description.into(),
            delegated,
            application,
        })
    }
}

/// `Name | plain words | why` per line; the name must look like a Graph permission.
fn lines(text: &str, kind: &str) -> Result<Vec<Permission>, ProfileError> {
    let mut out: Vec<Permission> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, plain, why] = parts[..] else {
            return Err(ProfileError::Invalid(format!(
                "Line {} of the {kind} permissions must read `Permission | what it allows | why you need it`.",
                n + 1
            )));
        };
        let graph_name = name.split('.').count() >= 2
            && name.len() <= 100
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !graph_name {
            return Err(ProfileError::Invalid(format!(
                "`{name}` (line {} of the {kind} permissions) is not a Microsoft Graph permission such as User.Read.All.",
                n + 1
            )));
        }
        if plain.is_empty() || why.is_empty() || plain.len() > 200 || why.len() > 300 {
            return Err(ProfileError::Invalid(format!(
                "{name} needs what it allows and why, in a few words each (line {} of the {kind} permissions).",
                n + 1
            )));
        }
        if out.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(ProfileError::Invalid(format!(
                "{name} is listed twice in the {kind} permissions."
            )));
        }
        out.push(Permission {
            name: name.into(),
            plain: plain.into(),
            why: why.into(),
        });
    }
    Ok(out)
}

/// The lines [`NewProfile::parse`] reads, for a form showing `list`.
pub fn as_lines(list: &[Permission]) -> String {
    list.iter()
        .map(|p| format!("{} | {} | {}", p.name, p.plain, p.why))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Creates a profile; audited.
pub async fn create(db: &PgPool, new: &NewProfile, actor: &Actor) -> Result<Uuid, ProfileError> {
    let mut tx = db.begin().await?;
    let id = sqlx::query_scalar!(
        "insert into permission_profiles (name, description, delegated, application)
         values ($1, $2, $3, $4) on conflict (name) do nothing returning id",
        new.name.as_str() as &str,
        new.description,
        Json(&new.delegated) as _,
        Json(&new.application) as _,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| ProfileError::Exists(new.name.clone()))?;
    audit::record(
        &mut *tx,
        actor,
        Action::SettingsChanged,
        None,
        None,
        json!({ "profile": new.name, "change": "created", "delegated": names(&new.delegated), "application": names(&new.application) }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

fn names(list: &[Permission]) -> String {
    list.iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes `id` the default profile; audited.
pub async fn make_default(db: &PgPool, id: Uuid, actor: &Actor) -> Result<(), ProfileError> {
    let mut tx = db.begin().await?;
    let name = sqlx::query_scalar!(
        r#"select name::text as "name!" from permission_profiles where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or(ProfileError::NotFound)?;
    sqlx::query!(
        "update permission_profiles set is_default = false where is_default and id <> $1",
        id,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update permission_profiles set is_default = true where id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SettingsChanged,
        None,
        None,
        json!({ "profile": name, "change": "made the default" }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a profile nothing uses; audited.
pub async fn delete(db: &PgPool, id: Uuid, actor: &Actor) -> Result<(), ProfileError> {
    let mut tx = db.begin().await?;
    let profile = sqlx::query!(
        r#"select name::text as "name!", built_in, is_default from permission_profiles
           where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ProfileError::NotFound)?;
    let name = profile.name;
    if profile.built_in {
        return Err(ProfileError::BuiltIn);
    }
    let used = sqlx::query_scalar!(
        r#"select $2 or exists (select 1 from invitations where permission_profile_id = $1)
                     or exists (select 1 from tenants where permission_profile_id = $1) as "used!""#,
        id,
        profile.is_default,
    )
    .fetch_one(&mut *tx)
    .await?;
    if used {
        return Err(ProfileError::InUse(name));
    }
    sqlx::query!("delete from permission_profiles where id = $1", id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SettingsChanged,
        None,
        None,
        json!({ "profile": name, "change": "deleted" }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_profile_is_read_line_by_line_and_each_fault_named() {
        let p = NewProfile::parse(
            "AudioCodes set",
            "What Live Teams needs",
            "User.Read.All | Read all users | to list your users\n\nPresence.Read.All | Read presence | to show who is available",
            "User.Read.All | Read all users | to list your users",
        )
        .unwrap();
        assert_eq!(p.delegated.len(), 2);
        assert_eq!(p.delegated[1].name, "Presence.Read.All");
        let err = |d: &str| NewProfile::parse("x", "", d, "").unwrap_err().to_string();
        assert!(err("User.Read.All").contains("Permission | what it allows"));
        assert!(err("Read users | a | b").contains("not a Microsoft Graph permission"));
        assert!(err("User.Read.All |  | b").contains("needs what it allows"));
        assert!(err("User.Read.All | a | b\nuser.read.all | a | b").contains("twice"));
        assert!(err("").contains("at least one"));
        assert!(NewProfile::parse(" ", "", "User.Read.All | a | b", "").is_err());
        let round = as_lines(&p.delegated);
        assert_eq!(lines(&round, "delegated").unwrap(), p.delegated);
    }
}
