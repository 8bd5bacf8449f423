//! The work queue of a controller, without I/O or clocks (the caller
//! passes the time): keys are deduplicated, a key is never handed out
//! twice at once, failures come back with exponential backoff.
//!
//! The same rules as client-go's work queue: a key added while it is being
//! processed is remembered and handed out again after
//! [`done`](WorkQueue::done); a key added several times before it is
//! taken is processed once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Backoff after failures: `base × 2^(failures-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` failures in a row (at least one).
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(40);
        self.base
            .checked_mul(1u32 << shift.min(31))
            .and_then(|d| d.checked_mul(1u32 << shift.saturating_sub(31)))
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Keys waiting for work, in the order they came.
#[derive(Debug)]
pub struct WorkQueue<K> {
    ready: VecDeque<K>,
    /// Keys waiting to be handed out (in `ready`, or to be re-queued when
    /// their processing ends).
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// Keys due later, by time.
    delayed: BTreeSet<(Instant, u64, K)>,
    delayed_at: HashMap<K, (Instant, u64)>,
    seq: u64,
    failures: HashMap<K, u32>,
    backoff: Backoff,
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// An empty queue retrying failures with `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            ready: VecDeque::new(),
            dirty: HashSet::new(),
            processing: HashSet::new(),
            delayed: BTreeSet::new(),
            delayed_at: HashMap::new(),
            seq: 0,
            failures: HashMap::new(),
            backoff,
        }
    }

    /// Asks for `key` to be processed (once, however often asked).
    pub fn add(&mut self, key: K) {
        if let Some(at) = self.delayed_at.remove(&key) {
            self.delayed.remove(&(at.0, at.1, key.clone()));
        }
        if !self.dirty.insert(key.clone()) {
            return;
        }
        if !self.processing.contains(&key) {
            self.ready.push_back(key);
        }
    }

    /// Asks for `key` at `at` (sooner if added sooner; an earlier
    /// pending time wins).
    pub fn add_at(&mut self, key: K, at: Instant) {
        if self.dirty.contains(&key) {
            return;
        }
        if let Some(&(t, seq)) = self.delayed_at.get(&key) {
            if t <= at {
                return;
            }
            self.delayed.remove(&(t, seq, key.clone()));
        }
        self.seq += 1;
        self.delayed.insert((at, self.seq, key.clone()));
        self.delayed_at.insert(key, (at, self.seq));
    }

    /// Moves keys due by `now` to the ready queue.
    pub fn promote(&mut self, now: Instant) {
        while let Some(first) = self.delayed.first() {
            if first.0 > now {
                break;
            }
            let Some((_, _, key)) = self.delayed.pop_first() else {
                break;
            };
            self.delayed_at.remove(&key);
            self.add(key);
        }
    }

    /// The next key to process (now marked processing), after promoting
    /// what is due by `now`.
    pub fn pop(&mut self, now: Instant) -> Option<K> {
        self.promote(now);
        let key = self.ready.pop_front()?;
        self.dirty.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }

    /// Processing of `key` ended; if it was added meanwhile it is ready
    /// again.
    pub fn done(&mut self, key: &K) {
        self.processing.remove(key);
        if self.dirty.contains(key) {
            self.ready.push_back(key.clone());
        }
    }

    /// `key` failed: it comes back after its backoff (which grows with
    /// every failure in a row); returns that delay.
    pub fn retry(&mut self, key: K, now: Instant) -> Duration {
        let n = self.failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = self.backoff.delay(*n);
        self.add_at(key, now + delay);
        delay
    }

    /// `key` succeeded: its backoff starts over.
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Failures in a row of `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// When the next delayed key is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.first().map(|(t, _, _)| *t)
    }

    /// Keys ready now.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Keys waiting (ready or delayed), the queue depth.
    pub fn depth(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Whether `key` is being processed.
    pub fn is_processing(&self, key: &K) -> bool {
        self.processing.contains(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_are_processed_once() {
        let now = Instant::now();
        let mut q = WorkQueue::new(Backoff::default());
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.pop(now), Some("a"));
        assert_eq!(q.pop(now), Some("b"));
        assert_eq!(q.pop(now), None);
    }

    #[test]
    fn a_key_added_while_processing_waits_for_done() {
        let now = Instant::now();
        let mut q = WorkQueue::new(Backoff::default());
        q.add("a");
        assert_eq!(q.pop(now), Some("a"));
        q.add("a");
        assert_eq!(q.pop(now), None, "never twice at once");
        q.done(&"a");
        assert_eq!(q.pop(now), Some("a"));
        q.done(&"a");
        assert_eq!(q.pop(now), None);
    }

    #[test]
    fn failures_back_off_exponentially_and_reset() {
        let t0 = Instant::now();
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        let mut q = WorkQueue::new(b);
        q.add("a");
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            let k = q.pop(now).unwrap();
            q.done(&k);
            let d = q.retry(k, now);
            delays.push(d.as_millis());
            assert_eq!(q.pop(now + d - Duration::from_millis(1)), None);
            now += d;
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(q.pop(now), Some("a"));
        q.forget(&"a");
        assert_eq!(q.retry("a", now).as_millis(), 10);
    }

    #[test]
    fn the_earlier_time_wins_and_add_overrides_a_delay() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new(Backoff::default());
        q.add_at("a", t0 + Duration::from_secs(10));
        q.add_at("a", t0 + Duration::from_secs(5));
        q.add_at("a", t0 + Duration::from_secs(7));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(5)));
        q.add("a");
        assert_eq!(q.next_due(), None);
        assert_eq!(q.pop(t0), Some("a"));
    }

    #[test]
    fn huge_failure_counts_saturate_at_max() {
        let b = Backoff::default();
        assert_eq!(b.delay(u32::MAX), b.max);
        assert_eq!(b.delay(64), b.max);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        AddAfter(u8, u8),
        Pop,
        Done(u8),
        Tick(u8),
    }

    proptest! {
        /// Under any sequence: a key is never handed out while processing,
        /// every added key is handed out eventually (once per burst of
        /// adds), and nothing is lost.
        #[test]
        fn never_concurrent_never_lost(ops in proptest::collection::vec(prop_oneof![
            (0u8..5).prop_map(Op::Add),
            (0u8..5, 0u8..20).prop_map(|(k, d)| Op::AddAfter(k, d)),
            Just(Op::Pop),
            (0u8..5).prop_map(Op::Done),
            (0u8..20).prop_map(Op::Tick),
        ], 1..200)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut q = WorkQueue::new(Backoff::default());
            let mut processing = HashSet::new();
            let mut wanted = HashSet::new();
            for op in ops {
                match op {
                    Op::Add(k) => { q.add(k); wanted.insert(k); }
                    Op::AddAfter(k, d) => { q.add_at(k, now + Duration::from_millis(d.into())); wanted.insert(k); }
                    Op::Pop => if let Some(k) = q.pop(now) {
                        prop_assert!(processing.insert(k), "key {} handed out twice", k);
                        wanted.remove(&k);
                    },
                    Op::Done(k) => if processing.remove(&k) { q.done(&k); },
                    Op::Tick(d) => now += Duration::from_millis(d.into()),
                }
            }
            for k in processing.drain() { q.done(&k); }
            now += Duration::from_secs(1);
            let mut seen = HashSet::new();
            while let Some(k) = q.pop(now) {
                seen.insert(k);
                q.done(&k);
            }
            prop_assert!(wanted.is_subset(&seen), "lost {:?}", wanted.difference(&seen).collect::<Vec<_>>());
        }
    }
}
