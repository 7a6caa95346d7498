//! A user's memberships: `memberOf` (direct) and `transitiveMemberOf` of `/me` and
//! `/users/{id}`, optionally cast to `microsoft.graph.directoryRole` or `microsoft.graph.group`
//! (Graph docs: user-list-memberof, user-list-transitivememberof).
//!
//! Each permission reads only its own kind of object: entries the caller may not read come
//! back with their `@odata.type` and `id` only, every other property `null` (Graph's "limited
//! information returned for inaccessible member objects").

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use super::entity::GROUPS;
use super::errors::GraphError;
use super::{require, serve};
use crate::directory::{Life, Tenant};
use crate::scopes::any_of;
use crate::state::{Access, AppState};

/// Direct or transitive memberships.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// `memberOf`.
    Direct,
    /// `transitiveMemberOf`.
    Transitive,
}

/// Permissions that read directory roles in full (directoryrole-list, directoryrole-get).
const ROLES_READ: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.ReadWrite.Directory",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Who may list the signed-in user's memberships (delegated only).
fn own(depth: Depth) -> &'static [&'static str] {
    match depth {
        Depth::Direct => &[
            "User.Read",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "GroupMember.Read.All",
        ],
        Depth::Transitive => &[
            "User.Read",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Group.Read.All",
            "GroupMember.Read.All",
            "User.Read.All",
        ],
    }
}

/// Who may list another user's memberships: (application, delegated).
fn others(depth: Depth) -> (&'static [&'static str], &'static [&'static str]) {
    match depth {
        Depth::Direct => (
            &["Directory.Read.All", "Directory.ReadWrite.All"],
            &[
                "User.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
                "GroupMember.Read.All",
            ],
        ),
        Depth::Transitive => {
            const BOTH: &[&str] = &[
                "User.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
                "Group.Read.All",
                "GroupMember.Read.All",
            ];
            (BOTH, BOTH)
        }
    }
}

/// What a cast segment keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cast {
    All,
    DirectoryRole,
    Group,
}

fn cast(segment: Option<&str>) -> Result<Cast, GraphError> {
    match segment {
        None => Ok(Cast::All),
        Some(s) if s.eq_ignore_ascii_case("microsoft.graph.directoryRole") => {
            Ok(Cast::DirectoryRole)
        }
        Some(s) if s.eq_ignore_ascii_case("microsoft.graph.group") => Ok(Cast::Group),
        Some(s) => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{s}'."),
        )),
    }
}

/// The memberships of `oid` that `access` may list, as Graph answers them.
fn memberships(st: &AppState, access: &Access, tenant: &Tenant, oid: Uuid, cast: Cast) -> Value {
    let mut value = Vec::new();
    if cast != Cast::Group {
        let full = any_of(&access.permissions, ROLES_READ);
        for role in tenant.roles_of(oid) {
            value.push(if full {
                json!({
                    "@odata.type": "#microsoft.graph.directoryRole",
                    "id": role.id,
                    "deletedDateTime": null,
                    "description": role.description,
                    "displayName": role.display_name,
                    "roleTemplateId": role.role_template_id,
                })
            } else {
                json!({
                    "@odata.type": "#microsoft.graph.directoryRole",
                    "id": role.id,
                    "deletedDateTime": null,
                    "description": null,
                    "displayName": null,
                    "roleTemplateId": null,
                })
            });
        }
    }
    if cast != Cast::DirectoryRole {
        let full = any_of(&access.permissions, GROUPS);
        // Groups hold users only here, so direct and transitive memberships are the same.
        for group in tenant
            .groups
            .iter()
            .filter(|g| g.life == Life::Active && g.members.contains(&oid))
        {
            value.push(if full {
                json!({
                    "@odata.type": "#microsoft.graph.group",
                    "id": group.id,
                    "displayName": group.display_name,
                    "description": group.description,
                    "mail": group.mail,
                    "mailEnabled": group.mail_enabled,
                    "securityEnabled": group.security_enabled,
                    "groupTypes": group.group_types,
                })
            } else {
                json!({
                    "@odata.type": "#microsoft.graph.group",
                    "id": group.id,
                    "displayName": null,
                    "description": null,
                    "mail": null,
                    "mailEnabled": null,
                    "securityEnabled": null,
                    "groupTypes": null,
                })
            });
        }
    }
    let set = match cast {
        Cast::All => "directoryObjects",
        Cast::DirectoryRole => "directoryRoles",
        Cast::Group => "groups",
    };
    json!({
        "@odata.context": format!("{}/v1.0/$metadata#{set}", st.cfg.base_url),
        "value": value,
    })
}

/// `/me/{memberOf|transitiveMemberOf}[/cast]`: delegated tokens only.
pub async fn of_me(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        let (depth, segment) = split(&rest)?;
        let Some(oid) = access.oid else {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            ));
        };
        require(access, &[], own(depth))?;
        Ok(memberships(&st, access, tenant, oid, cast(segment)?))
    })
}

/// `/users/{id}/{memberOf|transitiveMemberOf}[/cast]`; the signed-in user's own need only what
/// `/me` needs.
pub async fn of_user(
    State(st): State<AppState>,
    Path((id, rest)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        let (depth, segment) = split(&rest)?;
        let user = tenant
            .user(&id)
            .filter(|u| u.life == Life::Active)
            .ok_or_else(|| GraphError::not_found(&id))?;
        if access.oid == Some(user.id) {
            require(access, &[], own(depth))?;
        } else {
            let (app, delegated) = others(depth);
            require(access, app, delegated)?;
        }
        Ok(memberships(&st, access, tenant, user.id, cast(segment)?))
    })
}

/// `memberOf[/cast]` or `transitiveMemberOf[/cast]`.
fn split(rest: &str) -> Result<(Depth, Option<&str>), GraphError> {
    let (nav, segment) = match rest.split_once('/') {
        Some((nav, segment)) => (nav, Some(segment)),
        None => (rest, None),
    };
    let depth = match nav {
        "memberOf" => Depth::Direct,
        "transitiveMemberOf" => Depth::Transitive,
        other => {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{other}'."),
            ));
        }
    };
    Ok((depth, segment))
}
