//! Log lines waiting for their invocation's line (`INVOCATION_HISTORY_EXTENSION_EXPORT_LOGS`).
//!
//! The Telemetry API posts the function's and the extensions' output (and the platform's events)
//! as events `{"time","type","record"}`; each event of a stream the export asks for is kept here,
//! as Lambda sent it, with the request id it names, until the exporter writes the invocation it
//! belongs to. Where a function's or extension's event names no request id (a `print` in text log
//! format), the exporter attributes it by time; a platform event that names none is the environment's. The buffer is bounded in bytes; an event that does not fit is dropped
//! and counted.
//!
//! Where a request id is found: a JSON record's `requestId` (Python, Node.js and the platform's
//! events) or `AWSRequestId` (Java); a string record that holds such a JSON object (emulators send
//! JSON log lines as strings); in a text line, a UUID among its first three tab-separated fields
//! (the runtimes' text format: `[INFO]\t<time>\t<id>\t…` in Python, `<time>\t<id>\tINFO\t…` in
//! Node.js).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::LogStreams;
use crate::history::{MAX_REQUEST_ID_BYTES, RequestId};
use crate::time::Timestamp;

/// What a kept event costs besides its bytes (the entry, its id), counted against the bound.
const ENTRY_OVERHEAD: usize = 64;

/// One event of a log stream, as Lambda sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    /// The event's `time`; zero when it had none that parses.
    pub time: Timestamp,
    pub request_id: Option<RequestId>,
    /// A `platform.*` event: those that concern an invocation name it, so one that names none
    /// (init, extension and subscription events) is the environment's, whatever its time.
    pub platform: bool,
    /// The event object, one line of JSON.
    pub json: Box<[u8]>,
}

impl LogEvent {
    fn cost(&self) -> usize {
        self.json.len() + ENTRY_OVERHEAD
    }
}

/// Events waiting for the exporter, oldest first, bounded in bytes.
pub struct LogBuffer {
    streams: LogStreams,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    events: VecDeque<LogEvent>,
    bytes: usize,
    dropped: u64,
}

impl LogBuffer {
    #[must_use]
    pub fn new(streams: LogStreams, max_bytes: usize) -> Self {
        Self {
            streams,
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    #[must_use]
    pub fn streams(&self) -> LogStreams {
        self.streams
    }

    /// Keeps the events of the streams asked for from a telemetry batch (a JSON array; elements
    /// that are not an event object are skipped).
    pub fn push_batch(&self, body: &[u8]) {
        let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(body) else {
            return;
        };
        let mut inner = self.lock();
        for element in elements {
            let Some(event) = self.event(element) else { continue };
            if inner.bytes + event.cost() > self.max_bytes {
                inner.dropped += 1;
                continue;
            }
            inner.bytes += event.cost();
            inner.events.push_back(event);
        }
    }

    fn event(&self, element: &RawValue) -> Option<LogEvent> {
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(borrow, default)]
            time: Option<Cow<'a, str>>,
            #[serde(rename = "type", borrow, default)]
            kind: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            record: Option<&'a RawValue>,
        }
        let fields: Fields<'_> = serde_json::from_str(element.get()).ok()?;
        let kind = fields.kind.as_deref().unwrap_or("");
        let platform = kind.starts_with("platform.");
        let wanted = match kind {
            "function" => self.streams.function,
            "extension" => self.streams.extension,
            _ => self.streams.platform && platform,
        };
        if !wanted {
            return None;
        }
        // JSON keeps line breaks inside strings escaped; any left are whitespace between tokens,
        // which NDJSON cannot carry.
        let json: Box<[u8]> = element
            .get()
            .bytes()
            .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect();
        Some(LogEvent {
            time: fields.time.as_deref().and_then(Timestamp::parse_rfc3339).unwrap_or(Timestamp(0)),
            request_id: fields.record.and_then(request_id_of),
            platform,
            json,
        })
    }

    /// Takes every waiting event, oldest first.
    pub fn take_all(&self) -> Vec<LogEvent> {
        let mut inner = self.lock();
        inner.bytes = 0;
        inner.events.drain(..).collect()
    }

    /// Puts back events taken that are still waiting for their invocation, before anything that
    /// came meanwhile (they were counted against the bound when they came).
    pub fn put_back(&self, events: Vec<LogEvent>) {
        let mut inner = self.lock();
        for event in events.into_iter().rev() {
            inner.bytes += event.cost();
            inner.events.push_front(event);
        }
    }

    /// Events dropped because the buffer was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The request id an event's record names, if any (see the module's notes).
#[must_use]
pub fn request_id_of(record: &RawValue) -> Option<RequestId> {
    let raw = record.get();
    if raw.starts_with('{') {
        return id_in_object(raw);
    }
    let text: Cow<'_, str> = serde_json::from_str(raw).ok()?;
    if text.trim_start().starts_with('{') {
        return id_in_object(text.trim());
    }
    text.split('\t')
        .take(3)
        .map(RequestId::new)
        .find(|id| matches!(id, RequestId::Uuid(_)))
}

fn id_in_object(json: &str) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct Ids<'a> {
        #[serde(rename = "requestId", borrow, default)]
        request_id: Option<Cow<'a, str>>,
        #[serde(rename = "AWSRequestId", borrow, default)]
        aws_request_id: Option<Cow<'a, str>>,
    }
    let ids: Ids<'_> = serde_json::from_str(json).ok()?;
    let id = ids.request_id.or(ids.aws_request_id)?;
    (!id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES).then(|| RequestId::new(&id))
}

#[cfg(test)]
mod tests;
