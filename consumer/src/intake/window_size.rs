//! The in-flight window's size, adapted to how late this process runs: `--max-in-flight` is the most it
//! may be, not what it always is.
//!
//! A consumer short of CPU (a CPU quota, a busy host) that keeps its whole window in flight reads its
//! vendors' answers later and later, until calls the vendors answered in time time out on its side, and
//! it stores results without offers. So every [`TICK`] the window's size follows the runtime's
//! lateness ([`RuntimeLag`]) as TCP's congestion window follows losses: it starts at
//! [`INITIAL_SIZE`] and doubles while on time (slow start, so that a starved process does not start a
//! whole window it cannot read), then, after the first lateness:
//! - late by the tolerance or more (a tenth of the shortest vendor timeout): a quarter smaller;
//! - late by under half of it: an eighth larger (at least one), up to `--max-in-flight`;
//! - in between: unchanged.
//!
//! The window is a semaphore of permits; a smaller size takes permits out of circulation as they come
//! back, so that no comparison under way is stopped. A permit owed is retired as its message finishes,
//! before it returns to the semaphore: returned, tokio would hand it straight to a message waiting for
//! one, and a window whose messages always wait would never shrink. Messages that find no permit wait
//! as they do when the window is full (see [`crate::intake::window`]); Kafka keeps the rest.
//! `pricefront_window_size` shows the size, `pricefront_window_in_use` the permits out.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::process::lateness::RuntimeLag;

/// How often the size follows the lateness.
pub const TICK: Duration = Duration::from_millis(100);

/// The smallest size the window shrinks to.
pub const MIN_SIZE: usize = 1;

/// The size the window starts at (or `--max-in-flight` when smaller).
pub const INITIAL_SIZE: usize = 32;

/// Where the window's size stands: its size, and whether it is still in slow start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// The size.
    pub size: usize,
    /// Doubling while on time, until the first lateness.
    pub slow_start: bool,
}

impl Control {
    /// The start: [`INITIAL_SIZE`] or `max` when smaller, in slow start.
    pub fn start(max: usize) -> Self {
        Self {
            size: INITIAL_SIZE.min(max).max(MIN_SIZE),
            slow_start: true,
        }
    }

    /// The control after a tick in which the runtime was late by `late`, with `tolerance` the lateness
    /// tolerated (none when zero: no vendors) and `max` the largest size.
    pub fn next(self, max: usize, late: Duration, tolerance: Duration) -> Self {
        let size = self.size;
        if !tolerance.is_zero() && late >= tolerance {
            return Self {
                size: (size - size / 4).min(size.saturating_sub(1)).max(MIN_SIZE),
                slow_start: false,
            };
        }
        let size = if self.slow_start {
            size.saturating_mul(2)
        } else if late < tolerance / 2 {
            size + (size / 8).max(1)
        } else {
            size
        };
        Self {
            size: size.min(max),
            ..self
        }
    }
}

/// The window: its permits, and the size they are kept at.
#[derive(Debug)]
pub struct WindowSize {
    permits: Arc<Semaphore>,
    max: usize,
    state: Mutex<Size>,
    control: Mutex<Control>,
    /// The size now (`pricefront_window_size`).
    gauge: Gauge,
    /// The permits out now (`pricefront_window_in_use`).
    in_use_gauge: Gauge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    /// The size: permits in circulation, less those owed.
    now: usize,
    /// Permits to take out of circulation as soon as they are free or come back.
    owed: usize,
    /// Permits out: messages in flight.
    in_use: usize,
}

/// One message's place in the window, returned when dropped; or retired, when the window owes permits
/// (it was made smaller while they were out), so that the window shrinks even while messages wait.
#[derive(Debug)]
pub struct WindowPermit {
    permit: Option<OwnedSemaphorePermit>,
    window: Arc<WindowSize>,
}

impl Drop for WindowPermit {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut size = self.window.lock();
        size.in_use = size.in_use.saturating_sub(1);
        if size.owed > 0 {
            size.owed -= 1;
            permit.forget();
        } else {
            // Under the lock, so that a resize sees it either out or back.
            drop(permit);
        }
        self.window.in_use_gauge.set(size.in_use as i64);
    }
}

impl WindowSize {
    /// A window of at most `max` permits that starts at [`Control::start`]; its size shown in `gauge`,
    /// the permits out in `in_use_gauge`.
    pub fn new(max: usize, gauge: Gauge, in_use_gauge: Gauge) -> Arc<Self> {
        let max = max.max(MIN_SIZE);
        let control = Control::start(max);
        gauge.set(control.size as i64);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(control.size)),
            max,
            state: Mutex::new(Size {
                now: control.size,
                owed: 0,
                in_use: 0,
            }),
            control: Mutex::new(control),
            gauge,
            in_use_gauge,
        })
    }

    /// A permit, when one is free.
    pub fn try_acquire(self: &Arc<Self>) -> Option<WindowPermit> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.hand_out(permit))
    }

    /// A permit, once one is free (cancel-safe: dropped while waiting, it takes none).
    pub async fn acquire(self: &Arc<Self>) -> WindowPermit {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the window is never closed");
        self.hand_out(permit)
    }

    /// The permits out now: messages in flight.
    pub fn in_use(&self) -> usize {
        self.lock().in_use
    }

    fn hand_out(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> WindowPermit {
        let mut size = self.lock();
        size.in_use += 1;
        self.in_use_gauge.set(size.in_use as i64);
        WindowPermit {
            permit: Some(permit),
            window: self.clone(),
        }
    }

    /// The size now.
    pub fn size(&self) -> usize {
        self.lock().now
    }

    /// Makes the size `target` (within 1 and the largest size): more permits at once, fewer as soon as
    /// enough are free.
    pub fn resize(&self, target: usize) {
        let target = target.clamp(MIN_SIZE, self.max);
        let mut size = self.lock();
        if target < size.now {
            size.owed += size.now - target;
        } else if target > size.now {
            let grow = target - size.now;
            let cancelled = grow.min(size.owed);
            size.owed -= cancelled;
            self.permits.add_permits(grow - cancelled);
        }
        size.now = target;
        if size.owed > 0 {
            size.owed -= self.permits.forget_permits(size.owed);
        }
        self.gauge.set(size.now as i64);
    }

    /// Starts following `lag` every [`TICK`]; it stops once the last `Arc` of this window is gone.
    pub fn follow(self: &Arc<Self>, lag: Arc<RuntimeLag>) {
        tokio::spawn(follow(Arc::downgrade(self), lag));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Size> {
        // Every update leaves the size valid, so a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn follow(window: Weak<WindowSize>, lag: Arc<RuntimeLag>) {
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let Some(window) = window.upgrade() else {
            return;
        };
        let now = Instant::now();
        let late = lag.worst_since(since);
        since = now;
        let next = {
            let mut control = window
                .control
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *control = control.next(window.max, late, lag.tolerance());
            control.size
        };
        window.resize(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn after(size: usize, late: u64) -> usize {
        let control = Control {
            size,
            slow_start: false,
        };
        control.next(256, ms(late), ms(100)).size
    }

    #[test]
    fn late_shrinks_it_by_a_quarter_on_time_grows_it_by_an_eighth_up_to_the_max() {
        assert_eq!(after(256, 100), 192);
        assert_eq!(after(192, 400), 144);
        assert_eq!(after(2, 400), 1);
        assert_eq!(after(1, 400), 1, "never below one");
        assert_eq!(after(144, 49), 162);
        assert_eq!(after(4, 0), 5, "at least one more");
        assert_eq!(after(250, 0), 256, "never above the max");
        assert_eq!(after(100, 70), 100, "in between: as it is");
    }

    #[test]
    fn it_starts_small_and_doubles_while_on_time_until_the_first_lateness() {
        let start = Control::start(256);
        assert_eq!(start.size, INITIAL_SIZE);
        let tolerance = ms(100);
        let grown = start.next(256, ms(70), tolerance);
        assert_eq!(
            grown.size, 64,
            "in slow start, anything short of the tolerance doubles it"
        );
        let full = grown
            .next(256, ms(0), tolerance)
            .next(256, ms(0), tolerance);
        assert_eq!(full.size, 256);
        let late = full.next(256, ms(150), tolerance);
        assert_eq!(
            late,
            Control {
                size: 192,
                slow_start: false
            }
        );
        assert_eq!(
            late.next(256, ms(0), tolerance).size,
            216,
            "then an eighth at a time"
        );
        assert_eq!(Control::start(8).size, 8, "never above the max");
    }

    #[test]
    fn without_a_tolerance_it_grows_to_the_max_and_stays() {
        let mut control = Control::start(256);
        for _ in 0..5 {
            control = control.next(256, ms(900), Duration::ZERO);
        }
        assert_eq!(control.size, 256);
    }

    #[tokio::test]
    async fn a_smaller_size_takes_permits_back_as_they_come_free_and_a_larger_one_gives_them_at_once(
    ) {
        let window = WindowSize::new(4, Gauge::default(), Gauge::default());
        let permits = window.permits.clone();
        assert_eq!(
            window.size(),
            4,
            "a window under the initial size starts whole"
        );
        let held: Vec<_> = (0..3).map(|_| window.try_acquire().unwrap()).collect();
        window.resize(1);
        assert_eq!(window.size(), 1);
        assert_eq!(permits.available_permits(), 0, "the free one is taken back");
        assert_eq!(window.in_use(), 3);
        drop(held);
        assert_eq!(window.in_use(), 0);
        assert_eq!(window.in_use_gauge.get(), 0);
        // Two of the three are retired as they come back; one returns.
        window.resize(1);
        assert_eq!(permits.available_permits(), 1);
        window.resize(3);
        assert_eq!(permits.available_permits(), 3);
        assert_eq!(window.gauge.get(), 3);
    }

    /// Lets every spawned task run as far as it can.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_smaller_size_holds_even_while_messages_wait_for_a_permit() {
        let window = WindowSize::new(4, Gauge::default(), Gauge::default());
        let mut held: Vec<_> = (0..4).map(|_| window.try_acquire().unwrap()).collect();
        window.resize(1);
        // A message always waits for a permit (the window is full, Kafka has more), while the messages
        // in flight finish one by one, a tick after each.
        let mut waiter = None;
        for _ in 0..8 {
            let waiting = waiter.get_or_insert_with(|| {
                let window = window.clone();
                tokio::spawn(async move { window.acquire().await })
            });
            settle().await;
            if waiting.is_finished() {
                held.push(waiter.take().unwrap().await.unwrap());
                continue;
            }
            held.remove(0);
            settle().await;
            window.resize(1);
        }
        settle().await;
        if let Some(waiting) = waiter.filter(|w| w.is_finished()) {
            held.push(waiting.await.unwrap());
        }
        assert!(
            held.len() <= window.size(),
            "{} permits held with a window of {}",
            held.len(),
            window.size()
        );
        assert_eq!(window.in_use(), held.len());
        assert_eq!(window.in_use_gauge.get(), held.len() as i64);
    }

    #[tokio::test]
    async fn growing_while_permits_are_owed_cancels_the_debt_first() {
        let window = WindowSize::new(4, Gauge::default(), Gauge::default());
        let permits = window.permits.clone();
        let held: Vec<_> = (0..4).map(|_| window.try_acquire().unwrap()).collect();
        window.resize(2);
        window.resize(3);
        drop(held);
        window.resize(3);
        assert_eq!(permits.available_permits(), 3, "one owed, not two");
    }
}
