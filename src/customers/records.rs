//! Reading and writing customer records.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Customer, CustomerDetails, CustomerError, CustomerName, Listed};
use crate::audit::{self, Action, Actor};
use crate::db::ResultExt;
use crate::types::CustomerId;

/// The constraint that keeps names unique regardless of case.
const NAME_KEY: &str = "customers_name_key";

/// A checked query reading [`Customer`] rows: `$head`, the columns, then `$tail` (string
/// literals), e.g. `"select", "from customers …"` or `"insert … returning", ""`.
macro_rules! customers {
    ($head:tt, $tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Customer,
            $head + r#" id as "id: CustomerId", name as "name: String", contact, notes,
                        created_at, updated_at "# + $tail
            $(, $arg)*
        )
    };
}

/// The customer named `name` (compared regardless of case), created when there is none yet.
/// Runs inside the caller's transaction, so the invitation and its new customer commit together.
pub async fn find_or_create(
    tx: &mut PgConnection,
    name: &CustomerName,
    actor: &Actor,
) -> Result<CustomerId, sqlx::Error> {
    // `on conflict do nothing` returns no row when the name exists: then it is read back.
    let inserted = sqlx::query_scalar!(
        r#"insert into customers (name) values ($1) on conflict (name) do nothing
           returning id as "id: CustomerId""#,
        name.as_str() as &str,
    )
    .fetch_optional(&mut *tx)
    .await?;
    match inserted {
        Some(id) => {
            record(tx, actor, Action::CustomerCreated, id, name.as_str()).await?;
            Ok(id)
        }
        None => {
            sqlx::query_scalar!(
                r#"select id as "id: CustomerId" from customers where name = $1::citext"#,
                name.as_str() as &str,
            )
            .fetch_one(&mut *tx)
            .await
        }
    }
}

/// Creates a customer; a name already taken (in any case) is refused.
pub async fn create(
    db: &PgPool,
    details: &CustomerDetails,
    actor: &Actor,
) -> Result<Customer, CustomerError> {
    let mut tx = db.begin().await?;
    let created = customers!(
        "insert into customers (name, contact, notes) values ($1, $2, $3) returning",
        "",
        details.name.as_str() as &str,
        details.contact,
        details.notes,
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint(NAME_KEY, |_| name_taken(&details.name))?;
    record(
        &mut tx,
        actor,
        Action::CustomerCreated,
        created.id,
        &created.name,
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Changes a customer's name, contact and notes.
pub async fn update(
    db: &PgPool,
    id: CustomerId,
    details: &CustomerDetails,
    actor: &Actor,
) -> Result<Customer, CustomerError> {
    let mut tx = db.begin().await?;
    let updated = customers!(
        "update customers set name = $2, contact = $3, notes = $4 where id = $1 returning",
        "",
        id as CustomerId,
        details.name.as_str() as &str,
        details.contact,
        details.notes,
    )
    .fetch_optional(&mut *tx)
    .await
    .on_constraint(NAME_KEY, |_| name_taken(&details.name))?
    .ok_or(CustomerError::NotFound)?;
    record(&mut tx, actor, Action::CustomerUpdated, id, &updated.name).await?;
    tx.commit().await?;
    Ok(updated)
}

fn name_taken(name: &CustomerName) -> CustomerError {
    CustomerError::NameTaken(name.as_str().to_owned())
}

async fn record(
    tx: &mut PgConnection,
    actor: &Actor,
    action: Action,
    id: CustomerId,
    name: &str,
) -> Result<(), sqlx::Error> {
    audit::record(
        &mut *tx,
        actor,
        action,
        None,
        None,
        json!({ "customer": name, "customer_id": id }),
    )
    .await
}

/// A customer by id.
pub async fn get(db: &PgPool, id: CustomerId) -> Result<Customer, CustomerError> {
    customers!("select", "from customers where id = $1", id as CustomerId)
        .fetch_optional(db)
        .await?
        .ok_or(CustomerError::NotFound)
}

/// A checked query over `customers c` narrowed by a search (`$1`, a `contains_pattern`, in the
/// name or contact), given as `query!(head tokens)` then `$tail` and the arguments: the list
/// and its count share this one condition.
macro_rules! customers_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"where $1::text is null or c.name ilike $1 escape '\'
                           or c.contact ilike $1 escape '\' "
                + $tail
            $(, $arg)*
        )
    };
}

/// Customers by name, optionally narrowed by name or contact; with the total.
pub async fn list(
    db: &PgPool,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Listed>, i64), sqlx::Error> {
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(crate::db::contains_pattern);
    let rows = customers_matching!(
        sqlx::query!(
            r#"select c.id as "id: CustomerId", c.name as "name: String", c.contact, c.notes,
                      c.created_at, c.updated_at,
                      (select count(*) from invitations i where i.customer_id = c.id) as "invitations!",
                      (select count(*) from tenants t
                       where t.customer_id = c.id and t.status <> 'offboarded') as "connected_tenants!"
               from customers c "# +
        ),
        "order by c.name limit $2 offset $3",
        pattern,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| Listed {
        customer: Customer {
            id: r.id,
            name: r.name,
            contact: r.contact,
            notes: r.notes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        },
        invitations: r.invitations,
        connected_tenants: r.connected_tenants,
    })
    .collect();
    let total = customers_matching!(
        sqlx::query_scalar!(r#"select count(*) as "count!" from customers c "# +),
        "",
        pattern,
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// Customers by id after `after` (a cursor, for scripts).
pub async fn page_after(
    db: &PgPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Customer>, sqlx::Error> {
    customers!(
        "select",
        "from customers where ($1::uuid is null or id > $1) order by id limit $2",
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The names to offer when an operator picks a customer (at most `limit`, by name).
pub async fn names(db: &PgPool, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select name::text as "name!" from customers order by name limit $1"#,
        limit
    )
    .fetch_all(db)
    .await
}
