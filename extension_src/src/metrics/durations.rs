//! Invocation durations waiting for their `InvocationDuration` line, and the task that writes them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Dimensions, Emitter, MAX_VALUES_PER_LINE};
use crate::time::{Clock, Timestamp};

/// How long a value may wait for its line to fill: an environment serving one invocation a
/// minute still shows on a dashboard within a minute or two.
pub const MAX_DURATION_AGE: Duration = Duration::from_secs(60);
/// Values waiting beyond this are dropped and counted (only reachable when writing stalls).
pub const MAX_PENDING_DURATIONS: usize = 10 * MAX_VALUES_PER_LINE;
/// How often `run_durations` looks for values that have waited `MAX_DURATION_AGE`; a full line
/// is written at once.
pub const DURATIONS_TICK: Duration = Duration::from_secs(15);

/// Collects invocation durations for EMF lines. `add` is cheap and never waits on I/O (it runs
/// while the history store applies telemetry); `take` hands out what is due for writing.
#[derive(Default)]
pub struct Durations {
    pending: Mutex<Pending>,
    full: Notify,
}

#[derive(Default)]
struct Pending {
    values: Vec<f64>,
    /// When the oldest waiting value arrived.
    first: Timestamp,
    dropped: u64,
}

impl Durations {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one duration in milliseconds. A value that is not a finite non-negative number
    /// is counted as dropped: no line could carry it.
    pub fn add(&self, ms: f64, now: Timestamp) {
        let mut pending = self.lock();
        if pending.values.len() >= MAX_PENDING_DURATIONS || !ms.is_finite() || ms < 0.0 {
            pending.dropped += 1;
            return;
        }
        if pending.values.is_empty() {
            pending.first = now;
        }
        pending.values.push(ms);
        if pending.values.len() == MAX_VALUES_PER_LINE {
            // Keeps one wake-up if the writer is not waiting yet, as a one-slot channel would.
            self.full.notify_one();
        }
    }

    /// Resolves when a whole line's worth of values is waiting (or was, since the last wait).
    pub async fn full(&self) {
        self.full.notified().await;
    }

    /// The values due for one line: `MAX_VALUES_PER_LINE` of them when that many wait; all of them
    /// when the oldest has waited `MAX_DURATION_AGE` or when `flush` is set (at shutdown); else
    /// none.
    #[must_use]
    pub fn take(&self, now: Timestamp, flush: bool) -> Vec<f64> {
        let mut pending = self.lock();
        let waiting = pending.values.len();
        let age = Duration::from_nanos(u64::try_from(now.0.saturating_sub(pending.first.0)).unwrap_or(0));
        let n = if waiting >= MAX_VALUES_PER_LINE {
            MAX_VALUES_PER_LINE
        } else if waiting > 0 && (flush || age >= MAX_DURATION_AGE) {
            waiting
        } else {
            return Vec::new();
        };
        let out: Vec<f64> = pending.values.drain(..n).collect();
        if !pending.values.is_empty() {
            // The rest arrived before now; they wait at most one more MAX_DURATION_AGE.
            pending.first = now;
        }
        out
    }

    /// How many values were discarded: too many waiting, or not a number a line could carry.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The critical sections cannot panic half-way; a poisoned lock still holds sound data.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes `InvocationDuration` lines as they come due (a full line at once, older values every
/// `DURATIONS_TICK`), and what is left when `stop` becomes true or its sender is dropped (at
/// shutdown, after the telemetry listener has delivered its last batch).
pub async fn run_durations(emitter: Emitter, dims: Dimensions, durations: Arc<Durations>, clock: Clock, mut stop: watch::Receiver<bool>) {
    let write = |flush: bool| loop {
        let values = durations.take(clock(), flush);
        if values.is_empty() {
            break;
        }
        emitter.durations(&dims, &values);
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + DURATIONS_TICK, DURATIONS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = durations.full() => write(false),
            _ = tick.tick() => write(false),
        }
    }
    write(true);
}
