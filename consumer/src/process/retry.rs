//! Retrying until done: the one loop of everything the process must not give up on while the failure
//! may pass (writing a result to its sinks, writing a dead letter, reaching Redis at start), with capped,
//! jittered exponential backoff between attempts. Each caller decides, failure by failure, whether to
//! back off, wait a time of its own, or stop.
//!
//! A vendor call's retries are not this: they are bounded by attempts and a deadline
//! (`crate::vendors::fetch`).

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Capped, jittered exponential backoff that never runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait (before jitter).
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

/// Between writes of a result to a sink and of a dead letter.
pub const WRITE_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// Between pings of a Redis not reachable yet.
pub const REACH_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    max: Duration::from_secs(5),
};

impl Backoff {
    /// Its waits, one per failure, without end.
    fn waits(self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// What a failed attempt calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The backoff's next wait (the one the failure was shown), then another attempt.
    Backoff,
    /// This wait, then another attempt; the backoff stays where it was.
    After(Duration),
    /// No more attempts: the failure is the outcome.
    Stop,
}

/// Runs `attempt` until it succeeds (its value) or `on_failure` answers [`Next::Stop`] (that failure).
/// `on_failure` hears each failure with the wait [`Next::Backoff`] would take, so that it can say so in
/// its log line.
pub async fn retry_until_done<T, E, Fut>(
    backoff: Backoff,
    mut attempt: impl FnMut() -> Fut,
    mut on_failure: impl FnMut(&E, Duration) -> Next,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut waits = backoff.waits().peekable();
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let backoff_wait = waits.peek().copied().unwrap_or(backoff.max);
        let wait = match on_failure(&error, backoff_wait) {
            Next::Backoff => {
                waits.next();
                backoff_wait
            }
            Next::After(wait) => wait,
            Next::Stop => return Err(error),
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(4),
    };

    #[tokio::test]
    async fn retries_until_the_attempt_succeeds_and_answers_its_value() {
        let mut attempts = 0;
        let mut failures = Vec::new();
        let outcome: Result<u32, &str> = retry_until_done(
            TINY,
            || {
                attempts += 1;
                let attempt = attempts;
                async move {
                    if attempt < 4 {
                        Err("down")
                    } else {
                        Ok(attempt)
                    }
                }
            },
            |error, _| {
                failures.push(*error);
                Next::Backoff
            },
        )
        .await;
        assert_eq!(outcome, Ok(4));
        assert_eq!(failures, ["down"; 3]);
    }

    #[tokio::test]
    async fn stops_with_the_failure_that_says_so() {
        let mut attempts = 0;
        let outcome: Result<(), u32> = retry_until_done(
            TINY,
            || {
                attempts += 1;
                let attempt = attempts;
                async move { Err(attempt) }
            },
            |attempt, _| {
                if *attempt == 3 {
                    Next::Stop
                } else {
                    Next::Backoff
                }
            },
        )
        .await;
        assert_eq!(outcome, Err(3));
    }

    #[tokio::test]
    async fn a_wait_of_the_callers_own_leaves_the_backoff_where_it_was() {
        let mut attempts = 0;
        let mut shown = Vec::new();
        let backoff = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_secs(60),
        };
        let _: Result<(), ()> = retry_until_done(
            backoff,
            || {
                attempts += 1;
                let attempt = attempts;
                async move {
                    if attempt < 5 {
                        Err(())
                    } else {
                        Ok(())
                    }
                }
            },
            |_, wait| {
                shown.push(wait);
                if shown.len() % 2 == 1 {
                    Next::After(Duration::from_millis(1))
                } else {
                    Next::Backoff
                }
            },
        )
        .await;
        // The first two failures are shown the same first wait: the own wait between them took none.
        assert_eq!(shown.len(), 4);
        assert_eq!(shown[0], shown[1]);
    }
}
