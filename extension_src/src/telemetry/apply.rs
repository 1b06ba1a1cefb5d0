//! Merging telemetry events into the history store.
//!
//! Telemetry arrives late, in batches, possibly out of order and possibly twice, so every update
//! is idempotent and order-independent: `platform.report` is authoritative for what it carries and
//! always wins; `platform.runtimeDone` only fills what is still empty. Events for a request id the
//! store has not seen are held by the store (bounded in count and bytes) until the record appears.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::events::{self, BatchOutcome, Event, InitEvent, InitPhase, InvokeEvent, InvokePhase, Item, Malformed};
use crate::history::{Record, Source, Store, TraceId};
use crate::time::Timestamp;

type OnReport = Arc<dyn Fn(f64) + Send + Sync>;
type OnBatch = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Applies batches to a store.
pub struct Applier {
    store: Arc<Store>,
    /// On Lambda Managed Instances there are no INVOKE events, so `platform.start` creates the
    /// records; elsewhere INVOKE creates them and a `platform.start` for an unknown id waits.
    create_from_start: bool,
    on_report: Option<OnReport>,
    /// Also serialises the check-then-create of `platform.start`, so two deliveries of one start
    /// racing on two connections still make one record.
    recent: Mutex<Recent>,
    /// Woken after every applied batch, for whoever waits on what telemetry says.
    applied: Option<Arc<tokio::sync::Notify>>,
    /// Given every well-formed batch before it is applied (the export's log buffer).
    forward: Option<OnBatch>,
}

impl Applier {
    /// An applier writing to `store`; `create_from_start` is set on Lambda Managed Instances.
    /// `on_report` receives the duration of each invocation's first `platform.report` (a repeated
    /// delivery is not reported again); it runs under the store's lock, so it must be quick and
    /// never touch the store.
    #[must_use]
    pub fn new(store: Arc<Store>, create_from_start: bool, on_report: Option<Box<dyn Fn(f64) + Send + Sync>>) -> Self {
        Self {
            store,
            create_from_start,
            on_report: on_report.map(Arc::from),
            recent: Mutex::new(Recent::default()),
            applied: None,
            forward: None,
        }
    }

    /// Hands every well-formed batch to `f` before applying it: whoever reads what a record's
    /// report says finds, by then, the log events that came before the report.
    #[must_use]
    pub fn forwarding(mut self, f: OnBatch) -> Self {
        self.forward = Some(f);
        self
    }

    /// Wakes `applied`'s waiters after every batch applied.
    #[must_use]
    pub fn signalling(mut self, applied: Arc<tokio::sync::Notify>) -> Self {
        self.applied = Some(applied);
        self
    }

    /// Applies a batch: every valid event, in order. A body that is not a JSON array applies
    /// nothing.
    pub fn apply_batch(&self, body: &[u8]) -> Result<BatchOutcome, Malformed> {
        // Validate the whole body first, so a batch that breaks off halfway applies nothing. Two
        // parses keep memory flat: no list of the batch's events is ever built.
        events::parse_batch(body)?;
        if let Some(forward) = &self.forward {
            forward(body);
        }
        let outcome = events::for_each_event(body, |item| {
            if let Item::Event(event) = item {
                self.apply(&event);
            }
        });
        if let Some(applied) = &self.applied {
            applied.notify_waiters();
        }
        outcome
    }

    fn apply(&self, event: &Event<'_>) {
        match event {
            Event::Init(init) => self.apply_init(init),
            Event::Invoke(invoke) => match invoke.phase {
                InvokePhase::Start => self.apply_start(invoke),
                InvokePhase::RuntimeDone => self.apply_runtime_done(invoke),
                InvokePhase::Report => self.apply_report(invoke),
            },
            Event::Other => {}
        }
    }

    fn apply_init(&self, event: &InitEvent<'_>) {
        self.store.set_init(|init| {
            if !event.init_type.is_empty() {
                event.init_type.clone_into(&mut init.init_type);
            }
            match event.phase {
                InitPhase::Start => {
                    if !event.runtime_version.is_empty() {
                        event.runtime_version.clone_into(&mut init.runtime_version);
                    }
                    if !event.runtime_version_arn.is_empty() {
                        event.runtime_version_arn.clone_into(&mut init.runtime_version_arn);
                    }
                }
                // The report, when it comes, is authoritative.
                InitPhase::RuntimeDone => {
                    if let (true, Some(status)) = (init.init_status.is_empty(), event.status) {
                        status.as_str().clone_into(&mut init.init_status);
                    }
                }
                InitPhase::Report => {
                    if let Some(status) = event.status {
                        status.as_str().clone_into(&mut init.init_status);
                    }
                    if event.duration_ms > 0.0 {
                        init.init_duration_ms = event.duration_ms;
                    }
                }
            }
        });
    }

    fn apply_start(&self, event: &InvokeEvent<'_>) {
        let arn: Option<Arc<str>> = (!event.function_arn.is_empty()).then(|| Arc::from(event.function_arn));
        let trace = (!event.trace.is_empty()).then(|| TraceId::new(event.trace));
        let held = arn.as_ref().map_or(0, |a| a.len()) + trace.as_ref().map_or(0, trace_heap_bytes);
        let fill = move |r: &mut Record| {
            if r.invoked_function_arn.is_none() {
                r.invoked_function_arn = arn;
            }
            if r.trace_id.is_none() {
                r.trace_id = trace;
            }
        };
        let bytes = size_of_val(&fill) + held;
        if !self.create_from_start {
            self.store.update(event.request_id, bytes, fill);
            return;
        }
        let started_at = Timestamp::parse_rfc3339(event.time);
        let mut recent = self.recent();
        let first_delivery = recent.first(Kind::Start, event.request_id, event.time);
        // The same attempt again: still running (Lambda never runs one request id twice at once,
        // and a retry follows the end of the attempt before it), or started at this very time
        // (a delivery the bounded memory above has forgotten).
        let same_attempt = self
            .store
            .with_record(event.request_id, |r| {
                r.begun_by & Source::Telemetry as u8 != 0 && (r.status.is_none() || Some(r.invocated_at) == started_at)
            })
            .unwrap_or(false);
        if !first_delivery || same_attempt {
            self.store.update(event.request_id, bytes, fill);
            return;
        }
        // A start of the same request id after its attempt ended is a retry: a new record.
        self.store.begin(event.request_id, Source::Telemetry, |r, created| {
            if created && let Some(at) = started_at {
                // The invocation started when Lambda says, not when the batch reached us.
                r.invocated_at = at;
            }
            fill(r);
        });
        drop(recent);
    }

    fn apply_runtime_done(&self, event: &InvokeEvent<'_>) {
        let status = event.status;
        let error_type: Option<Box<str>> = (!event.error_type.is_empty()).then(|| event.error_type.into());
        let held = error_type.as_ref().map_or(0, |t| t.len());
        let duration_ms = event.duration_ms;
        let fill = move |r: &mut Record| {
            if r.status.is_none() {
                r.status = status;
            }
            if r.error_type().is_none()
                && let Some(error_type) = error_type
            {
                r.extra_mut().error_type = Some(error_type);
            }
            if r.duration_ms == 0.0 {
                r.duration_ms = duration_ms;
            }
        };
        self.store.update(event.request_id, size_of_val(&fill) + held, fill);
    }

    fn apply_report(&self, event: &InvokeEvent<'_>) {
        // Only a first delivery may be reported; the record then tells whether an earlier report
        // was applied (Lambda's reports carry the billed duration; on Managed Instances they may
        // not, and the memory of recent reports is all there is).
        let on_report = self
            .on_report
            .as_ref()
            .filter(|_| event.duration_ms > 0.0 && self.recent().first(Kind::Report, event.request_id, event.time))
            .map(Arc::clone);
        let status = event.status;
        let error_type: Option<Box<str>> = (!event.error_type.is_empty()).then(|| event.error_type.into());
        let held = error_type.as_ref().map_or(0, |t| t.len());
        let (duration_ms, billed_duration_ms, max_memory_used_mb, init_duration_ms) = (
            event.duration_ms,
            event.billed_duration_ms,
            event.max_memory_used_mb,
            event.init_duration_ms,
        );
        let fill = move |r: &mut Record| {
            if let Some(on_report) = on_report
                && r.billed_duration_ms == 0
            {
                on_report(duration_ms);
            }
            if status.is_some() {
                r.status = status;
            }
            if let Some(error_type) = error_type {
                r.extra_mut().error_type = Some(error_type);
            }
            if duration_ms > 0.0 {
                r.duration_ms = duration_ms;
            }
            if billed_duration_ms > 0 {
                r.billed_duration_ms = billed_duration_ms;
            }
            if max_memory_used_mb > 0 {
                r.max_memory_used_mb = max_memory_used_mb;
            }
            if init_duration_ms > 0.0 {
                r.extra_mut().init_duration_ms = init_duration_ms;
            }
            r.reported = true;
        };
        self.store.update(event.request_id, size_of_val(&fill) + held, fill);
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        // A panic aborts the process (panic = "abort"), so a poisoned lock holds consistent data.
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn trace_heap_bytes(trace: &TraceId) -> usize {
    match trace {
        TraceId::Xray(_) => 0,
        TraceId::Text(text) => text.len(),
    }
}

/// Events remembered to recognise a delivery seen before: far more than one batch holds
/// (Lambda buffers at most 10,000 events, most of them neither starts nor reports, and a
/// redelivery follows its first delivery closely). 8 bytes each, plus the set's slots.
const MAX_RECENT: usize = 2048;

#[derive(Clone, Copy, Hash)]
enum Kind {
    Start,
    Report,
}

/// The recent starts and reports, as keyed hashes of (kind, request id, time): a collision (about
/// n²/2⁶⁵ for n events) can only make one event look like a repeat.
#[derive(Default)]
struct Recent {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    hasher: RandomState,
}

impl Recent {
    /// Whether this event was not seen before; remembers it.
    fn first(&mut self, kind: Kind, request_id: &str, time: &str) -> bool {
        let key = self.hasher.hash_one((kind, request_id, time));
        if !self.seen.insert(key) {
            return false;
        }
        if self.order.len() >= MAX_RECENT
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(key);
        true
    }
}
