//! `/api/v1/customers`: the customer records invitations and tenants belong to.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Reader;
use super::problem::{ApiError, ApiQuery, CommonProblems, NotFoundProblem};
use super::tenants::Paging;
use super::{Page, cursor_uuid, limit, rfc3339};
use crate::customers::{self, Customer, CustomerError};
use crate::web::AppState;

/// A customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerOut {
    /// Its id.
    pub id: Uuid,
    /// Its name (unique whatever the case).
    pub name: String,
    /// Who to talk to.
    pub contact: Option<String>,
    /// Operators' notes.
    pub notes: Option<String>,
    /// When it was created.
    pub created_at: String,
}

impl From<Customer> for CustomerOut {
    fn from(c: Customer) -> Self {
        Self {
            id: c.id.into(),
            name: c.name,
            contact: c.contact,
            notes: c.notes,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// Lists customers by id.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<CustomerOut>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Page<CustomerOut>, ApiError> {
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = customers::page_after(&state.db, after, limit).await?;
    Ok(Page::new(rows, limit, |c| c.id.to_string()))
}

/// One customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    params(("id" = Uuid, Path, description = "the customer's id")),
    security(("api_token" = [])),
    responses((status = 200, body = CustomerOut), CommonProblems, NotFoundProblem))]
pub async fn get(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<CustomerOut>, ApiError> {
    let not_found = || ApiError::NotFound("no such customer".into());
    let id = id.parse().map_err(|_| not_found())?;
    match customers::get(&state.db, id).await {
        Ok(c) => Ok(Json(c.into())),
        Err(CustomerError::NotFound) => Err(not_found()),
        Err(CustomerError::Db(e)) => Err(e.into()),
        Err(other) => Err(ApiError::Internal(anyhow::anyhow!("{other}"))),
    }
}
