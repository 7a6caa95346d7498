//! What keeps an API call from costing a database write, and most of them a read: the callers
//! of tokens checked in the last [`CHECK_TTL`], by hash, and when each token's use was last
//! recorded, so that it is recorded at most once per interval per process.
//!
//! Bounds: a revocation made elsewhere (another process, SQL) takes effect within
//! [`CHECK_TTL`]; one made through this process ([`TokenCache::forget`]) at once; a token's
//! expiry at its time. A token's last use as the console shows it is at most the interval
//! (a minute) old. Only live tokens are kept, so guessing at tokens fills nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use super::Caller;

/// How long a checked token is believed without asking the database again.
pub const CHECK_TTL: Duration = Duration::from_secs(2);

/// Tokens kept at most; beyond that a check asks the database (there are rarely this many).
const MAX_ENTRIES: usize = 10_000;

/// A token's SHA-256.
type Hash = [u8; 32];

/// Checked tokens and their recorded uses, for one process. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TokenCache {
    callers: Mutex<HashMap<Hash, (Caller, Instant)>>,
    recorded: Mutex<HashMap<Uuid, Instant>>,
    record_every: Duration,
}

impl TokenCache {
    /// A cache that has a token's use recorded at most every `record_every`.
    pub fn new(record_every: Duration) -> Self {
        Self {
            callers: Mutex::default(),
            recorded: Mutex::default(),
            record_every,
        }
    }

    /// The caller of the token hashed `hash`, if it was found live within [`CHECK_TTL`].
    pub(super) fn get(&self, hash: &Hash) -> Option<Caller> {
        let callers = self.callers.lock().expect("token cache");
        let (caller, until) = callers.get(hash)?;
        (Instant::now() < *until).then(|| caller.clone())
    }

    /// Keeps `caller`, just found live, until [`CHECK_TTL`] passes or the token expires.
    pub(super) fn put(&self, hash: Hash, caller: Caller, expires_at: Option<OffsetDateTime>) {
        let now = Instant::now();
        let mut until = now + CHECK_TTL;
        if let Some(expires_at) = expires_at {
            let left = expires_at - OffsetDateTime::now_utc();
            until = until.min(now + left.try_into().unwrap_or(Duration::ZERO));
        }
        let mut callers = self.callers.lock().expect("token cache");
        if callers.len() >= MAX_ENTRIES {
            callers.retain(|_, (_, until)| *until > now);
        }
        if callers.len() < MAX_ENTRIES {
            callers.insert(hash, (caller, until));
        }
    }

    /// Whether `token`'s use is due to be recorded; if so it counts as recorded from now.
    pub(super) fn use_due(&self, token: Uuid) -> bool {
        let now = Instant::now();
        let mut recorded = self.recorded.lock().expect("token cache");
        if recorded
            .get(&token)
            .is_some_and(|at| now.duration_since(*at) < self.record_every)
        {
            return false;
        }
        if recorded.len() >= MAX_ENTRIES {
            // A use older than the interval is due anyway: forgetting it changes nothing.
            recorded.retain(|_, at| now.duration_since(*at) < self.record_every);
        }
        recorded.insert(token, now);
        true
    }

    /// Drops token `id` at once (it was revoked here).
    pub fn forget(&self, id: Uuid) {
        self.callers
            .lock()
            .expect("token cache")
            .retain(|_, (caller, _)| caller.token_id != id);
    }

    /// Drops every token at once (some were revoked here by their owner's removal or demotion;
    /// the next check of each asks the database).
    pub fn forget_all(&self) {
        self.callers.lock().expect("token cache").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_tokens::Scope;

    fn caller() -> Caller {
        Caller {
            token_id: Uuid::new_v4(),
            name: "ci".into(),
            scope: Scope::Read,
            calls_per_second: None,
        }
    }

    #[test]
    fn a_token_is_believed_until_it_expires_or_is_forgotten() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let (live, expired, revoked) = (caller(), caller(), caller());
        cache.put([1; 32], live.clone(), None);
        cache.put(
            [2; 32],
            expired,
            Some(OffsetDateTime::now_utc() - time::Duration::seconds(1)),
        );
        cache.put([3; 32], revoked.clone(), None);
        cache.forget(revoked.token_id);
        assert_eq!(cache.get(&[1; 32]).map(|c| c.token_id), Some(live.token_id));
        assert!(cache.get(&[2; 32]).is_none());
        assert!(cache.get(&[3; 32]).is_none());
        assert!(cache.get(&[4; 32]).is_none());
    }

    #[test]
    fn a_use_is_due_once_per_interval() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let token = Uuid::new_v4();
        assert!(cache.use_due(token));
        assert!(!cache.use_due(token));
        assert!(cache.use_due(Uuid::new_v4()), "each token has its own");
        let eager = TokenCache::new(Duration::ZERO);
        assert!(eager.use_due(token) && eager.use_due(token));
    }
}
