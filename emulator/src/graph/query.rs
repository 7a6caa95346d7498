//! OData query options as Graph reads them: `$select`, `$top` / `Prefer: odata.maxpagesize`,
//! `$filter` on equality, opaque paging cursors and `@odata.context`.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::entity::Entity;
use super::errors::GraphError;
use crate::state::AppState;

/// Query options keyed by name (`$select`, `$top`, …).
pub type QueryOptions = HashMap<String, String>;

/// Parses the raw query string.
pub fn query_options(raw: Option<String>) -> QueryOptions {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Validates `$select` against the entity's properties; returns canonical names.
pub fn parse_select<E: Entity>(
    sample: &Map<String, Value>,
    opts: &QueryOptions,
    extra: &[&str],
) -> Result<Option<Vec<String>>, GraphError> {
    select_of(E::TYPE, sample, opts, extra)
}

/// Validates `$select` against the properties of `sample`, an object of Graph type `type_name`.
pub fn select_of(
    type_name: &str,
    sample: &Map<String, Value>,
    opts: &QueryOptions,
    extra: &[&str],
) -> Result<Option<Vec<String>>, GraphError> {
    let Some(raw) = opts.get("$select") else {
        return Ok(None);
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            sample
                .keys()
                .map(String::as_str)
                .chain(extra.iter().copied())
                .find(|k| k.eq_ignore_ascii_case(s))
                .map(str::to_string)
                .ok_or_else(|| {
                    GraphError::new(
                        StatusCode::BAD_REQUEST,
                        "Request_BadRequest",
                        format!("Could not find a property named '{s}' on type '{type_name}'."),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Keeps the selected (or default) properties; `id` always stays.
pub fn project<E: Entity>(all: Map<String, Value>, select: Option<&[String]>) -> Value {
    let keep = |k: &str| match select {
        Some(sel) => k == "id" || sel.iter().any(|s| s == k),
        None => E::DEFAULTS.is_none_or(|d| d.contains(&k)),
    };
    Value::Object(all.into_iter().filter(|(k, _)| keep(k)).collect())
}

/// Page size from `$top` (1..=999) or `Prefer: odata.maxpagesize`, else the default.
pub fn page_size(
    st: &AppState,
    opts: &QueryOptions,
    headers: &HeaderMap,
) -> Result<usize, GraphError> {
    if let Some(top) = opts.get("$top") {
        return match top.parse::<usize>() {
            Ok(n @ 1..=999) => Ok(n),
            _ => Err(GraphError::bad_query(format!(
                "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
            ))),
        };
    }
    let preferred = preferences(headers)
        .find_map(|p| p.strip_prefix("odata.maxpagesize=")?.parse::<usize>().ok());
    Ok(preferred.unwrap_or(st.graph.page_size()).clamp(1, 999))
}

/// The preferences of every `Prefer` header (`odata.maxpagesize=200`, `return=minimal`, …).
pub fn preferences(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Opaque paging cursor.
pub fn encode_cursor(v: &impl serde::Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

/// Reverses [`encode_cursor`].
pub fn decode_cursor<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}

/// `@odata.context` for an entity set, with the selection as Graph writes it.
pub fn context(base: &str, set: &str, select: Option<&[String]>) -> String {
    match select {
        Some(sel) => format!("{base}/v1.0/$metadata#{set}({})", sel.join(",")),
        None => format!("{base}/v1.0/$metadata#{set}"),
    }
}

/// A `$filter` of the form `property eq 'value'`.
pub struct EqFilter {
    property: String,
    value: String,
}

/// Parses `$filter=property eq 'value'` against the properties of `sample`.
pub fn parse_filter(sample: &Map<String, Value>, raw: &str) -> Result<EqFilter, GraphError> {
    let unsupported = || {
        GraphError::bad_query(format!(
            "Unsupported or invalid query filter clause specified: '{raw}'. The emulator supports 'property eq 'value''."
        ))
    };
    let (prop, rest) = raw.trim().split_once(" eq ").ok_or_else(unsupported)?;
    let rest = rest.trim();
    let value = rest
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .ok_or_else(unsupported)?;
    let property = sample
        .keys()
        .find(|k| k.eq_ignore_ascii_case(prop.trim()))
        .ok_or_else(unsupported)?
        .clone();
    Ok(EqFilter {
        property,
        value: value.replace("''", "'"),
    })
}

/// Whether `obj` passes the filter (strings compare case-insensitively, as Graph does).
pub fn filter_matches(obj: &Map<String, Value>, f: &EqFilter) -> bool {
    match obj.get(&f.property) {
        Some(Value::String(s)) => s.eq_ignore_ascii_case(&f.value),
        Some(Value::Bool(b)) => b.to_string() == f.value,
        _ => false,
    }
}
