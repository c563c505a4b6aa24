//! Which offsets may be committed while many messages of a partition are in flight at once.
//!
//! Messages finish out of order. A partition's committable offset is the lowest offset still in flight
//! (or one past the highest offset seen, when none is): everything below it is finished, so a crash
//! after committing it never skips unfinished work. Each assignment of a partition is a new generation,
//! so that a message finishing after its partition was revoked cannot move the new owner's offsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

/// A message being worked on: what to report when it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The partition.
    pub partition: i32,
    /// The message's offset.
    pub offset: i64,
    generation: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    generation: u64,
    in_flight: BTreeSet<i64>,
    next: Option<i64>,
    committable: Option<i64>,
}

/// Tracks in-flight offsets per partition of one topic.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionState>,
    generations: u64,
}

impl OffsetTracker {
    /// Records that the message at `offset` of `partition` is now in flight.
    pub fn begin(&mut self, partition: i32, offset: i64) -> Ticket {
        let state = self.partitions.entry(partition).or_default();
        if state.generation == 0 {
            // A new assignment: nothing below its first message is ours to commit.
            self.generations += 1;
            state.generation = self.generations;
            state.committable = Some(offset);
        }
        state.in_flight.insert(offset);
        state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
        Ticket {
            partition,
            offset,
            generation: state.generation,
        }
    }

    /// Records that the ticket's message is finished. Returns the partition's new committable offset (the
    /// next offset to consume) when it moved forward.
    pub fn finish(&mut self, ticket: Ticket) -> Option<i64> {
        let state = self.partitions.get_mut(&ticket.partition)?;
        if state.generation != ticket.generation || !state.in_flight.remove(&ticket.offset) {
            return None;
        }
        let committable = state.in_flight.first().copied().or(state.next)?;
        if state.committable.is_some_and(|c| c >= committable) {
            return None;
        }
        state.committable = Some(committable);
        Some(committable)
    }

    /// Forgets `partition`: it was revoked, and a later assignment starts a new generation.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Every partition's committable offset so far.
    pub fn committable(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(p, s)| s.committable.map(|c| (*p, c)))
            .collect()
    }

    /// How many messages are in flight.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|s| s.in_flight.len()).sum()
    }
}

/// Finishes `ticket` in the shared `tracker` and hands the partition's new committable offset, when it
/// moved forward, to `store` (which stores it with the Kafka consumer). `store` runs under the tracker's
/// lock, so offsets are stored in the order they were computed: a stored offset never goes backwards.
pub fn finish_and_store(
    tracker: &Mutex<OffsetTracker>,
    ticket: Ticket,
    store: impl FnOnce(i32, i64),
) {
    let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(offset) = tracker.finish(ticket) {
        store(ticket.partition, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_below_the_lowest_unfinished_offset() {
        let mut t = OffsetTracker::default();
        let a = t.begin(0, 10);
        let b = t.begin(0, 11);
        let c = t.begin(0, 12);
        assert_eq!(t.finish(b), None, "10 is still in flight");
        assert_eq!(t.finish(a), Some(12));
        assert_eq!(t.finish(c), Some(13));
        assert_eq!(t.committable(), vec![(0, 13)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let a = t.begin(0, 5);
        let b = t.begin(1, 7);
        assert_eq!(t.finish(b), Some(8));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finish(a), Some(6));
    }

    #[test]
    fn a_revoked_generation_cannot_move_the_new_owner() {
        let mut t = OffsetTracker::default();
        let old = t.begin(0, 3);
        t.revoke(0);
        let new = t.begin(0, 3);
        let later = t.begin(0, 4);
        assert_eq!(t.finish(old), None);
        assert_eq!(
            t.finish(later),
            None,
            "3 of the new generation is unfinished"
        );
        assert_eq!(t.finish(new), Some(5));
    }

    #[test]
    fn stored_offsets_never_go_backwards_when_two_tasks_finish_at_once() {
        use std::sync::mpsc;
        use std::time::Duration;
        let tracker = &Mutex::new(OffsetTracker::default());
        let (first, second) = {
            let mut t = tracker.lock().unwrap();
            (t.begin(0, 11), t.begin(0, 12))
        };
        let stored = &Mutex::new(Vec::new());
        let (computed_tx, computed_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            // Task A finishes 11 (committable 12) and is slow to store it.
            scope.spawn(move || {
                finish_and_store(tracker, first, |_, offset| {
                    computed_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(10));
                    stored.lock().unwrap().push(offset);
                })
            });
            computed_rx.recv().unwrap();
            // Task B finishes 12 (committable 13) meanwhile.
            let (done_tx, done_rx) = mpsc::channel();
            scope.spawn(move || {
                finish_and_store(tracker, second, |_, offset| {
                    stored.lock().unwrap().push(offset);
                });
                let _ = done_tx.send(());
            });
            // Give B its chance to overtake A (it must not be able to), then let A store.
            let _ = done_rx.recv_timeout(Duration::from_millis(300));
            release_tx.send(()).unwrap();
        });
        let stored = stored.lock().unwrap().clone();
        assert!(
            stored.windows(2).all(|w| w[0] < w[1]),
            "stored offsets went backwards: {stored:?}"
        );
        assert_eq!(stored.last(), Some(&13));
    }

    proptest! {
        #[test]
        fn never_commits_past_an_unfinished_message(order in Just((0..40i64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut t = OffsetTracker::default();
            let tickets: Vec<_> = (0..40).map(|o| t.begin(0, o)).collect();
            let mut finished = std::collections::BTreeSet::new();
            for o in order {
                finished.insert(o);
                if let Some(commit) = t.finish(tickets[o as usize]) {
                    prop_assert!((0..commit).all(|x| finished.contains(&x)));
                }
            }
            prop_assert_eq!(t.committable(), vec![(0, 40)]);
        }
    }
}
