//! The exporter: moves finished records from the store into batches, seals a batch when it is due,
//! and uploads sealed batches oldest first.
//!
//! When it uploads is the whole point (docs/architecture.md, "The S3 export"): on Lambda Managed
//! Instances, whose environments are not frozen and whose invocations overlap, from its own task
//! whenever a batch is due; on on-demand environments, which freeze once every extension has asked
//! for the next event, when the event loop opens the post-invoke window (`prepare`, then
//! `upload_window` once the function has answered).
//! At SHUTDOWN everything left is written (records not yet finished marked `"complete":false`)
//! and sent by the deadline; what cannot be sent is counted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::batch::{Batch, Limits};
use super::key::object_key;
use super::logs::{LogBuffer, LogEvent};
use super::queue::{Pending, Queue};
use crate::history::{Record, RequestId, Store};
use crate::http_client;
use crate::local_api::write_record;
use crate::log::Logger;
use crate::s3::client::{Bucket, PutError};
use crate::time::{Clock, Timestamp};

/// How often the exporter looks for finished records.
const COLLECT_INTERVAL: Duration = Duration::from_millis(200);
/// One PUT's bound.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts of one batch before it is dropped (counted).
const MAX_ATTEMPTS: u32 = 5;
/// The first retry's wait; each next one doubles, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Compressed batches waiting for an upload, at most.
pub const QUEUE_BYTES: usize = 8 << 20;
/// A record begun this long ago is finished whatever telemetry says: Lambda's longest timeout
/// (15 minutes) and a margin. Its line says `"complete":false`.
const GIVE_UP_AFTER_NS: i64 = 16 * 60 * 1_000_000_000;
/// So is a record this many invocations behind the newest (its report was lost): it bounds the
/// records written out of order, and what each look at the store visits.
const MAX_BEHIND: u64 = 1024;

/// What the exporter needs to know of its environment.
pub struct Settings {
    pub limits: Limits,
    pub prefix: String,
    pub function_name: String,
    pub environment_id: String,
    /// Upload from the exporter's own task whenever a batch is due (Managed Instances).
    pub background: bool,
    /// Telemetry is subscribed: a record is finished when its report is in. Without it, a record
    /// is finished once a newer one exists (on-demand environments run one at a time).
    pub telemetry: bool,
    /// The log events that ride along (`_EXPORT_LOGS`, telemetry on): each invocation's line
    /// carries those of its request id (`"logs":[…]`); others are lines of their own.
    pub logs: Option<Arc<LogBuffer>>,
    /// The environment's first line (`"type":"environment","event":"start"`), one JSON object.
    pub start_line: Vec<u8>,
}

/// The export's counters, for the summary line and `/environment` (which shows them as they are).
pub type Stats = crate::local_api::ExportCounts;

/// The running exporter.
pub struct Exporter {
    stop: watch::Sender<Option<(Instant, String)>>,
    task: JoinHandle<()>,
    stats: Arc<Mutex<Stats>>,
    requests: mpsc::Sender<Request>,
    store: Arc<Store>,
    logs: Option<Arc<LogBuffer>>,
    unsent: Arc<Mutex<Unsent>>,
}

/// What the task holds and has not sent, as of its last change: what a forced stop gives up.
#[derive(Clone, Copy, Debug, Default)]
struct Unsent {
    /// A batch's upload is under way (popped from the queue).
    uploading: bool,
    /// Log events in the batch being filled, the queue and the upload under way.
    log_events: u64,
}

/// The shutdown's notice: its deadline and reason, once it comes.
type StopReceiver = watch::Receiver<Option<(Instant, String)>>;

/// Kept before the shutdown's deadline for the task to count and hand over what it could not
/// send, so that it ends by the deadline itself and is never cut off in the middle of counting.
const WRAP_UP: Duration = Duration::from_millis(10);

/// When the task's uploads must end, once the shutdown has come: its deadline less `WRAP_UP`.
fn stop_deadline(stop: &StopReceiver) -> Option<Instant> {
    stop.borrow().as_ref().map(|(deadline, _)| wrap_up_at(*deadline))
}

fn wrap_up_at(deadline: Instant) -> Instant {
    deadline.checked_sub(WRAP_UP).unwrap_or(deadline)
}

/// What the event loop asks of the exporter's task, on on-demand environments.
enum Request {
    /// Write what finished, seal a due batch; answer whether batches wait for an upload.
    Prepare(oneshot::Sender<bool>),
    /// Upload what waits, each batch once at most, by the instant given.
    Upload(Instant, oneshot::Sender<()>),
}

/// The post-invoke window's own bound: what an on-demand invocation's billed time may grow by.
pub const WINDOW_BUDGET: Duration = Duration::from_secs(2);

impl Exporter {
    #[must_use]
    pub fn start(store: Arc<Store>, bucket: Bucket, settings: Settings, clock: Clock, log: Logger) -> Self {
        let (stop, stopped) = watch::channel(None);
        let (requests, requested) = mpsc::channel(1);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let unsent = Arc::new(Mutex::new(Unsent::default()));
        let logs = settings.logs.clone();
        let work = Work {
            store: Arc::clone(&store),
            bucket,
            settings,
            clock,
            log,
            stats: Arc::clone(&stats),
            cursor: 0,
            written: BTreeSet::new(),
            batch: Batch::new(),
            queue: Queue::new(QUEUE_BYTES),
            seq: 0,
            retry_at: None,
            in_flight: None,
            unsent: Arc::clone(&unsent),
        };
        let task = tokio::spawn(work.run(stopped, requested));
        Self {
            stop,
            task,
            stats,
            requests,
            store,
            logs,
            unsent,
        }
    }

    /// Writes what finished and seals a due batch; whether batches wait for an upload.
    pub async fn prepare(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::Prepare(reply)).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Uploads what waits (each batch once at most, a failed one kept for later) within
    /// `WINDOW_BUDGET`.
    pub async fn upload_window(&self) {
        let (reply, done) = oneshot::channel();
        let deadline = Instant::now() + WINDOW_BUDGET;
        if self.requests.send(Request::Upload(deadline, reply)).await.is_ok() {
            let _ = tokio::time::timeout_at(deadline + Duration::from_millis(50), done).await;
        }
    }

    /// The counters as they are now (for `/environment`).
    pub fn stats_reader(&self) -> impl Fn() -> Stats + Send + Sync + 'static {
        let stats = Arc::clone(&self.stats);
        let logs = self.logs.clone();
        move || {
            let mut stats = *stats.lock().unwrap_or_else(PoisonError::into_inner);
            stats.dropped_log_events += logs.as_ref().map_or(0, |l| l.dropped());
            stats
        }
    }

    /// Writes what is left and the environment's last line (with `reason`), sends it all by
    /// `deadline`; returns the counters.
    pub async fn shutdown(self, deadline: Instant, reason: &str) -> Stats {
        let _ = self.stop.send(Some((deadline, reason.to_owned())));
        // The task bounds its own work, an upload under way included, by the deadline; if it has
        // not finished by then it is given up, and what it had not sent is counted as dropped.
        // The margin Lambda's deadline keeps after `deadline` is for the summary line.
        let mut task = self.task;
        let finished = tokio::time::timeout_at(deadline, &mut task).await.is_ok();
        let mut stats = *self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(logs) = &self.logs {
            stats.dropped_log_events += logs.dropped();
        }
        if !finished {
            task.abort();
            let accounted = stats.invocations + stats.dropped_invocations + stats.evicted;
            stats.dropped_invocations += self.store.counts().served.saturating_sub(accounted);
            let unsent = *self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
            // Log events in batches not sent, and those still waiting for their invocation.
            let waiting = self.logs.as_ref().map_or(0, |l| l.take_all().len() as u64);
            stats.dropped_log_events += unsent.log_events + waiting;
            // What was queued, and the batch whose upload was under way.
            stats.dropped_batches += stats.queued_batches + u64::from(unsent.uploading);
            stats.queued_batches = 0;
            stats.queued_bytes = 0;
        }
        stats
    }
}

struct Work {
    store: Arc<Store>,
    bucket: Bucket,
    settings: Settings,
    clock: Clock,
    log: Logger,
    stats: Arc<Mutex<Stats>>,
    /// Every record up to this sequence is written.
    cursor: u64,
    /// Records after `cursor` already written (they finished before an older one).
    written: BTreeSet<u64>,
    batch: Batch,
    queue: Queue,
    /// The last object's sequence number in this environment.
    seq: u64,
    /// No upload before this instant (a retry's backoff).
    retry_at: Option<Instant>,
    /// The log events of the batch whose upload is under way.
    in_flight: Option<usize>,
    /// Published by `publish` for a forced stop.
    unsent: Arc<Mutex<Unsent>>,
}

impl Work {
    async fn run(mut self, mut stopped: StopReceiver, mut requested: mpsc::Receiver<Request>) {
        let start_line = std::mem::take(&mut self.settings.start_line);
        self.batch.push(&start_line, false, (self.clock)());
        let (deadline, reason) = loop {
            // An upload may have seen the stop (and taken its notice) while it ran.
            if let Some(stop) = stopped.borrow().clone() {
                break stop;
            }
            tokio::select! {
                changed = stopped.changed() => match (changed, stopped.borrow().clone()) {
                    (Ok(()), Some(stop)) => break stop,
                    (Err(_), _) => break (Instant::now(), String::new()),
                    _ => {}
                },
                Some(request) = requested.recv() => {
                    match request {
                        Request::Prepare(reply) => {
                            self.collect(false);
                            self.seal_if_due();
                            let _ = reply.send(!self.queue.is_empty());
                        }
                        Request::Upload(deadline, reply) => {
                            self.upload_ready(Some(deadline), false, Some(&mut stopped)).await;
                            let _ = reply.send(());
                        }
                    }
                    continue;
                }
                () = tokio::time::sleep(COLLECT_INTERVAL) => {}
            }
            self.collect(false);
            // On-demand, batches are sealed when the event loop opens a window (`Prepare`), so
            // the environment's last line joins the last of them rather than an object of its own.
            if self.settings.background {
                self.seal_if_due();
                self.upload_ready(None, false, Some(&mut stopped)).await;
            }
        };
        // SHUTDOWN: everything, finished or not, the environment's last line, then every batch by
        // the deadline.
        self.collect(true);
        let end_line = self.end_line(&reason);
        self.batch.push(&end_line, false, (self.clock)());
        self.seal();
        self.upload_ready(Some(wrap_up_at(deadline)), true, None).await;
        self.queue.drop_all();
        self.publish();
    }

    /// Writes the finished records after the cursor into the batch (`all`: every record), each
    /// with its log events, then the log events no record waiting can claim.
    fn collect(&mut self, all: bool) {
        let counts = self.store.counts();
        let first = counts.served - counts.retained + 1;
        if self.cursor + 1 < first {
            // The store evicted records before they were written.
            let evicted = first - 1 - self.cursor - self.written.range(..first).count() as u64;
            self.stats().evicted += evicted;
            self.cursor = first - 1;
            self.written = self.written.split_off(&first);
        }
        let now = (self.clock)();
        let (telemetry, newest) = (self.settings.telemetry, counts.served);
        let mut finished: Vec<Finished> = Vec::new();
        let mut waiting = Waiting::default();
        self.store.visit(self.cursor, counts.served, usize::MAX, |record| {
            waiting.starts.insert(record.sequence, record.invocated_at);
            if self.written.contains(&record.sequence) {
                return;
            }
            let complete = if telemetry { record.reported } else { record.sequence < newest };
            let given_up = now.0.saturating_sub(record.invocated_at.0) > GIVE_UP_AFTER_NS || record.sequence + MAX_BEHIND <= newest;
            if complete || given_up || all {
                finished.push(Finished {
                    sequence: record.sequence,
                    request_id: record.request_id.clone(),
                    started: record.invocated_at,
                    line: invocation_line(record, complete),
                });
            } else {
                waiting.ids.insert(record.request_id.clone());
                waiting.oldest_start = Some(waiting.oldest_start.map_or(record.invocated_at, |t| t.min(record.invocated_at)));
            }
        });
        let mut logs = self
            .settings
            .logs
            .as_ref()
            .map(|buffer| Claims::new(buffer.take_all(), !self.settings.background));
        for mut record in finished {
            if let Some(logs) = &mut logs {
                // On-demand, a line that names no request id belongs to the invocation in whose
                // span it came: from its start to the next invocation's.
                let until = waiting.starts.get(&(record.sequence + 1)).copied().unwrap_or(Timestamp(i64::MAX));
                let claimed = logs.claim(&record.request_id, record.started, until, &mut record.line);
                self.batch.count_log_events(claimed);
            } else {
                record.line.push(b'}');
            }
            // A full batch is sealed before the next line, so no object holds more invocations
            // than the limits allow; the environment's last line still rides in the last one.
            self.seal_if_due();
            self.batch.push(&record.line, true, now);
            self.written.insert(record.sequence);
        }
        if let (Some(mut logs), Some(buffer)) = (logs, &self.settings.logs) {
            let (keep, lines) = logs.release(&waiting, all);
            buffer.put_back(keep);
            for line in lines {
                self.seal_if_due();
                self.batch.push(&line, false, now);
                self.batch.count_log_events(1);
            }
        }
        while self.written.remove(&(self.cursor + 1)) {
            self.cursor += 1;
        }
        self.publish();
    }

    fn seal_if_due(&mut self) {
        if self.batch.is_due(&self.settings.limits, (self.clock)()) {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if let Some(sealed) = std::mem::take(&mut self.batch).seal() {
            self.seq += 1;
            self.queue.push(Pending {
                batch: sealed,
                seq: self.seq,
                attempts: 0,
            });
            self.publish();
        }
    }

    /// Uploads queued batches, oldest first, until the queue is empty, `deadline` comes, or a
    /// failure asks to wait; `persist` (at SHUTDOWN) retries at once instead, as long as attempts
    /// and the deadline allow. While `stop` is given, a stop that comes during an upload bounds
    /// it by the shutdown's deadline, and no other begins.
    async fn upload_ready(&mut self, mut deadline: Option<Instant>, persist: bool, mut stop: Option<&mut StopReceiver>) {
        while let Some(mut pending) = self.queue.pop() {
            if let Some(stopping) = stop.as_deref().and_then(stop_deadline) {
                deadline = Some(deadline.map_or(stopping, |d| d.min(stopping)));
            }
            let now = Instant::now();
            let stopped = stop.as_deref().is_some_and(|rx| rx.borrow().is_some());
            if stopped || deadline.is_some_and(|d| d <= now) || (!persist && self.retry_at.is_some_and(|at| now < at)) {
                self.queue.put_back(pending);
                return;
            }
            let wait = deadline.map_or(UPLOAD_TIMEOUT, |d| UPLOAD_TIMEOUT.min(d - now));
            let key = object_key(
                &self.settings.prefix,
                &self.settings.function_name,
                pending.batch.opened,
                &self.settings.environment_id,
                pending.seq,
            );
            let body = pending.batch.body.clone();
            self.in_flight = Some(pending.batch.log_events);
            self.publish();
            let put = self.bucket.put_ndjson_gz(&key, body, (self.clock)(), wait);
            let outcome = match stop.as_deref_mut() {
                None => put.await,
                Some(rx) => {
                    let mut put = std::pin::pin!(put);
                    tokio::select! {
                        outcome = &mut put => outcome,
                        _ = rx.changed() => {
                            // SHUTDOWN came while this PUT runs: it may go on until the shutdown's
                            // deadline, not past it (the summary line needs the margin after it).
                            match stop_deadline(rx) {
                                Some(stopping) => {
                                    deadline = Some(stopping);
                                    let left = stopping.saturating_duration_since(Instant::now());
                                    tokio::time::timeout_at(stopping, put)
                                        .await
                                        .unwrap_or(Err(PutError::Transport(http_client::Error::Timeout(left))))
                                }
                                None => put.await,
                            }
                        }
                    }
                }
            };
            self.in_flight = None;
            match outcome {
                Ok(()) => {
                    self.retry_at = None;
                    let mut stats = self.stats();
                    stats.batches += 1;
                    stats.bytes += pending.batch.body.len() as u64;
                    stats.invocations += pending.batch.invocations as u64;
                    stats.log_events += pending.batch.log_events as u64;
                }
                Err(e) => {
                    pending.attempts += 1;
                    // At SHUTDOWN a failure past the deadline has no retry to come (a window's
                    // deadline passing only sends the batch to the next window).
                    let stopping = persist || stop.as_deref().is_some_and(|rx| rx.borrow().is_some());
                    let time_left = deadline.is_none_or(|d| Instant::now() < d);
                    let retry = e.is_retryable() && pending.attempts < MAX_ATTEMPTS && (time_left || !stopping);
                    self.log.warn(
                        "S3 export: upload failed",
                        &[
                            ("key", key.as_str().into()),
                            ("error", e.to_string().as_str().into()),
                            ("attempt", u64::from(pending.attempts).into()),
                            ("retry", retry.into()),
                        ],
                    );
                    if retry {
                        self.stats().retries += 1;
                        let backoff = FIRST_BACKOFF.saturating_mul(1 << (pending.attempts - 1).min(16)).min(MAX_BACKOFF);
                        self.retry_at = Some(Instant::now() + backoff);
                        self.queue.put_back(pending);
                        if !persist {
                            self.publish();
                            return;
                        }
                    } else {
                        // Not retryable, or out of attempts.
                        self.queue.discard(&pending);
                    }
                }
            }
            self.publish();
        }
    }

    /// `{"type":"environment","event":"shutdown",…}`: the reason, the store's counters and what
    /// the init phase reported.
    fn end_line(&self, reason: &str) -> Vec<u8> {
        let counts = self.store.counts();
        let init = self.store.init();
        let line = serde_json::json!({
            "type": "environment",
            "event": "shutdown",
            "environmentId": self.settings.environment_id,
            "at": (self.clock)().to_string(),
            "reason": reason,
            "served": counts.served,
            "retained": counts.retained,
            "dropped": counts.dropped,
            "init": {
                "type": init.init_type,
                "status": init.init_status,
                "durationMs": init.init_duration_ms,
                "runtimeVersion": init.runtime_version,
            },
        });
        serde_json::to_vec(&line).unwrap_or_default()
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self) {
        let (dropped, queued_batches, queued_bytes) = (self.queue.dropped(), self.queue.len() as u64, self.queue.bytes() as u64);
        {
            let mut stats = self.stats();
            stats.dropped_batches = dropped.batches;
            stats.dropped_invocations = dropped.invocations;
            stats.dropped_log_events = dropped.log_events;
            stats.queued_batches = queued_batches;
            stats.queued_bytes = queued_bytes;
        }
        let log_events = self.batch.log_events() + self.queue.log_events() + self.in_flight.unwrap_or(0);
        *self.unsent.lock().unwrap_or_else(PoisonError::into_inner) = Unsent {
            uploading: self.in_flight.is_some(),
            log_events: log_events as u64,
        };
    }
}

/// A record ready to be written.
struct Finished {
    sequence: u64,
    request_id: RequestId,
    started: Timestamp,
    /// Its line, open: `"logs"` may follow before the closing brace.
    line: Vec<u8>,
}

/// The records not finished yet, and when every record visited started.
#[derive(Default)]
struct Waiting {
    ids: HashSet<RequestId>,
    oldest_start: Option<Timestamp>,
    starts: HashMap<u64, Timestamp>,
}

/// The log events taken from the buffer for one collect: claimed by the records written, the rest
/// released as lines of their own or kept for records still waiting.
struct Claims {
    events: Vec<Option<LogEvent>>,
    /// Events by the request id they name.
    by_id: HashMap<RequestId, Vec<usize>>,
    /// Function and extension events that name none, in arrival order.
    anonymous: Vec<usize>,
    /// Anonymous events can be attributed by time: one invocation at a time runs.
    by_time: bool,
}

impl Claims {
    fn new(events: Vec<LogEvent>, by_time: bool) -> Self {
        let mut by_id: HashMap<RequestId, Vec<usize>> = HashMap::new();
        let mut anonymous = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match &event.request_id {
                Some(id) => by_id.entry(id.clone()).or_default().push(i),
                None if !event.platform => anonymous.push(i),
                None => {} // the environment's: released as a line of its own
            }
        }
        Self {
            events: events.into_iter().map(Some).collect(),
            by_id,
            anonymous,
            by_time,
        }
    }

    /// Appends `,"logs":[…]}` to the open `line`: the events naming `id`, and on-demand the
    /// anonymous ones that came in `[from, until)`. Returns how many.
    fn claim(&mut self, id: &RequestId, from: Timestamp, until: Timestamp, line: &mut Vec<u8>) -> usize {
        let mut mine: Vec<usize> = self.by_id.remove(id).unwrap_or_default();
        if self.by_time {
            let events = &self.events;
            let in_span = |&i: &usize| {
                events[i]
                    .as_ref()
                    .is_some_and(|e| e.time.0 != 0 && from <= e.time && e.time < until)
            };
            mine.extend(self.anonymous.iter().copied().filter(in_span));
            mine.sort_unstable();
        }
        line.extend_from_slice(b",\"logs\":[");
        let mut claimed = 0;
        for i in mine {
            if let Some(event) = self.events[i].take() {
                if claimed > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(&event.json);
                claimed += 1;
            }
        }
        line.extend_from_slice(b"]}");
        claimed
    }

    /// The events to keep for records still waiting, and the lines of those no waiting record
    /// can claim (`all`: none is kept).
    fn release(&mut self, waiting: &Waiting, all: bool) -> (Vec<LogEvent>, Vec<Vec<u8>>) {
        let (mut keep, mut lines) = (Vec::new(), Vec::new());
        for event in self.events.drain(..).flatten() {
            let claimable = !all
                && match &event.request_id {
                    Some(id) => waiting.ids.contains(id),
                    None => self.by_time && !event.platform && event.time.0 != 0 && waiting.oldest_start.is_some_and(|t| event.time >= t),
                };
            if claimable {
                keep.push(event);
            } else {
                lines.push(log_line(&event));
            }
        }
        (keep, lines)
    }
}

/// `{"type":"invocation","complete":…,"record":{…as the local API shows it…}`, left open.
fn invocation_line(record: &Record, complete: bool) -> Vec<u8> {
    let mut line = Vec::with_capacity(512);
    line.extend_from_slice(if complete {
        b"{\"type\":\"invocation\",\"complete\":true,\"record\":"
    } else {
        b"{\"type\":\"invocation\",\"complete\":false,\"record\":"
    });
    write_record(&mut line, record);
    line
}

/// `{"type":"log","requestId":"…"|null,"event":{…as Lambda sent it…}}`: an event no invocation's
/// line carries (it names none written here, came outside any invocation, or came late).
fn log_line(event: &LogEvent) -> Vec<u8> {
    let mut line = Vec::with_capacity(event.json.len() + 96);
    line.extend_from_slice(b"{\"type\":\"log\",\"requestId\":");
    match &event.request_id {
        Some(id) => {
            let _ = serde_json::to_writer(&mut line, &id.to_string());
        }
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"event\":");
    line.extend_from_slice(&event.json);
    line.push(b'}');
    line
}

#[cfg(test)]
pub(crate) mod tests;
