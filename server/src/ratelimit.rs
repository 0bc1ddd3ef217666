//! Per-key rate limiting: a fixed window per API key, in memory.
//!
//! Each key gets `limit` requests per `window`; its window starts at its first request and
//! restarts at the first request after it ends. A fixed window is exact and makes
//! `RateLimit-Reset` mean what the contract says (seconds until the window resets); across a
//! window boundary a key can make at most `2 * limit` requests in one window's length.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once before expired windows are swept. Only authenticated keys get an
/// entry, so the map is bounded by the number of live keys in any case.
pub const MAX_TRACKED_KEYS: usize = 10_000;

/// The answer for one request: whether it may proceed, and the values of the `RateLimit-*`
/// headers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets (rounded up, at least 1 while a window is open).
    pub reset_secs: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
}

/// A fixed-window limiter keyed by API key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimiter {
    /// `limit` requests per `window` for each key. Both are clamped to at least 1 (request,
    /// second).
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit: limit.max(1),
            window: window.max(Duration::from_secs(1)),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// What to report for a request that consumes no quota (unauthenticated, health checks):
    /// the configured limit, all of it remaining.
    pub fn untouched(&self) -> Decision {
        Decision {
            allowed: true,
            limit: self.limit,
            remaining: self.limit,
            reset_secs: self.window.as_secs(),
        }
    }

    /// Counts one request for `key` and decides.
    pub fn check(&self, key: &str) -> Decision {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Decision {
        // A poisoned lock only means another request panicked mid-update of a counter; the
        // counters are still usable.
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, w| now.duration_since(w.started) < window);
        }
        let w = map.entry(key.to_string()).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                used: 0,
            };
        }
        let left = self.window.saturating_sub(now.duration_since(w.started));
        let reset_secs = ceil_secs(left).max(1);
        if w.used >= self.limit {
            return Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_secs,
            };
        }
        w.used += 1;
        Decision {
            allowed: true,
            limit: self.limit,
            remaining: self.limit - w.used,
            reset_secs,
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_and_resets() {
        let rl = RateLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let d = |key: &str, after_ms: u64| rl.check_at(key, t0 + Duration::from_millis(after_ms));
        // (key, ms after start, allowed, remaining, reset)
        let cases = [
            ("a", 0, true, 1, 10),
            ("a", 1, true, 0, 10),
            ("a", 2_500, false, 0, 8),
            ("b", 2_600, true, 1, 10),
            ("a", 9_999, false, 0, 1),
            ("a", 10_000, true, 1, 10),
        ];
        for (key, at, allowed, remaining, reset) in cases {
            let got = d(key, at);
            assert_eq!(
                (got.allowed, got.remaining, got.reset_secs),
                (allowed, remaining, reset),
                "{key} at {at} ms"
            );
        }
    }
}
