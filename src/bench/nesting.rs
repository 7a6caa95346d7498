//! `gangway bench nesting`: how fast the copy answers "transitive members of a group" and
//! "all groups of a user" ([`crate::directory::nesting`]). A scratch database (created,
//! migrated, dropped) holds one tenant of N users and G groups as trees D levels deep, each
//! group holding five of the level below (781 groups a tree at depth 5), and every user in one
//! bottom-level group and one group drawn from all. Each question is asked Q times, one after
//! another, of the top groups in turn or of different users; the report gives p50 and p95.

use std::time::Instant;

use anyhow::bail;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Machine, machine, round};
use crate::directory::nesting;

/// Members on the first page of transitive members, as the API gives it by default.
const PAGE: i64 = 100;

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct NestingBenchParams {
    /// Users in the tenant's copy.
    pub users: usize,
    /// Groups, as trees of `depth` levels.
    pub groups: usize,
    /// Levels in each tree (1: no group holds another).
    pub depth: usize,
    /// Questions of each kind asked.
    pub queries: usize,
}

impl Default for NestingBenchParams {
    /// The issue's shape: 100k users, 5k groups in 5 levels, 20 questions of each kind.
    fn default() -> Self {
        Self {
            users: 100_000,
            groups: 5_000,
            depth: 5,
            queries: 20,
        }
    }
}

impl NestingBenchParams {
    /// The first contradiction between the parameters, if any.
    pub fn problem(&self) -> Option<String> {
        if self.users == 0 || self.groups == 0 || self.depth == 0 || self.queries == 0 {
            return Some("--users, --groups, --depth and --queries must be at least 1".into());
        }
        if self.depth > 8 || (self.groups as i64) < tree(self.depth).0 {
            return Some(
                "--depth must be at most 8 and --groups hold at least one full tree (5 groups per group, 781 at depth 5)"
                    .into(),
            );
        }
        None
    }
}

/// The time one kind of question took.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// Mean rows (or count) per answer: how much each walk found.
    pub mean_found: f64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct NestingBenchReport {
    /// Where.
    pub machine: Machine,
    /// What.
    pub params: NestingBenchParams,
    /// Memberships in the copy (users in groups and groups in groups).
    pub memberships: i64,
    /// The first page (100) of a top-level group's transitive members.
    pub transitive_members_page: Answer,
    /// How many transitive members a top-level group has.
    pub transitive_members_count: Answer,
    /// All groups of a user, through nesting (one page of up to 100).
    pub user_groups: Answer,
}

/// Runs the benchmark against a scratch database on the Postgres server `server_url` points
/// at; the database is dropped at the end, whatever happened (Ctrl-C included).
pub async fn run_nesting_bench(
    params: NestingBenchParams,
    server_url: &str,
) -> anyhow::Result<NestingBenchReport> {
    if let Some(problem) = params.problem() {
        bail!(problem);
    }
    super::on_scratch_database(server_url, "gangway_bench_nesting", |db, _| {
        measure(params, db)
    })
    .await
}

async fn measure(params: NestingBenchParams, db: PgPool) -> anyhow::Result<NestingBenchReport> {
    let tenant = super::api::seed(&db, params.users).await?;
    let (memberships, full_tops) = seed_groups(&db, tenant, &params).await?;
    // Each top group asked about in turn, as often as it takes to ask `queries` times.
    let tops: Vec<Uuid> = full_tops
        .iter()
        .copied()
        .cycle()
        .take(params.queries)
        .collect();
    let users: Vec<Uuid> = sqlx::query_scalar!(
        "select object_id from directory_users where tenant_id = $1
         order by object_id limit $2",
        tenant,
        params.queries as i64,
    )
    .fetch_all(&db)
    .await?;
    let page = time(&tops, |g| {
        let db = db.clone();
        async move {
            let rows = nesting::transitive_members(&db, tenant, g, None, PAGE).await?;
            Ok(rows.len() as f64)
        }
    })
    .await?;
    let count = time(&tops, |g| {
        let db = db.clone();
        async move { Ok(nesting::transitive_member_count(&db, tenant, g).await? as f64) }
    })
    .await?;
    let user_groups = time(&users, |u| {
        let db = db.clone();
        async move {
            let rows = nesting::groups_of(&db, tenant, u, true, None, PAGE).await?;
            Ok(rows.len() as f64)
        }
    })
    .await?;
    Ok(NestingBenchReport {
        machine: machine(),
        params,
        memberships,
        transitive_members_page: page,
        transitive_members_count: count,
        user_groups,
    })
}

/// Groups a group holds directly in the seeded trees.
const FAN_OUT: i64 = 5;

/// Groups in one full tree of `depth` levels, and the position of its first bottom group.
fn tree(depth: usize) -> (i64, i64) {
    let bottom = FAN_OUT.pow(depth as u32 - 1);
    (
        (bottom * FAN_OUT - 1) / (FAN_OUT - 1),
        (bottom - 1) / (FAN_OUT - 1),
    )
}

/// `groups` groups as trees of `depth` levels, five members per group (heap order: group
/// `p` of a tree holds `5p + 1 ..= 5p + 5`; the last tree may be partial); every user in a
/// bottom-level group of a full tree and in one group drawn from all. Returns the memberships
/// made and the top groups of the full trees.
async fn seed_groups(
    db: &PgPool,
    tenant: Uuid,
    p: &NestingBenchParams,
) -> anyhow::Result<(i64, Vec<Uuid>)> {
    let (size, first_bottom) = tree(p.depth);
    let (groups, full_trees) = (p.groups as i64, p.groups as i64 / size);
    let mut tx = db.begin().await?;
    // Group n is position n % size of tree n / size; its id is derived from n so memberships
    // can name it.
    sqlx::query!(
        "insert into directory_groups (tenant_id, object_id, display_name, security_enabled, seen_round)
         select $1::uuid, md5($1::uuid::text || n)::uuid,
                format('Tree %s group %s', n / $2::bigint, lpad((n % $2::bigint)::text, 6, '0')),
                true, 1
         from generate_series(0, $3::bigint - 1) n",
        tenant,
        size,
        groups,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into directory_group_members (tenant_id, group_id, member_id, member_type, seen_round)
         select $1::uuid,
                md5($1::uuid::text || (n / $2::bigint * $2::bigint + (n % $2::bigint - 1) / $4::bigint))::uuid,
                md5($1::uuid::text || n)::uuid, 'group', 1
         from generate_series(0, $3::bigint - 1) n
         where n % $2::bigint > 0",
        tenant,
        size,
        groups,
        FAN_OUT,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into directory_group_members (tenant_id, group_id, member_id, member_type, seen_round)
         select distinct $1::uuid, md5($1::uuid::text || g)::uuid, u.object_id, 'user', 1
         from (select object_id, row_number() over (order by object_id) as r
               from directory_users where tenant_id = $1) u,
              lateral (values (u.r % $5::bigint * $2::bigint + $4::bigint
                                 + (u.r / $5::bigint) % ($2::bigint - $4::bigint)),
                              ((u.r * 7919) % $3::bigint)) as pick(g)",
        tenant,
        size,
        groups,
        first_bottom,
        full_trees,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query!("analyze directory_groups").execute(db).await?;
    sqlx::query!("analyze directory_group_members")
        .execute(db)
        .await?;
    let memberships = sqlx::query_scalar!(
        r#"select count(*) as "count!" from directory_group_members where tenant_id = $1"#,
        tenant
    )
    .fetch_one(db)
    .await?;
    let tops = sqlx::query_scalar!(
        r#"select md5($1::uuid::text || t * $2::bigint)::uuid as "id!"
           from generate_series(0, $3::bigint - 1) t"#,
        tenant,
        size,
        full_trees,
    )
    .fetch_all(db)
    .await?;
    Ok((memberships, tops))
}

/// Asks `ask` for each of `of` in turn (once first, unmeasured, to warm the cache).
async fn time<F, Fut>(of: &[Uuid], ask: F) -> anyhow::Result<Answer>
where
    F: Fn(Uuid) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    if let Some(first) = of.first() {
        ask(*first).await?;
    }
    let (mut ms, mut found) = (Vec::with_capacity(of.len()), 0.0);
    for id in of {
        let start = Instant::now();
        found += ask(*id).await?;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Ok(Answer {
        p50_ms: round(at(0.5), 2),
        p95_ms: round(at(0.95), 2),
        mean_found: round(found / of.len().max(1) as f64, 1),
    })
}
