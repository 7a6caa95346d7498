//! `users/delta` and `groups/delta`: change tracking by tenant version, `@removed`,
//! `members@delta` (a large group repeated across pages, a slice of members each time; members
//! of every kind), `$deltatoken=latest`, `Prefer: return=minimal`, 400 `syncStateNotFound` for
//! expired delta links and 410 Gone `resyncRequired` for reset ones.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::entity::Entity;
use super::errors::GraphError;
use super::query;
use crate::directory::{Group, Life, Tenant, User};
use crate::state::AppState;

/// Where a delta round stands; carried opaquely in `$skiptoken` / `$deltatoken`.
#[derive(Serialize, Deserialize)]
struct Cursor {
    /// Tenant the link belongs to.
    tid: Uuid,
    /// Tenant epoch when minted; a delta-reset makes older links 410.
    epoch: u64,
    /// Report changes with a version above this (0: initial full round).
    since: u64,
    /// Tenant version when the round started; becomes `since` of the next round.
    snap: u64,
    /// Position in the object list to continue from.
    pos: usize,
    /// The `members@delta` slice of the object at `pos` to continue from.
    #[serde(default)]
    slice: usize,
    /// `$select` of the first request, kept for the whole chain as Graph does.
    sel: Option<Vec<String>>,
    /// When the round's delta link was minted (unix seconds).
    iat: i64,
}

/// Per-kind delta rendering (groups add `members@delta`).
pub trait DeltaItem: Entity {
    /// Object id, for `@removed` entries.
    fn id(&self) -> Uuid;
    /// Every `members@delta` entry of a changed object (none but for groups).
    fn member_changes(&self, _since: u64, _sel: Option<&[String]>) -> Vec<Value> {
        Vec::new()
    }
}

impl DeltaItem for User {
    fn id(&self) -> Uuid {
        self.id
    }
}

impl DeltaItem for Group {
    fn id(&self) -> Uuid {
        self.id
    }

    fn member_changes(&self, since: u64, sel: Option<&[String]>) -> Vec<Value> {
        if sel.is_some_and(|s| !s.iter().any(|p| p == "members")) {
            return Vec::new();
        }
        let member = |id: Uuid| json!({"@odata.type": self.member_type(id), "id": id});
        if since == 0 {
            self.members.iter().map(|id| member(*id)).collect()
        } else {
            // Last change per member wins, so an add-then-remove reports a removal.
            let mut last: BTreeMap<Uuid, bool> = BTreeMap::new();
            for (v, id, added) in &self.member_log {
                if *v > since {
                    last.insert(*id, *added);
                }
            }
            last.into_iter()
                .map(|(id, added)| {
                    let mut m = member(id);
                    if !added {
                        m["@removed"] = json!({"reason": "deleted"});
                    }
                    m
                })
                .collect()
        }
    }
}

/// The preference that asks for only the changed properties of updated objects.
const MINIMAL: &str = "return=minimal";

/// GET /v1.0/users/delta and /v1.0/groups/delta (and their function-call forms).
pub async fn round<E: DeltaItem>(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let minimal = query::preferences(&headers).any(|p| p.eq_ignore_ascii_case(MINIMAL));
    let mut resp = super::serve(&st, &headers, |access, tenant| {
        super::require(access, E::APP, E::DELEGATED)?;
        let opts = query::query_options(raw);
        for unsupported in ["$top", "$orderby", "$search", "$filter"] {
            if opts.contains_key(unsupported) {
                return Err(GraphError::bad_query(format!(
                    "The query option '{unsupported}' is not supported with delta queries."
                )));
            }
        }
        let fresh = |sel: Option<Vec<String>>| Cursor {
            tid: tenant.id,
            epoch: tenant.epoch,
            since: 0,
            snap: tenant.version,
            pos: 0,
            slice: 0,
            sel,
            iat: now(),
        };
        let cursor = match (opts.get("$skiptoken"), opts.get("$deltatoken")) {
            (Some(t), _) => check(&st, tenant, E::SET, t)?,
            (None, Some(t)) if t == "latest" => {
                let sel = select::<E>(tenant, &opts)?;
                let latest = Cursor {
                    since: tenant.version,
                    ..fresh(sel)
                };
                return Ok(json!({
                    "@odata.context": query::context(&st.cfg.base_url, E::SET, latest.sel.as_deref()),
                    "@odata.deltaLink": link(&st, E::SET, "$deltatoken", &latest),
                    "value": [],
                }));
            }
            (None, Some(t)) => {
                let c = check(&st, tenant, E::SET, t)?;
                Cursor {
                    snap: tenant.version,
                    pos: 0,
                    slice: 0,
                    ..c
                }
            }
            (None, None) => fresh(select::<E>(tenant, &opts)?),
        };
        let size = query::page_size(&st, &Default::default(), &headers)?;
        Ok(page::<E>(&st, tenant, cursor, size, minimal))
    });
    if minimal && resp.status().is_success() {
        resp.headers_mut().insert(
            "preference-applied",
            header::HeaderValue::from_static(MINIMAL),
        );
    }
    resp
}

fn select<E: DeltaItem>(
    tenant: &Tenant,
    opts: &query::QueryOptions,
) -> Result<Option<Vec<String>>, GraphError> {
    let sample = E::all(tenant).first().map(|e| e.json()).unwrap_or_default();
    query::parse_select::<E>(&sample, opts, &["members"])
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Decodes a link's token; 410 with a fresh-start `Location` when reset, 400 when expired.
fn check(st: &AppState, tenant: &Tenant, set: &str, token: &str) -> Result<Cursor, GraphError> {
    let c: Cursor = query::decode_cursor(token)
        .filter(|c: &Cursor| c.tid == tenant.id)
        .ok_or_else(|| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "Invalid delta or skip token.",
            )
        })?;
    let mut restart = format!("{}/v1.0/{set}/delta", st.cfg.base_url);
    if let Some(sel) = &c.sel {
        let sel: Vec<&str> = sel
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "id")
            .collect();
        if !sel.is_empty() {
            restart.push_str(&format!("?$select={}", sel.join(",")));
        }
    }
    if c.epoch != tenant.epoch {
        return Err(GraphError::new(
            StatusCode::GONE,
            "resyncRequired",
            "Resync required. Replace any local items with the server's versions (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.",
        )
        .with_header(header::LOCATION, restart));
    }
    if now() - c.iat > st.cfg.delta_ttl.as_secs() as i64 {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "syncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
        ));
    }
    Ok(c)
}

fn link(st: &AppState, set: &str, param: &str, c: &Cursor) -> String {
    format!(
        "{}/v1.0/{set}/delta?{param}={}",
        st.cfg.base_url,
        query::encode_cursor(c)
    )
}

/// One page of a round from the cursor's position; `minimal` leaves out the unchanged properties
/// of objects that existed before the round's starting point. A group with more member changes
/// than a slice holds fills the page with one slice and comes again on the next page, with the
/// same properties and the next slice, as Graph pages through a large group.
fn page<E: DeltaItem>(
    st: &AppState,
    tenant: &Tenant,
    mut c: Cursor,
    size: usize,
    minimal: bool,
) -> Value {
    let items = E::all(tenant);
    let per_slice = st.graph.members_per_slice();
    let mut value = Vec::new();
    let mut pos = c.pos;
    let mut slice = c.slice;
    while pos < items.len() && value.len() < size {
        let item = &items[pos];
        let changed = item.version() > c.since;
        let mut more_slices = false;
        let rendered = match item.life() {
            Life::Active if changed => {
                let mut all = item.json();
                let changes = item.changes();
                if minimal && changes.created <= c.since {
                    all.retain(|k, _| k == "id" || changes.changed_since(k, c.since));
                }
                let mut v = query::project::<E>(all, c.sel.as_deref());
                let members = item.member_changes(c.since, c.sel.as_deref());
                let from = slice * per_slice;
                if from < members.len() {
                    let to = (from + per_slice).min(members.len());
                    v["members@delta"] = json!(members[from..to]);
                    more_slices = to < members.len();
                }
                v
            }
            // Deletions matter only to a client that saw the object before.
            Life::SoftDeleted if changed && c.since > 0 => {
                json!({"id": item.id(), "@removed": {"reason": "changed"}})
            }
            Life::HardDeleted if changed && c.since > 0 => {
                json!({"id": item.id(), "@removed": {"reason": "deleted"}})
            }
            _ => {
                pos += 1;
                continue;
            }
        };
        value.push(rendered);
        if more_slices {
            // This group fills the response; its next slice opens the next page.
            slice += 1;
            break;
        }
        pos += 1;
        slice = 0;
    }
    let mut out = json!({
        "@odata.context": query::context(&st.cfg.base_url, E::SET, c.sel.as_deref()),
        "value": value,
    });
    if pos < items.len() {
        c.pos = pos;
        c.slice = slice;
        out["@odata.nextLink"] = json!(link(st, E::SET, "$skiptoken", &c));
    } else {
        let next = Cursor {
            since: c.snap,
            pos: 0,
            slice: 0,
            iat: now(),
            ..c
        };
        out["@odata.deltaLink"] = json!(link(st, E::SET, "$deltatoken", &next));
    }
    out
}
