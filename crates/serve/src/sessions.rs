//! Per-user state in memory, bounded: at most `capacity` users (least recently used evicted
//! first) and none idle longer than `ttl`.
//!
//! The state is the user's, not the session's: as in training (`DESIGN.md` §4), a request's
//! history is the user's last impressions across sessions, and only the position within
//! the session restarts when a new `session_id` arrives.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use mmrf_data::session::Impression;

/// Impressions kept per user: more than any ranker reads (MMRF's default is 20).
pub const HISTORY_CAP: usize = 64;

/// The most bytes of session state `capacity` users can hold: each user's state with a
/// full history and the longest session id accepted, and the LRU's entry around it.
pub fn state_bytes_bound(capacity: usize) -> usize {
    let per_user = std::mem::size_of::<UserState>()
        + HISTORY_CAP * std::mem::size_of::<Impression>()
        + crate::api::MAX_SESSION_ID_BYTES
        + 4 * std::mem::size_of::<usize>()
        + std::mem::size_of::<i64>();
    capacity.saturating_mul(per_user)
}

/// One user's serving state.
#[derive(Debug, Clone)]
pub struct UserState {
    /// Last impressions, oldest first.
    pub history: VecDeque<Impression>,
    pub session_id: String,
    /// Rank requests served in the current session.
    pub position: u16,
    last_seen: Instant,
}

impl UserState {
    fn new(seed: &[Impression], session_id: &str, now: Instant) -> Self {
        let keep = &seed[seed.len().saturating_sub(HISTORY_CAP)..];
        UserState {
            history: keep.iter().copied().collect(),
            session_id: session_id.to_string(),
            position: 0,
            last_seen: now,
        }
    }

    /// Enter `session_id` (a new one restarts the position).
    fn enter(&mut self, session_id: &str, now: Instant) {
        if self.session_id != session_id {
            self.session_id = session_id.to_string();
            self.position = 0;
        }
        self.last_seen = now;
    }

    pub fn push(&mut self, i: Impression) {
        if self.history.len() == HISTORY_CAP {
            self.history.pop_front();
        }
        self.history.push_back(i);
    }
}

/// Users' states under an LRU bound and an idle TTL.
pub struct SessionStore {
    users: LruCache<i64, UserState>,
    ttl: Duration,
    evicted: u64,
    expired: u64,
}

impl SessionStore {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        SessionStore {
            users: LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN)),
            ttl,
            evicted: 0,
            expired: 0,
        }
    }

    /// The state of `user` in `session_id`, created from `seed` (its logged history) when
    /// absent or expired.
    pub fn enter(
        &mut self,
        user: i64,
        session_id: &str,
        seed: impl FnOnce() -> Vec<Impression>,
        now: Instant,
    ) -> &mut UserState {
        let expired = self
            .users
            .peek(&user)
            .is_some_and(|s| now.saturating_duration_since(s.last_seen) > self.ttl);
        if expired {
            self.users.pop(&user);
            self.expired += 1;
        }
        if !self.users.contains(&user) {
            if self.users.len() == self.users.cap().get() {
                self.evicted += 1;
            }
            self.users.put(user, UserState::new(&seed(), session_id, now));
        }
        let state = self.users.get_mut(&user).expect("just inserted");
        state.enter(session_id, now);
        state
    }

    /// Drop every user idle longer than the TTL (least recently used first, so the scan
    /// stops at the first fresh one).
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((_, s)) = self.users.peek_lru() {
            if now.saturating_duration_since(s.last_seen) <= self.ttl {
                break;
            }
            self.users.pop_lru();
            n += 1;
        }
        self.expired += n as u64;
        n
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Users dropped for room (LRU) and for idleness (TTL), since start.
    pub fn dropped(&self) -> (u64, u64) {
        (self.evicted, self.expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(video: u32) -> Impression {
        Impression {
            video,
            play_time_ms: 1000,
            duration_ms: 2000,
            click: true,
            like: false,
            follow: false,
            comment: false,
            hate: false,
            long_view: false,
        }
    }

    #[test]
    fn capacity_evicts_the_least_recently_used() {
        let mut s = SessionStore::new(2, Duration::from_secs(60));
        let t = Instant::now();
        s.enter(1, "a", Vec::new, t);
        s.enter(2, "a", Vec::new, t);
        s.enter(1, "a", Vec::new, t).push(imp(5));
        s.enter(3, "a", Vec::new, t); // evicts user 2, not the recently used user 1
        assert_eq!(s.len(), 2);
        assert_eq!(s.dropped(), (1, 0));
        assert_eq!(s.enter(1, "a", Vec::new, t).history.len(), 1);
        assert_eq!(
            s.enter(2, "a", || vec![imp(9)], t).history.len(),
            1,
            "user 2 starts afresh"
        );
    }

    #[test]
    fn idle_users_expire() {
        let mut s = SessionStore::new(10, Duration::from_secs(5));
        let t = Instant::now();
        s.enter(1, "a", Vec::new, t).push(imp(1));
        s.enter(2, "a", Vec::new, t + Duration::from_secs(4));
        assert_eq!(s.sweep(t + Duration::from_secs(7)), 1);
        assert_eq!(s.len(), 1);
        // Expired on access too.
        let st = s.enter(2, "a", Vec::new, t + Duration::from_secs(20));
        assert!(st.history.is_empty());
        assert_eq!(s.dropped(), (0, 2));
    }

    #[test]
    fn history_is_bounded_and_a_new_session_restarts_the_position() {
        let mut s = SessionStore::new(10, Duration::from_secs(60));
        let t = Instant::now();
        let seed: Vec<Impression> = (0..100).map(imp).collect();
        let st = s.enter(7, "a", || seed, t);
        assert_eq!(st.history.len(), HISTORY_CAP);
        assert_eq!(st.history.back().unwrap().video, 99, "the latest are kept");
        st.position = 3;
        st.push(imp(500));
        assert_eq!(st.history.len(), HISTORY_CAP);
        assert_eq!(s.enter(7, "a", Vec::new, t).position, 3);
        let st = s.enter(7, "b", Vec::new, t);
        assert_eq!(st.position, 0);
        assert_eq!(st.history.back().unwrap().video, 500, "history carries across sessions");
    }
}
