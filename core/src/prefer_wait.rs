//! `Prefer: wait=N` (RFC 7240 §4.3): a client that would rather wait than poll. On a miss the edge
//! publishes, then watches the cache until the result arrives or the wait is over. How long it may wait,
//! and when it reads the cache meanwhile, are decided here.

use std::time::Duration;

/// The longest wait the edge grants unless configured (`PREFER_WAIT_MAX_SECS`).
pub const DEFAULT_MAX_WAIT_SECS: u64 = 10;

/// The first pause before reading the cache again; each pause doubles up to [`LONGEST_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// The longest pause between two reads: at most a few reads per second per waiting request.
pub const LONGEST_PAUSE: Duration = Duration::from_millis(400);

/// The seconds of `wait` a `Prefer` header asks for: the value of its `wait` preference (names are
/// case-insensitive, values may be quoted, parameters after `;` are ignored; the first `wait` counts,
/// as RFC 7240 §2 says). `None` when there is none or its value is not a number of seconds.
pub fn requested_wait_secs(prefer: &str) -> Option<u64> {
    prefer.split(',').find_map(|preference| {
        let preference = preference.split(';').next()?.trim();
        let (name, value) = preference.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("wait") {
            return None;
        }
        value.trim().trim_matches('"').parse().ok()
    })
}

/// The wait granted for `requested` seconds: capped at `max_secs`; none for 0.
pub fn granted_wait_secs(requested: u64, max_secs: u64) -> Option<u64> {
    Some(requested.min(max_secs)).filter(|&secs| secs > 0)
}

/// The pauses between reads of a wait of `wait`: 25 ms, doubling to 400 ms, until their sum would pass
/// `wait` (the last one shortened to end on it). A 10 s wait reads the cache at most 30 times.
pub fn pauses(wait: Duration) -> impl Iterator<Item = Duration> {
    let mut elapsed = Duration::ZERO;
    let mut next = FIRST_PAUSE;
    std::iter::from_fn(move || {
        if elapsed >= wait {
            return None;
        }
        let pause = next.min(wait - elapsed);
        elapsed += pause;
        next = (next * 2).min(LONGEST_PAUSE);
        Some(pause)
    })
}

/// The `Preference-Applied` value for a granted wait.
pub fn preference_applied(granted_secs: u64) -> String {
    format!("wait={granted_secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_preference_is_read_as_rfc_7240_writes_it() {
        assert_eq!(requested_wait_secs("wait=5"), Some(5));
        assert_eq!(
            requested_wait_secs("respond-async, WAIT = \"7\" ; x=1"),
            Some(7)
        );
        assert_eq!(
            requested_wait_secs("return=minimal, wait=3, wait=9"),
            Some(3)
        );
        assert_eq!(requested_wait_secs("return=minimal"), None);
        assert_eq!(requested_wait_secs("wait=soon"), None);
        assert_eq!(requested_wait_secs("wait=-1"), None);
        assert_eq!(requested_wait_secs("waiting=4"), None);
    }

    #[test]
    fn a_wait_is_capped_and_zero_is_none() {
        assert_eq!(granted_wait_secs(5, 10), Some(5));
        assert_eq!(granted_wait_secs(60, 10), Some(10));
        assert_eq!(granted_wait_secs(0, 10), None);
        assert_eq!(granted_wait_secs(5, 0), None);
        assert_eq!(preference_applied(5), "wait=5");
    }

    #[test]
    fn pauses_back_off_and_end_exactly_at_the_wait() {
        let all: Vec<_> = pauses(Duration::from_secs(1)).collect();
        assert_eq!(all[..5], [25, 50, 100, 200, 400].map(Duration::from_millis));
        assert_eq!(all.iter().sum::<Duration>(), Duration::from_secs(1));
        assert!(all.iter().all(|p| *p <= LONGEST_PAUSE));
        assert_eq!(pauses(Duration::from_secs(10)).count(), 29);
        assert_eq!(pauses(Duration::ZERO).count(), 0);
    }
}
