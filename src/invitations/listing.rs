//! Finding invitations: the console's and the CLI's lists.

use sqlx::PgPool;
use uuid::Uuid;

use super::types::select_invitations;
use super::{Invitation, InvitationError, InvitationStatus};
use crate::types::CustomerId;

/// A filter for listing invitations.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A status; `declined` and `failed` also find open invitations whose last outcome it was.
    pub status: Option<InvitationStatus>,
    /// Text in the customer's name, the admin's email or the tenant domain.
    pub search: Option<String>,
    /// Only this customer's invitations.
    pub customer_id: Option<CustomerId>,
    /// At most this many rows.
    pub limit: i64,
    /// Rows skipped first.
    pub offset: i64,
}

/// A checked query over `invitation_view` narrowed by a [`Filter`] (`$1` status, `$2` search
/// pattern, `$3` customer), given as `query!(head tokens)` then `$tail` and the arguments: the
/// list and its count share this one condition. The customer's name is searched by id (one
/// look at `customers` a query) so that the count, reading nothing else of the customer, has
/// no join.
macro_rules! invitations_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"where ($1::text is null or effective_status = $1
                              or (last_outcome = $1 and effective_status in ('pending', 'opened')))
                         and ($2::text is null or admin_email ilike $2 escape '\'
                              or tenant_domain ilike $2 escape '\'
                              or customer_id in (select id from customers where name ilike $2 escape '\'))
                         and ($3::uuid is null or customer_id = $3) "
                + $tail
            $(, $arg)*
        )
    };
}

/// Invitations matching `filter`, open ones first, then newest first; with the total count.
///
/// The open ones and the rest are read apart, each newest first along an index on
/// `created_at` and only as far as the page reaches: the one ordering over both had to work
/// out every invitation's status (`now()` decides which are expired) and sort them all, 24 ms
/// a page over 20,000. One transaction, so one `now()` decides for the count and both reads.
pub async fn list(db: &PgPool, filter: &Filter) -> Result<(Vec<Invitation>, i64), InvitationError> {
    let status = filter.status.map(InvitationStatus::as_str);
    let pattern = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(crate::db::contains_pattern);
    let customer = filter.customer_id;
    let mut tx = db.begin().await?;
    let counts = invitations_matching!(
        sqlx::query!(
            r#"select count(*) filter (where status in ('pending', 'opened', 'declined', 'failed')
                                        and expires_at > now()) as "open!",
                      count(*) as "total!"
               from invitation_view "# +
        ),
        "",
        status,
        pattern,
        customer as Option<CustomerId>,
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut rows = if filter.offset < counts.open {
        invitations_matching!(
            select_invitations!(),
            "and status in ('pending', 'opened', 'declined', 'failed') and expires_at > now()
             order by created_at desc limit $4 offset $5",
            status,
            pattern,
            customer as Option<CustomerId>,
            filter.limit,
            filter.offset,
        )
        .fetch_all(&mut *tx)
        .await?
    } else {
        Vec::new()
    };
    let wanted = filter.limit - rows.len() as i64;
    if wanted > 0 && counts.total > counts.open {
        rows.extend(
            invitations_matching!(
                select_invitations!(),
                "and not (status in ('pending', 'opened', 'declined', 'failed') and expires_at > now())
                 order by created_at desc limit $4 offset $5",
                status,
                pattern,
                customer as Option<CustomerId>,
                wanted,
                (filter.offset - counts.open).max(0),
            )
            .fetch_all(&mut *tx)
            .await?,
        );
    }
    tx.commit().await?;
    Ok((rows, counts.total))
}

/// Invitations by id after `after` (a cursor, for scripts), optionally in `status` only.
pub async fn page_after(
    db: &PgPool,
    status: Option<InvitationStatus>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Invitation>, InvitationError> {
    Ok(select_invitations!(
        "where ($1::text is null or effective_status = $1) and ($2::uuid is null or id > $2)
         order by id limit $3",
        status.map(InvitationStatus::as_str),
        after,
        limit,
    )
    .fetch_all(db)
    .await?)
}
