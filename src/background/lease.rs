//! The leased queue engine: claim with a lease committed at once (`FOR UPDATE SKIP LOCKED`),
//! work outside any transaction, record under the lease, give back what was not started when
//! asked to stop. Each kind of work (jobs, mail, webhooks) implements [`Leased`] over its own
//! table; the order of those steps, the heartbeat and the time budget live here once.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::registry::Activity;

/// A kind of leased work: its table's claim, lease upkeep and record statements.
pub trait Leased: Sync {
    /// One claimed item, carrying the lease it holds (recording checks it is still held).
    type Item: Send + Sync;
    /// How working on one item came out.
    type Done: Send;
    /// The kind's error; database errors convert into it.
    type Error: From<sqlx::Error> + Send;

    /// What working on `n` items reads as, for "what it is doing now" ("delivering 3 emails").
    fn describe(&self, n: usize) -> String;

    /// Leases due items and commits at once, so the work runs outside any transaction. Items
    /// whose lease ran out (their worker died) are claimable again.
    fn claim(
        &self,
        db: &PgPool,
    ) -> impl Future<Output = Result<Vec<Self::Item>, Self::Error>> + Send;

    /// How long a claim holds.
    fn lease(&self) -> Duration;

    /// How often the lease is extended while an item is worked on; `None` for kinds whose items
    /// are short and bounded ([`Self::longest`]): no item of those starts unless it can end
    /// within the lease, so an item is never worked on after another worker may have claimed it.
    fn heartbeat(&self) -> Option<Duration> {
        None
    }

    /// The longest one item may take (kinds without a heartbeat).
    fn longest(&self) -> Duration {
        Duration::ZERO
    }

    /// Extends `item`'s lease (kinds with a heartbeat).
    fn extend(
        &self,
        _db: &PgPool,
        _item: &Self::Item,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Whether a failed extension may pass (a database hiccup) rather than mean the lease is lost.
    fn transient(_error: &Self::Error) -> bool {
        true
    }

    /// Records how `item` went, only while its lease is still this worker's.
    fn record(
        &self,
        db: &PgPool,
        item: &Self::Item,
        done: &Self::Done,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Gives `item` back unworked, claimable again at once, its attempt not counted.
    fn give_back(
        &self,
        db: &PgPool,
        item: &Self::Item,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Works on one claimed `item` with `work`, outside any transaction, extending its lease on the
/// kind's heartbeat; then records the result. A lease lost meanwhile (it ran out and another
/// worker took the item over) drops `work` at its next await and returns the kind's error, so an
/// item is never worked on by two workers at once.
pub async fn work_on<K: Leased>(
    kind: &K,
    db: &PgPool,
    item: &K::Item,
    work: impl Future<Output = K::Done>,
) -> Result<K::Done, K::Error> {
    let done = match kind.heartbeat() {
        None => work.await,
        Some(every) => {
            tokio::pin!(work);
            // `interval` refuses a zero period.
            let mut beat = tokio::time::interval(every.max(Duration::from_millis(10)));
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beat.tick().await;
            loop {
                tokio::select! {
                    done = &mut work => break done,
                    _ = beat.tick() => match kind.extend(db, item).await {
                        Ok(()) => {}
                        // A passing database hiccup should not stop the work; the next beat may pass.
                        Err(e) if K::transient(&e) => {
                            tracing::warn!("could not extend a lease; trying again at the next beat");
                        }
                        Err(lost) => return Err(lost),
                    },
                }
            }
        }
    };
    kind.record(db, item, &done).await?;
    Ok(done)
}

/// A kind of leased work claimed in batches, each item worked on the same way.
pub trait Batch: Leased {
    /// Works on one item, outside any transaction.
    fn deliver(&self, item: &Self::Item) -> impl Future<Output = Self::Done> + Send;
}

/// One round of a batch kind: claims what is due and works through it one item at a time,
/// each recorded on its own (a later failure can not undo an earlier record). Items
/// not started are given back when `stop` is cancelled (the one in hand finishes) or when the
/// next could not end within the lease. Says what it is doing through `activity`.
pub async fn try_run_due<K: Batch>(
    kind: &K,
    db: &PgPool,
    stop: &CancellationToken,
    activity: &Activity,
) -> Result<Vec<K::Done>, K::Error> {
    // Taken before the claim, so the lease surely lasts at least this long from here.
    let claimed_at = Instant::now();
    let items = kind.claim(db).await?;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    activity.doing(&kind.describe(items.len())).await;
    let mut done = Vec::with_capacity(items.len());
    let mut items = items.into_iter();
    for item in items.by_ref() {
        let out_of_time =
            kind.heartbeat().is_none() && claimed_at.elapsed() + kind.longest() >= kind.lease();
        if stop.is_cancelled() || out_of_time {
            kind.give_back(db, &item).await?;
            break;
        }
        done.push(work_on(kind, db, &item, kind.deliver(&item)).await?);
    }
    for rest in items {
        kind.give_back(db, &rest).await?;
    }
    Ok(done)
}
