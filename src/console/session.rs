//! Console sessions: a random id in an `HttpOnly; SameSite=Strict` cookie, opened by the
//! admin token, closed by signing out or by expiry (idle or absolute), each with its own
//! token against cross-site request forgery that every POST must carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use subtle::ConstantTimeEq;

/// The cookie that carries the session id.
pub const COOKIE: &str = "xfed_console";

/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(60 * 60);

/// A session is gone this long after sign-in, used or not (a working day).
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 60 * 60);

/// Sessions open on this node, by id.
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    idle: Duration,
    absolute: Duration,
}

/// One signed-in browser.
struct Session {
    /// What every POST of this session must carry (form field `csrf` or header
    /// `X-CSRF-Token`).
    csrf: String,
    /// Sign-in: the session ends [`Sessions::absolute`] after it.
    opened: Instant,
    /// Last request: the session ends [`Sessions::idle`] after it.
    seen: Instant,
}

/// A session just opened: its id for the cookie, its CSRF token for the pages.
#[derive(Debug, Clone)]
pub struct Opened {
    pub id: String,
    pub csrf: String,
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            idle,
            absolute,
        }
    }

    /// How long the cookie lives: the absolute lifetime (the idle one is kept here).
    pub fn max_age(&self) -> Duration {
        self.absolute
    }

    /// Opens a session at `now`.
    pub fn open(&self, now: Instant) -> Opened {
        let opened = Opened {
            id: random_token(),
            csrf: random_token(),
        };
        let mut open = self.lock();
        // Forget the expired ones here, so that signing in again and again cannot grow the
        // table without bound.
        open.retain(|_, s| self.alive(s, now));
        open.insert(
            opened.id.clone(),
            Session {
                csrf: opened.csrf.clone(),
                opened: now,
                seen: now,
            },
        );
        opened
    }

    /// The CSRF token of session `id` if it is open at `now` (which counts as a use).
    pub fn check(&self, id: &str, now: Instant) -> Option<String> {
        let mut open = self.lock();
        let alive = open.get(id).is_some_and(|s| self.alive(s, now));
        if !alive {
            open.remove(id);
            return None;
        }
        let s = open.get_mut(id)?;
        s.seen = now;
        Some(s.csrf.clone())
    }

    /// Signs session `id` out.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.seen) < self.idle
            && now.saturating_duration_since(s.opened) < self.absolute
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a consistent map (every change is one call).
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `offered` is `expected`, in time that does not depend on where they differ.
pub fn same(offered: &str, expected: &str) -> bool {
    offered.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// 32 random bytes from the operating system's generator, as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_session_lives_until_idle_or_absolute_expiry_or_sign_out() {
        let sessions = Sessions::new(10 * MIN, 30 * MIN);
        let t0 = Instant::now();
        let s = sessions.open(t0);
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        assert_eq!(sessions.check(&s.id, t0 + 9 * MIN), Some(s.csrf.clone()));
        // Used at 9 and 18 minutes: never idle for 10, alive at 27.
        assert!(sessions.check(&s.id, t0 + 18 * MIN).is_some());
        assert!(sessions.check(&s.id, t0 + 27 * MIN).is_some());
        // Absolute expiry at 30, however recently used.
        assert!(sessions.check(&s.id, t0 + 30 * MIN).is_none());
        // Once expired, it stays gone.
        assert!(sessions.check(&s.id, t0 + 27 * MIN).is_none());

        let idle = sessions.open(t0);
        assert!(sessions.check(&idle.id, t0 + 10 * MIN).is_none());

        let out = sessions.open(t0);
        sessions.close(&out.id);
        assert!(sessions.check(&out.id, t0).is_none());
        assert!(sessions.check("not-a-session", t0).is_none());
    }

    #[test]
    fn expired_sessions_are_forgotten_when_another_opens() {
        let sessions = Sessions::new(MIN, 10 * MIN);
        let t0 = Instant::now();
        for _ in 0..100 {
            sessions.open(t0);
        }
        sessions.open(t0 + 2 * MIN);
        assert_eq!(sessions.lock().len(), 1);
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        let sessions = Sessions::new(MIN, MIN);
        let a = sessions.open(Instant::now());
        let b = sessions.open(Instant::now());
        assert_ne!(a.csrf, b.csrf);
        assert!(same(&a.csrf, &a.csrf));
        assert!(!same(&a.csrf, &b.csrf));
        assert!(!same(&a.csrf[..63], &a.csrf));
        assert!(!same("", &a.csrf));
    }
}
