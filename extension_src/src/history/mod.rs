//! The invocation records of one execution environment, in a bounded ring.
//!
//! The store is where the event loop, the telemetry listener and the Runtime API proxy (writers)
//! meet the local API (readers). It depends on the standard library only. Memory is bounded by
//! the capacity in records, and the updates it holds for records that do not exist yet are
//! bounded in count and in bytes; whatever is evicted or refused is counted.

mod index;
mod record;

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

pub use record::{
    Extra, MAX_ARN_BYTES, MAX_ERROR_TYPE_BYTES, MAX_REQUEST_ID_BYTES, MAX_TRACE_ID_BYTES, Outcome, Record, RequestId, Source, Status,
    TraceId,
};

use crate::time::Clock;
use index::Index;

/// The ring's first allocation. It doubles up to the capacity as records arrive, so an
/// environment that serves a few invocations holds a few records' worth.
const INITIAL_RING: usize = 64;

/// Request ids with updates waiting for their record, updates held for one id, and the bytes
/// they may hold in all. A record gets a handful of updates (platform.start, runtimeDone, report,
/// the proxy's answer), so more for one id are repeats.
pub const MAX_PENDING_IDS: usize = 1024;
pub const MAX_PENDING_PER_ID: usize = 16;
pub const MAX_PENDING_BYTES: usize = 1 << 20;
/// What one held update costs beyond the bytes its caller declares (the box, the vector slot).
const PENDING_OVERHEAD: usize = 64;

/// What the environment's init phase reported (from telemetry). Strings are validated and
/// bounded by their writer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitInfo {
    pub init_type: String,
    pub init_duration_ms: f64,
    pub init_status: String,
    pub runtime_version: String,
    pub runtime_version_arn: String,
}

/// The store's counters, read at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records ever appended.
    pub served: u64,
    /// Records held now.
    pub retained: u64,
    /// Records evicted to respect the capacity.
    pub dropped: u64,
    /// Request ids with updates held until their record appears.
    pub pending_updates: u64,
    /// Held updates discarded to respect the bounds.
    pub pending_updates_dropped: u64,
}

/// Selects records: those with a sequence greater than `after`, then the most recent `limit` of
/// them (0: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub after: u64,
    pub limit: u64,
}

/// The records selected by a query at one instant: `after < sequence <= up_to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub after: u64,
    pub up_to: u64,
}

type HeldUpdate = Box<dyn FnOnce(&mut Record) + Send>;

struct Pending {
    updates: Vec<HeldUpdate>,
    bytes: usize,
}

/// A bounded, thread-safe ring of records, oldest first.
pub struct Store {
    inner: Mutex<Inner>,
    clock: Clock,
}

struct Inner {
    /// Grows to `capacity`, then wraps; until then `start` is 0.
    ring: Vec<Record>,
    capacity: usize,
    start: usize,
    served: u64,
    /// Request id -> ring slot of its latest retained record (`index.rs`), keyed by a hash whose
    /// key is random per process, so callers cannot aim collisions at it.
    index: Index,
    hasher: RandomState,
    pending: HashMap<RequestId, Pending>,
    /// Request ids in the order their first held update arrived, for eviction. Ids whose updates
    /// were applied stay until reached and are skipped.
    pending_order: VecDeque<RequestId>,
    pending_bytes: usize,
    pending_dropped: u64,
    init: InitInfo,
    /// Every record of an environment carries the same ARN: one copy.
    last_arn: Option<Arc<str>>,
    /// Bumped on every append; wakes the `Appended` futures registered in `wakers`.
    generation: u64,
    wakers: Vec<(u64, Waker)>,
    next_waker_id: u64,
}

impl Store {
    /// A store that retains at most `capacity` records (at least 1); `clock` stamps `invocatedAt`.
    #[must_use]
    pub fn new(capacity: usize, clock: Clock) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(Inner {
                ring: Vec::with_capacity(capacity.min(INITIAL_RING)),
                capacity,
                start: 0,
                served: 0,
                index: Index::for_slots(capacity.min(INITIAL_RING)),
                hasher: RandomState::new(),
                pending: HashMap::new(),
                pending_order: VecDeque::new(),
                pending_bytes: 0,
                pending_dropped: 0,
                init: InitInfo::default(),
                last_arn: None,
                generation: 0,
                wakers: Vec::new(),
                next_waker_id: 0,
            }),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic aborts the process (panic = "abort"), so a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The maximum number of records retained.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Applies `f` to the record of the attempt of `request_id` that `source` reports starting,
    /// and returns its sequence. The sources (INVOKE, the Runtime API proxy and, on Managed
    /// Instances, `platform.start`) complete the same record, whichever comes first. When `source`
    /// has already reported the latest record of this id, the invocation is being retried (Lambda
    /// retries asynchronous invocations with the same id) and a new record is appended. `f` learns
    /// which happened from its second argument (`true`: created).
    pub fn begin(&self, request_id: &str, source: Source, f: impl FnOnce(&mut Record, bool)) -> u64 {
        let mut inner = self.lock();
        if let Some(slot) = inner.find(request_id) {
            let record = &mut inner.ring[slot];
            if record.begun_by & source as u8 == 0 {
                record.begun_by |= source as u8;
                f(record, false);
                let sequence = record.sequence;
                inner.share_arn(slot);
                return sequence;
            }
        }
        let mut record = Record::new(request_id);
        record.begun_by = source as u8;
        record.invocated_at = (self.clock)();
        let slot = inner.append(record, |r| f(r, true));
        let sequence = inner.ring[slot].sequence;
        inner.wake_all();
        sequence
    }

    /// Applies `f` to the latest record of `request_id`. When there is none yet (telemetry may
    /// overtake the INVOKE event), the update is held until the record appears; `bytes` is what
    /// `f` holds (its strings), for the byte bound. Held updates beyond the bounds are dropped and
    /// counted: beyond `MAX_PENDING_IDS` ids or `MAX_PENDING_BYTES` the oldest id's, beyond
    /// `MAX_PENDING_PER_ID` the id's newest.
    pub fn update(&self, request_id: &str, bytes: usize, f: impl FnOnce(&mut Record) + Send + 'static) {
        let mut inner = self.lock();
        if let Some(slot) = inner.find(request_id) {
            f(&mut inner.ring[slot]);
            inner.share_arn(slot);
            return;
        }
        inner.hold(RequestId::new(request_id), bytes + PENDING_OVERHEAD, Box::new(f));
    }

    /// Records what the init phase reported.
    pub fn set_init(&self, f: impl FnOnce(&mut InitInfo)) {
        f(&mut self.lock().init);
    }

    /// What the init phase reported.
    #[must_use]
    pub fn init(&self) -> InitInfo {
        self.lock().init.clone()
    }

    #[must_use]
    pub fn counts(&self) -> Counts {
        self.lock().counts()
    }

    /// Resolves `query` against the store as it is now, with the counters of the same instant.
    /// Read the records with `visit`, a bounded number at a time.
    #[must_use]
    pub fn window(&self, query: Query) -> (Window, Counts) {
        let inner = self.lock();
        let up_to = inner.served;
        let mut after = query.after.max(inner.first_sequence() - 1);
        if query.limit > 0 && up_to > query.limit {
            after = after.max(up_to - query.limit);
        }
        (
            Window {
                after: after.min(up_to),
                up_to,
            },
            inner.counts(),
        )
    }

    /// Calls `f` on up to `max` records with `after < sequence <= up_to`, oldest first, under the
    /// store's lock (keep `f` short), and returns the sequence to continue after. Records evicted
    /// since the window was taken are skipped.
    pub fn visit(&self, after: u64, up_to: u64, max: usize, mut f: impl FnMut(&Record)) -> u64 {
        let inner = self.lock();
        let first = inner.first_sequence();
        let mut sequence = after.max(first - 1);
        let mut visited = 0;
        while sequence < up_to.min(inner.served) && visited < max {
            sequence += 1;
            f(&inner.ring[inner.slot_of(sequence)]);
            visited += 1;
        }
        sequence.max(after)
    }

    /// Calls `f` on the latest retained record of `request_id`.
    pub fn with_record<T>(&self, request_id: &str, f: impl FnOnce(&Record) -> T) -> Option<T> {
        let inner = self.lock();
        inner.find(request_id).map(|slot| f(&inner.ring[slot]))
    }

    /// A copy of the latest retained record of `request_id`.
    #[must_use]
    pub fn get(&self, request_id: &str) -> Option<Record> {
        self.with_record(request_id, Record::clone)
    }

    /// A future that resolves once a record is appended after this call. To wait for a request
    /// id without missing its record, take the future first, then look the id up, then await.
    #[must_use]
    pub fn appended(&self) -> Appended<'_> {
        Appended {
            store: self,
            generation: self.lock().generation,
            waker_id: None,
        }
    }

    /// Copies of every retained record, oldest first (for tests and tools).
    #[must_use]
    pub fn records(&self) -> Vec<Record> {
        let (window, _) = self.window(Query::default());
        let mut out = Vec::new();
        self.visit(window.after, window.up_to, usize::MAX, |r| out.push(r.clone()));
        out
    }
}

impl Inner {
    fn first_sequence(&self) -> u64 {
        self.served - self.ring.len() as u64 + 1
    }

    fn slot_of(&self, sequence: u64) -> usize {
        let offset = usize::try_from(sequence - self.first_sequence()).unwrap_or(usize::MAX);
        (self.start + offset) % self.ring.len()
    }

    fn key_of_str(&self, request_id: &str) -> u64 {
        self.hasher.hash_one(RequestId::new(request_id))
    }

    fn find(&self, request_id: &str) -> Option<usize> {
        self.index
            .find(self.key_of_str(request_id), |slot| self.ring[slot].request_id.is(request_id))
    }

    fn counts(&self) -> Counts {
        let retained = self.ring.len() as u64;
        Counts {
            served: self.served,
            retained,
            dropped: self.served - retained,
            pending_updates: self.pending.len() as u64,
            pending_updates_dropped: self.pending_dropped,
        }
    }

    /// Stamps the record's sequence and cold start, stores it (evicting the oldest when full),
    /// applies `f` and then any held updates for its id, and returns its slot.
    fn append(&mut self, mut record: Record, f: impl FnOnce(&mut Record)) -> usize {
        self.served += 1;
        record.sequence = self.served;
        record.cold_start = self.served == 1;
        let slot = if self.ring.len() == self.capacity {
            let slot = self.start;
            let ring = &self.ring;
            let evicted = &ring[slot].request_id;
            self.index
                .remove(self.hasher.hash_one(evicted), slot, |s| ring[s].request_id == *evicted);
            self.ring[slot] = record;
            self.start = (self.start + 1) % self.capacity;
            slot
        } else {
            if self.ring.len() == self.ring.capacity() {
                // Double, but never past the capacity: the last step lands on it exactly. The
                // index is rebuilt for the new size, at most half full from here to the next step.
                let grown = self.ring.capacity().max(1).saturating_mul(2).min(self.capacity);
                self.ring.reserve_exact(grown - self.ring.len());
                self.rebuild_index();
            }
            self.ring.push(record);
            self.ring.len() - 1
        };
        let ring = &self.ring;
        let id = &ring[slot].request_id;
        self.index.insert(self.hasher.hash_one(id), slot, |s| ring[s].request_id == *id);
        f(&mut self.ring[slot]);
        if let Some(pending) = self.pending.remove(&self.ring[slot].request_id) {
            self.pending_bytes -= pending.bytes;
            for update in pending.updates {
                update(&mut self.ring[slot]);
            }
            if self.pending.is_empty() {
                self.pending_order.clear();
            }
        }
        self.share_arn(slot);
        slot
    }

    /// A new index sized for the ring's allocation, holding every retained record (oldest first,
    /// so a retried id ends up pointing at its latest record).
    fn rebuild_index(&mut self) {
        let mut index = Index::for_slots(self.ring.capacity());
        let ring = &self.ring;
        for (slot, record) in ring.iter().enumerate() {
            let id = &record.request_id;
            index.insert(self.hasher.hash_one(id), slot, |s| ring[s].request_id == *id);
        }
        self.index = index;
    }

    fn share_arn(&mut self, slot: usize) {
        let record = &mut self.ring[slot];
        match (&record.invoked_function_arn, &self.last_arn) {
            (Some(arn), Some(last)) if arn == last => record.invoked_function_arn = Some(Arc::clone(last)),
            (Some(arn), _) => self.last_arn = Some(Arc::clone(arn)),
            (None, _) => {}
        }
    }

    fn hold(&mut self, id: RequestId, bytes: usize, update: HeldUpdate) {
        let held = self.pending.get(&id).map_or(0, |p| p.updates.len());
        if bytes > MAX_PENDING_BYTES || held >= MAX_PENDING_PER_ID {
            self.pending_dropped += 1; // larger than the whole budget, or a repeat
            return;
        }
        while held == 0 && self.pending.len() >= MAX_PENDING_IDS && self.drop_oldest_pending() {}
        while self.pending_bytes + bytes > MAX_PENDING_BYTES && self.drop_oldest_pending() {}
        self.pending_bytes += bytes;
        match self.pending.entry(id) {
            Entry::Occupied(mut e) => {
                e.get_mut().updates.push(update);
                e.get_mut().bytes += bytes;
            }
            Entry::Vacant(e) => {
                // New, or its earlier updates were just evicted (their order entry went with them).
                self.pending_order.push_back(e.key().clone());
                e.insert(Pending {
                    updates: vec![update],
                    bytes,
                });
            }
        }
        // Applied ids linger in the order until reached: keep the order bounded too.
        if self.pending_order.len() > 2 * MAX_PENDING_IDS {
            let pending = &self.pending;
            self.pending_order.retain(|id| pending.contains_key(id));
        }
    }

    /// Drops the held updates of the oldest id that still has some; false when none has.
    fn drop_oldest_pending(&mut self) -> bool {
        while let Some(id) = self.pending_order.pop_front() {
            if let Some(pending) = self.pending.remove(&id) {
                self.pending_bytes -= pending.bytes;
                self.pending_dropped += pending.updates.len() as u64;
                return true;
            }
        }
        false
    }

    fn wake_all(&mut self) {
        self.generation += 1;
        for (_, waker) in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

/// Resolves once a record is appended after it was created (see `Store::appended`).
pub struct Appended<'a> {
    store: &'a Store,
    generation: u64,
    waker_id: Option<u64>,
}

impl Future for Appended<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.store.lock();
        if inner.generation != self.generation {
            return Poll::Ready(());
        }
        let id = if let Some(id) = self.waker_id {
            id
        } else {
            inner.next_waker_id += 1;
            inner.next_waker_id
        };
        match inner.wakers.iter_mut().find(|(w, _)| *w == id) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => inner.wakers.push((id, cx.waker().clone())),
        }
        drop(inner);
        self.waker_id = Some(id);
        Poll::Pending
    }
}

impl Drop for Appended<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waker_id {
            self.store.lock().wakers.retain(|(w, _)| *w != id);
        }
    }
}

/// A clock for tests: the time moves only when the test says.
#[cfg(test)]
pub(crate) fn fixed_clock(nanos: i64) -> Clock {
    Arc::new(move || crate::time::Timestamp(nanos))
}

#[cfg(test)]
mod tests;
