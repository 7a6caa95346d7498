//! The job queue: leases committed before the work, takeover of a dead worker's job, backoff,
//! coalescing, and one running job per tenant enforced by the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gangway::jobs::{self, Claimed, JobError, JobFailure, JobId, JobStatus, NewJob, Outcome};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::fresh_database;

const LEASE: Duration = Duration::from_secs(30);

/// A consented tenant, as the queue's foreign key needs one.
pub(crate) async fn tenant(db: &PgPool) -> Uuid {
    sqlx::query_scalar(
        "with customer as (insert into customers (name) values ('Contoso ' || gen_random_uuid()) returning id)
         insert into tenants (customer_id, entra_tenant_id, display_name, consent_mode)
         select id, gen_random_uuid(), 'Contoso', 'application' from customer returning id",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

#[derive(Debug, sqlx::FromRow)]
struct Job {
    status: JobStatus,
    attempts: i32,
    leased_by: Option<String>,
    last_error: Option<String>,
    finished_at: Option<OffsetDateTime>,
    /// Seconds from now until the job is due.
    due_in: f64,
}

async fn job(db: &PgPool, id: JobId) -> Job {
    sqlx::query_as(
        "select status, attempts, leased_by, last_error, finished_at,
                extract(epoch from run_at - now())::float8 as due_in
         from jobs where id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn make_due(db: &PgPool, id: JobId) {
    sqlx::query("update jobs set run_at = now() where id = $1")
        .bind(id)
        .execute(db)
        .await
        .unwrap();
}

async fn claim(db: &PgPool, worker: &str) -> Option<Claimed> {
    jobs::claim(db, worker, LEASE).await.unwrap()
}

#[tokio::test]
async fn two_workers_never_run_the_same_tenant_at_once() {
    let database = fresh_database().await;
    let db = PgPoolOptions::new()
        .max_connections(20)
        .connect(&database.url)
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for _ in 0..4 {
        let tenant = tenant(&db).await;
        for kind in ["users", "groups", "members", "photos", "licences"] {
            jobs::enqueue(&db, &NewJob::new(kind, Some(tenant)))
                .await
                .unwrap();
        }
        tenants.push(tenant);
    }

    #[derive(Default)]
    struct Seen {
        running: HashMap<Uuid, usize>,
        most_per_tenant: usize,
        most_at_once: usize,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut workers = Vec::new();
    for n in 0..8 {
        let (db, seen) = (db.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let worker = format!("worker-{n}");
            let mut ran = 0;
            loop {
                let handler = |job: Claimed| {
                    let (db, seen) = (db.clone(), seen.clone());
                    async move {
                        let tenant = job.tenant_id.unwrap();
                        {
                            let mut seen = seen.lock().unwrap();
                            let now = seen.running.entry(tenant).or_default();
                            *now += 1;
                            let now = *now;
                            let at_once = seen.running.values().sum();
                            seen.most_per_tenant = seen.most_per_tenant.max(now);
                            seen.most_at_once = seen.most_at_once.max(at_once);
                        }
                        let running: i64 = sqlx::query_scalar(
                            "select count(*) from jobs where tenant_id = $1 and status = 'running'",
                        )
                        .bind(tenant)
                        .fetch_one(&db)
                        .await
                        .unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        *seen.lock().unwrap().running.get_mut(&tenant).unwrap() -= 1;
                        Ok::<_, JobFailure>(running)
                    }
                };
                match jobs::try_execute_job(&db, &worker, LEASE, handler)
                    .await
                    .unwrap()
                {
                    Outcome::Ran(_, result) => {
                        assert_eq!(result, Ok(1), "the database saw one running job");
                        ran += 1;
                    }
                    Outcome::Idle => {
                        let left: i64 = sqlx::query_scalar(
                            "select count(*) from jobs where status in ('queued', 'running')",
                        )
                        .fetch_one(&db)
                        .await
                        .unwrap();
                        if left == 0 {
                            return ran;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    let mut ran = 0;
    for worker in workers {
        ran += worker.await.unwrap();
    }

    assert_eq!(ran, 20, "every job ran exactly once");
    let done: i64 = sqlx::query_scalar("select count(*) from jobs where status = 'done'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(done, 20);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.most_per_tenant, 1, "a tenant ran two jobs at once");
        assert!(
            seen.most_at_once > 1,
            "different tenants ran side by side (at most {} at once)",
            seen.most_at_once
        );
    }

    let intrude = || {
        sqlx::query(
            "insert into jobs (kind, tenant_id, status, leased_by, lease_expires_at)
             values ('intruder', $1, 'running', 'rogue', now() + interval '1 minute')",
        )
        .bind(tenants[0])
        .execute(&db)
    };
    intrude().await.unwrap();
    let refused = intrude().await.unwrap_err();
    let refused = refused.as_database_error().expect("a database error");
    assert_eq!(refused.constraint(), Some("jobs_one_running_per_tenant"));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_without_costing_an_attempt() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let id = jobs::enqueue(&db, &NewJob::new("sync", Some(tenant(&db).await)))
        .await
        .unwrap();
    let dead = jobs::claim(&db, "dead-worker", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim(&db, "second-worker").await.map(|j| j.id), None);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = claim(&db, "second-worker").await.expect("taken over");
    assert_eq!(
        (taken.id, taken.attempts, taken.takeovers),
        (id, 1, 1),
        "a worker that died is not a failed attempt"
    );
    assert_eq!(
        job(&db, id).await.leased_by.as_deref(),
        Some("second-worker")
    );

    // The worker that lost its lease can neither keep nor record the job.
    assert!(matches!(
        jobs::extend_lease(&db, &dead, LEASE).await,
        Err(JobError::LeaseLost(lost)) if lost == id
    ));
    assert!(matches!(
        jobs::complete(&db, &dead).await,
        Err(JobError::LeaseLost(_))
    ));
    assert!(matches!(
        jobs::fail(&db, &dead, "late", None).await,
        Err(JobError::LeaseLost(_))
    ));
    assert_eq!(job(&db, id).await.status, JobStatus::Running);

    jobs::complete(&db, &taken).await.unwrap();
    assert_eq!(job(&db, id).await.status, JobStatus::Done);
}

#[tokio::test]
async fn a_job_whose_workers_keep_dying_fails_after_the_takeover_bound() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let new = NewJob {
        max_attempts: 1,
        ..NewJob::new("sync", Some(tenant(&db).await))
    };
    let id = jobs::enqueue(&db, &new).await.unwrap();
    let short = Duration::from_millis(50);
    // The same worker id each time: the takeover count still tells the leases apart.
    let mut stale = jobs::claim(&db, "crashing-worker", short)
        .await
        .unwrap()
        .unwrap();
    for takeover in 1..jobs::MAX_TAKEOVERS {
        tokio::time::sleep(Duration::from_millis(80)).await;
        let next = jobs::claim(&db, "crashing-worker", short)
            .await
            .unwrap()
            .expect("taken over while under the bound");
        assert_eq!((next.attempts, next.takeovers), (1, takeover));
        assert!(matches!(
            jobs::complete(&db, &stale).await,
            Err(JobError::LeaseLost(_))
        ));
        stale = next;
    }
    tokio::time::sleep(Duration::from_millis(80)).await;

    assert_eq!(claim(&db, "second-worker").await.map(|j| j.id), None);
    let gone = job(&db, id).await;
    assert_eq!((gone.status, gone.attempts), (JobStatus::Failed, 1));
    assert_eq!(
        gone.last_error.as_deref(),
        Some("its worker stopped 10 times while running it (the lease ran out each time)")
    );
}

#[tokio::test]
async fn failures_back_off_then_fail_for_good() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let new = NewJob {
        max_attempts: 3,
        ..NewJob::new("sync", Some(tenant(&db).await))
    };
    let id = jobs::enqueue(&db, &new).await.unwrap();
    let failing = |_: Claimed| async { Err::<(), _>(JobFailure::new("Graph answered 503")) };

    // 30 s after the first failure, a minute after the second, each with jitter down to half.
    for (attempt, (least, most)) in [(1, (15.0, 30.0)), (2, (30.0, 60.0))] {
        let ran = jobs::try_execute_job(&db, "worker", LEASE, failing)
            .await
            .unwrap();
        assert!(matches!(ran, Outcome::Ran(ran, Err(_)) if ran == id));
        let retry = job(&db, id).await;
        assert_eq!((retry.status, retry.attempts), (JobStatus::Queued, attempt));
        assert_eq!(retry.last_error.as_deref(), Some("Graph answered 503"));
        assert!(
            (least - 1.0..=most).contains(&retry.due_in),
            "attempt {attempt} retries in {} s",
            retry.due_in
        );
        assert!(matches!(
            jobs::try_execute_job(&db, "worker", LEASE, failing)
                .await
                .unwrap(),
            Outcome::Idle
        ));
        make_due(&db, id).await;
    }
    jobs::try_execute_job(&db, "worker", LEASE, failing)
        .await
        .unwrap();
    let failed = job(&db, id).await;
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 3));
    assert!(failed.finished_at.is_some());
    assert!(matches!(
        jobs::try_execute_job(&db, "worker", LEASE, failing)
            .await
            .unwrap(),
        Outcome::Idle
    ));

    // A server's Retry-After wins over the backoff.
    let id = jobs::enqueue(&db, &NewJob::new("sync", None))
        .await
        .unwrap();
    jobs::try_execute_job(&db, "worker", LEASE, |_| async {
        Err::<(), _>(JobFailure {
            error: "throttled".into(),
            retry_after: Some(Duration::from_secs(5)),
            release: false,
        })
    })
    .await
    .unwrap();
    let throttled = job(&db, id).await;
    assert!((4.0..=5.0).contains(&throttled.due_in), "{throttled:?}");
}

#[tokio::test]
async fn enqueue_for_a_queued_tenant_coalesces_and_runs_sooner() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let tenant = tenant(&db).await;
    let scheduled = NewJob {
        run_at: Some(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        ..NewJob::new("sync", Some(tenant))
    };
    let id = jobs::enqueue(&db, &scheduled).await.unwrap();
    assert!(claim(&db, "worker").await.is_none(), "not due for an hour");

    // "Sync now": the same job, due now.
    let now = NewJob::new("sync", Some(tenant));
    assert_eq!(jobs::enqueue(&db, &now).await.unwrap(), id);
    // A later schedule does not push it back.
    assert_eq!(jobs::enqueue(&db, &scheduled).await.unwrap(), id);
    let count: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let running = claim(&db, "worker").await.expect("due now");
    assert_eq!(running.id, id);

    // While it runs, "Sync now" queues the next round, which waits for the tenant to be free.
    let next = jobs::enqueue(&db, &now).await.unwrap();
    assert_ne!(next, id);
    assert!(claim(&db, "other-worker").await.is_none());
    jobs::complete(&db, &running).await.unwrap();
    assert_eq!(claim(&db, "other-worker").await.map(|j| j.id), Some(next));

    // Enqueueing inside a transaction that rolls back leaves nothing behind.
    let other = self::tenant(&db).await;
    let mut tx = db.begin().await.unwrap();
    jobs::enqueue(&mut *tx, &NewJob::new("sync", Some(other)))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(claim(&db, "worker").await.is_none());
}

#[tokio::test]
async fn a_failed_run_hands_its_retry_to_the_round_queued_meanwhile() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let tenant = tenant(&db).await;
    let id = jobs::enqueue(&db, &NewJob::new("sync", Some(tenant)))
        .await
        .unwrap();
    let running = claim(&db, "worker").await.unwrap();
    let later = NewJob {
        run_at: Some(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        ..NewJob::new("sync", Some(tenant))
    };
    let next = jobs::enqueue(&db, &later).await.unwrap();

    let retry_at = jobs::fail(&db, &running, "timed out", None).await.unwrap();
    assert!(retry_at.is_some());
    assert_eq!(job(&db, id).await.status, JobStatus::Cancelled);
    let next = job(&db, next).await;
    assert_eq!(next.status, JobStatus::Queued);
    assert!(next.due_in <= 30.0, "retried by the queued round: {next:?}");
}

#[tokio::test]
async fn release_gives_the_job_back_without_counting_an_attempt() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let id = jobs::enqueue(&db, &NewJob::new("sync", Some(tenant(&db).await)))
        .await
        .unwrap();
    let first = claim(&db, "stopping-worker").await.unwrap();
    assert_eq!(first.attempts, 1);
    jobs::release(&db, &first).await.unwrap();
    let back = job(&db, id).await;
    assert_eq!((back.status, back.attempts), (JobStatus::Queued, 0));
    assert_eq!(back.leased_by, None);

    let again = claim(&db, "next-worker").await.expect("due again at once");
    assert_eq!((again.id, again.attempts), (id, 1));
    assert!(matches!(
        jobs::release(&db, &first).await,
        Err(JobError::LeaseLost(_))
    ));
}

#[tokio::test]
async fn cancelling_a_tenant_drops_its_queued_jobs_only() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let (cancelled, kept) = (tenant(&db).await, tenant(&db).await);
    for kind in ["users", "groups"] {
        jobs::enqueue(&db, &NewJob::new(kind, Some(cancelled)))
            .await
            .unwrap();
    }
    let other = jobs::enqueue(&db, &NewJob::new("users", Some(kept)))
        .await
        .unwrap();
    assert_eq!(jobs::cancel_for_tenant(&db, cancelled).await.unwrap(), 2);
    assert_eq!(claim(&db, "worker").await.map(|j| j.id), Some(other));
    assert!(claim(&db, "worker").await.is_none());
}

#[tokio::test]
async fn the_claim_is_committed_before_the_work_runs() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    let id = jobs::enqueue(&db, &NewJob::new("sync", Some(tenant(&db).await)))
        .await
        .unwrap();
    let seen = jobs::try_execute_job(&db, "worker-1", LEASE, |claimed: Claimed| {
        let db = db.clone();
        async move {
            // Another connection, and another worker, see the lease.
            let during = job(&db, claimed.id).await;
            let rival = claim(&db, "worker-2").await;
            Ok::<_, JobFailure>((during.status, during.leased_by, rival.is_none()))
        }
    })
    .await
    .unwrap();
    let Outcome::Ran(ran, Ok(seen)) = seen else {
        panic!("the job did not run: {seen:?}");
    };
    assert_eq!(ran, id);
    assert_eq!(
        seen,
        (JobStatus::Running, Some("worker-1".to_owned()), true)
    );
    assert_eq!(job(&db, id).await.status, JobStatus::Done);
}

#[tokio::test]
async fn a_worker_whose_lease_is_lost_stops_its_work() {
    let database = fresh_database().await;
    let db = database.pool.clone();
    jobs::enqueue(&db, &NewJob::new("sync", Some(tenant(&db).await)))
        .await
        .unwrap();
    let finished = Arc::new(Mutex::new(false));
    let lease = Duration::from_millis(300);
    let ran = jobs::try_execute_job(&db, "worker-1", lease, |claimed: Claimed| {
        let (db, finished) = (db.clone(), finished.clone());
        async move {
            // Another worker takes the job over behind this one's back.
            sqlx::query("update jobs set leased_by = 'worker-2' where id = $1")
                .bind(claimed.id)
                .execute(&db)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            *finished.lock().unwrap() = true;
            Ok::<_, JobFailure>(())
        }
    })
    .await;
    assert!(matches!(ran, Err(JobError::LeaseLost(_))), "{ran:?}");
    assert!(
        !*finished.lock().unwrap(),
        "the work went on without a lease"
    );
}
