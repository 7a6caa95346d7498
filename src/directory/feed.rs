//! The directory copy and the sync runs for scripts: pages in a stable order, each going on
//! after the last item of the one before (a cursor), so rows added meanwhile neither repeat nor
//! get skipped. Every query is scoped by the tenant, and shows only what is in its sync scope.

use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::views::{
    DirectoryGroup, GROUP_COLUMNS, GroupMember, SyncRun, search_terms, select_runs,
};

/// A page's query, `… where {tenant} = $1`, with only the filters asked (built at run time, so
/// not checked at compile time): each form is planned
/// as the keyset scan it is, on the primary key from the cursor on. (One text for every form,
/// `$2 is null or object_id > $2`, lets Postgres's generic plan read the tenant from its first
/// row to the cursor on every page.)
struct Page(QueryBuilder<'static, Postgres>);

impl Page {
    fn new(select: &str, tenant: &str, tenant_id: Uuid) -> Self {
        let mut q = QueryBuilder::new(format!("{select} where {tenant} = "));
        q.push_bind(tenant_id);
        Self(q)
    }

    /// Rows for which `condition` (without arguments) holds.
    fn only(&mut self, condition: &str) -> &mut Self {
        self.0.push(format_args!(" and {condition}"));
        self
    }

    fn and(
        &mut self,
        condition: &str,
        value: Option<impl sqlx::Encode<'static, Postgres> + sqlx::Type<Postgres> + Send + 'static>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.0.push(format_args!(" and {condition} "));
            self.0.push_bind(value);
        }
        self
    }

    /// Rows with a `columns` containing `search`, or whose `id` it is.
    fn search(&mut self, columns: &[&str], id: &str, search: Option<&str>) -> &mut Self {
        let (Some(pattern), object_id) = search_terms(search) else {
            return self;
        };
        let mut separator = " and (";
        for column in columns {
            self.0.push(format_args!("{separator}{column} ilike "));
            self.0.push_bind(pattern.clone());
            self.0.push(" escape '\\'");
            separator = " or ";
        }
        if let Some(object_id) = object_id {
            self.0.push(format_args!(" or {id} = "));
            self.0.push_bind(object_id);
        }
        self.0.push(")");
        self
    }

    fn ordered(&mut self, key: &str, limit: i64) -> &mut QueryBuilder<'static, Postgres> {
        self.0.push(format_args!(" order by {key} limit "));
        self.0.push_bind(limit);
        &mut self.0
    }
}

/// A user's fields as the directory API shows them, in [`DirectoryUser`](super::views::DirectoryUser)'s
/// order, for `json_build_object`/`jsonb_build_object` over `directory_users {alias}`: the one
/// list the API's pages and the event log's user events share, so they cannot drift apart.
pub(super) fn user_fields(alias: &str) -> String {
    format!(
        "'object_id', {alias}.object_id, 'user_principal_name', {alias}.user_principal_name,
         'display_name', {alias}.display_name, 'given_name', {alias}.given_name,
         'surname', {alias}.surname, 'mail', {alias}.mail, 'business_phones', {alias}.business_phones,
         'mobile_phone', {alias}.mobile_phone, 'job_title', {alias}.job_title,
         'department', {alias}.department, 'account_enabled', {alias}.account_enabled,
         'soft_deleted_at', rfc3339_utc({alias}.soft_deleted_at),
         'last_seen_at', rfc3339_utc({alias}.last_seen_at),
         'updated_at', rfc3339_utc({alias}.updated_at)"
    )
}

/// A page of users as the JSON API gives it, built by Postgres: how many there are, the last
/// one's id, and the items as one JSON array (the fields of
/// [`DirectoryUser`](super::views::DirectoryUser), in its order,
/// times as its serde writes them), so the page is never decoded into Rust values and encoded
/// again.
#[derive(Debug, sqlx::FromRow)]
pub struct UsersJson {
    /// Users on the page.
    pub count: i64,
    /// The last one's object id (the next cursor when the page is full).
    pub last: Option<Uuid>,
    /// `[{"object_id": …, …}, …]`.
    pub items: String,
}

/// The tenant's users by object id after `after`, optionally only those changed since
/// `updated_since` or matching `search` (name, UPN, mail or object id).
pub async fn users(
    db: &PgPool,
    tenant_id: Uuid,
    after: Option<Uuid>,
    updated_since: Option<OffsetDateTime>,
    search: Option<&str>,
    limit: i64,
) -> Result<UsersJson, sqlx::Error> {
    let mut page = Page::new(
        &format!("select count(*) as count, (array_agg(u.object_id order by u.object_id desc))[1] as last,
                coalesce(json_agg(json_build_object({USER_FIELDS}) order by u.object_id), '[]')::text as items
         from (select * from directory_users", USER_FIELDS = user_fields("u")),
        "tenant_id",
        tenant_id,
    );
    page.only("in_scope")
        .and("object_id >", after)
        .and("updated_at >=", updated_since)
        .search(
            &["display_name", "user_principal_name", "mail"],
            "object_id",
            search,
        )
        .ordered("object_id", limit)
        .push(") u")
        .build_query_as()
        .fetch_one(db)
        .await
}

/// The tenant's groups by object id after `after`, optionally only those changed since
/// `updated_since` or matching `search`.
pub async fn groups(
    db: &PgPool,
    tenant_id: Uuid,
    after: Option<Uuid>,
    updated_since: Option<OffsetDateTime>,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<DirectoryGroup>, sqlx::Error> {
    Page::new(
        &format!("select {GROUP_COLUMNS} from directory_groups g"),
        "g.tenant_id",
        tenant_id,
    )
    .only("g.in_scope")
    .and("g.object_id >", after)
    .and("g.updated_at >=", updated_since)
    .search(
        &["g.display_name", "g.mail", "g.description"],
        "g.object_id",
        search,
    )
    .ordered("g.object_id", limit)
    .build_query_as()
    .fetch_all(db)
    .await
}

/// A group's members by member id after `after`.
pub async fn members(
    db: &PgPool,
    tenant_id: Uuid,
    group_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<GroupMember>, sqlx::Error> {
    Page::new(
        "select m.member_id, m.member_type,
                (u.object_id is not null or g.object_id is not null) as in_copy,
                coalesce(u.display_name, g.display_name) as display_name,
                u.user_principal_name, coalesce(u.mail, g.mail) as mail,
                coalesce(u.soft_deleted_at, g.soft_deleted_at) is not null as soft_deleted
         from directory_group_members m
         left join directory_users u on u.tenant_id = m.tenant_id and u.object_id = m.member_id
         left join directory_groups g on g.tenant_id = m.tenant_id and g.object_id = m.member_id",
        "m.tenant_id",
        tenant_id,
    )
    .only("coalesce(u.in_scope, g.in_scope, true)")
    .and("m.group_id =", Some(group_id))
    .and("m.member_id >", after)
    .ordered("m.member_id", limit)
    .build_query_as()
    .fetch_all(db)
    .await
}

/// The tenant's runs, newest first, older than run `before`.
pub async fn runs(
    db: &PgPool,
    tenant_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SyncRun>, sqlx::Error> {
    select_runs!(
        "where tenant_id = $1 and ($2::bigint is null or id < $2) order by id desc limit $3",
        tenant_id,
        before,
        limit,
    )
    .fetch_all(db)
    .await
}
