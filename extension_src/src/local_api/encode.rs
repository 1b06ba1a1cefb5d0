//! The JSON of records, written by hand and streamed a page at a time.
//!
//! A full store (10,000 records, ~2.5 MB of JSON) is never copied nor built whole in memory: the
//! list body encodes `PAGE_RECORDS` records at a time, straight from the store, into a buffer
//! handed to hyper as one body frame, and hyper asks for the next page only once it has room for
//! it. The bytes are exactly what serde_json makes of the equivalent struct (the tests compare them
//! over generated records): strings and numbers go through serde_json itself, and the field order
//! and omissions are those of the Go extension's `appendRecord`.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::history::{Record, RequestId, Store, TraceId, Window};
use crate::serve::BoxError;
use crate::time::Timestamp;

/// Records encoded per body frame, under the store's lock. A Lambda-shaped record is ~430 bytes
/// of JSON and ~0.25 µs to encode, so a page is ~110 KB and holds the lock ~65 µs: a writer (the
/// event loop recording an INVOKE) waits no longer than that behind a reader of the whole store.
/// Measured on 10,000 such records (4.3 MB): 64 a page 4.6 ms p50, 128 4.0, 256 3.9, 512 3.8 to
/// 4.2 with a longer tail; fewer, larger writes cost the loopback less per byte.
pub const PAGE_RECORDS: usize = 256;

/// Appends `record` as the API shows it: a field that is not known (zero, empty, not finite) is
/// omitted.
pub fn write_record(out: &mut Vec<u8>, record: &Record) {
    out.extend_from_slice(b"{\"awsRequestId\":");
    write_request_id(out, &record.request_id);
    out.extend_from_slice(b",\"invocatedAt\":");
    write_time(out, record.invocated_at);
    out.extend_from_slice(b",\"sequence\":");
    write_json(out, &record.sequence);
    if record.deadline_ms != 0 {
        out.extend_from_slice(b",\"deadlineMs\":");
        write_json(out, &record.deadline_ms);
    }
    if let Some(arn) = record.invoked_function_arn.as_deref().filter(|a| !a.is_empty()) {
        out.extend_from_slice(b",\"invokedFunctionArn\":");
        write_json(out, arn);
    }
    if let Some(trace) = &record.trace_id {
        out.extend_from_slice(b",\"traceId\":");
        write_trace_id(out, trace);
    }
    out.extend_from_slice(if record.cold_start {
        b",\"coldStart\":true"
    } else {
        b",\"coldStart\":false"
    });
    if let Some(status) = record.status {
        out.extend_from_slice(b",\"status\":");
        write_json(out, status.as_str());
    }
    write_optional_float(out, b",\"durationMs\":", record.duration_ms);
    if record.billed_duration_ms != 0 {
        out.extend_from_slice(b",\"billedDurationMs\":");
        write_json(out, &record.billed_duration_ms);
    }
    if record.max_memory_used_mb != 0 {
        out.extend_from_slice(b",\"maxMemoryUsedMB\":");
        write_json(out, &record.max_memory_used_mb);
    }
    if let Some(extra) = &record.extra {
        write_optional_float(out, b",\"initDurationMs\":", extra.init_duration_ms);
        if let Some(error_type) = extra.error_type.as_deref().filter(|t| !t.is_empty()) {
            out.extend_from_slice(b",\"errorType\":");
            write_json(out, error_type);
        }
        if !extra.runtime_received_at.is_zero() {
            out.extend_from_slice(b",\"runtimeReceivedAt\":");
            write_time(out, extra.runtime_received_at);
        }
        if !extra.runtime_responded_at.is_zero() {
            out.extend_from_slice(b",\"runtimeRespondedAt\":");
            write_time(out, extra.runtime_responded_at);
        }
    }
    if let Some(outcome) = record.outcome {
        out.extend_from_slice(b",\"outcome\":");
        write_json(out, outcome.as_str());
    }
    if let Some(bytes) = record.extra.as_ref().map(|e| e.response_bytes).filter(|&n| n != 0) {
        out.extend_from_slice(b",\"responseBytes\":");
        write_json(out, &bytes);
    }
    out.push(b'}');
}

/// Appends a string or a number as serde_json writes it.
pub(super) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing a string or a number into memory cannot fail.
    let _ = serde_json::to_writer(out, value);
}

fn write_optional_float(out: &mut Vec<u8>, key: &[u8], value: f64) {
    // Zero is "not known"; JSON has no NaN or infinity.
    if value != 0.0 && value.is_finite() {
        out.extend_from_slice(key);
        write_json(out, &value);
    }
}

fn write_time(out: &mut Vec<u8>, time: Timestamp) {
    // RFC 3339 needs no escaping.
    match time.rfc3339() {
        Some((text, len)) => write_quoted_ascii(out, &text[..len]),
        None => {
            let _ = write!(out, "\"{time}\"");
        }
    }
}

/// Text made of letters, digits and punctuation that JSON does not escape, quoted.
fn write_quoted_ascii(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(text);
    out.push(b'"');
}

fn write_request_id(out: &mut Vec<u8>, id: &RequestId) {
    match (id.uuid_ascii(), id) {
        (Some(text), _) => write_quoted_ascii(out, &text),
        (None, RequestId::Text(text)) => write_json(out, &**text),
        (None, RequestId::Uuid(_)) => {}
    }
}

fn write_trace_id(out: &mut Vec<u8>, trace: &TraceId) {
    match (trace.xray_ascii(), trace) {
        // Letters, digits, '-', '=' and ';' only: nothing to escape.
        (Some(text), _) => write_quoted_ascii(out, &text),
        (None, TraceId::Text(text)) => write_json(out, &**text),
        (None, TraceId::Xray(_)) => {}
    }
}

/// The fields of the list after its records.
pub(super) struct ListTail<'a> {
    pub environment_id: &'a str,
    pub served: u64,
    pub retained: u64,
    pub dropped: u64,
    pub cursor: u64,
    pub waited_for: Option<(&'a str, bool)>,
}

impl ListTail<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"],\"environmentId\":");
        write_json(&mut out, self.environment_id);
        for (key, value) in [
            (&b",\"served\":"[..], self.served),
            (b",\"retained\":", self.retained),
            (b",\"dropped\":", self.dropped),
            (b",\"cursor\":", self.cursor),
        ] {
            out.extend_from_slice(key);
            write_json(&mut out, &value);
        }
        if let Some((request_id, found)) = self.waited_for {
            out.extend_from_slice(b",\"waitedFor\":{\"requestId\":");
            write_json(&mut out, request_id);
            out.extend_from_slice(if found { b",\"found\":true}" } else { b",\"found\":false}" });
        }
        out.extend_from_slice(b"}\n");
        out
    }
}

/// Page buffers kept between list responses. With musl's allocator a fresh buffer of a page's
/// size is an `mmap` and a `munmap` (two of each per `limit=100` response, measured with
/// `strace`), so the API keeps a few written pages to fill again: at most `MAX_SPARE_PAGES`, each
/// at most `MAX_SPARE_BYTES`, so what it holds when idle stays under 512 KiB.
#[derive(Clone, Default)]
pub(super) struct PagePool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// Hyper queues a few pages before it writes them; more spares than that would only hold memory.
const MAX_SPARE_PAGES: usize = 4;
/// A page of 256 Lambda-shaped records is ~110 KB; a larger one (long ARNs, error types) is not kept.
const MAX_SPARE_BYTES: usize = 128 << 10;

impl PagePool {
    fn take(&self) -> Option<Vec<u8>> {
        self.lock().pop()
    }

    fn give(&self, mut page: Vec<u8>) {
        if page.capacity() > MAX_SPARE_BYTES {
            return;
        }
        page.clear();
        let mut spare = self.lock();
        if spare.len() < MAX_SPARE_PAGES {
            spare.push(page);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn spares(&self) -> usize {
        self.lock().len()
    }
}

/// The body of `GET /invocations`: the records of `window`, a page per frame.
pub(super) struct ListBody {
    store: Arc<Store>,
    after: u64,
    up_to: u64,
    started: bool,
    wrote_record: bool,
    /// The first page, encoded with the response's head.
    ready: Option<Vec<u8>>,
    /// Encoded once the window is known; taken by the last frame.
    tail: Option<Vec<u8>>,
    /// The largest page so far, to size the next buffer.
    page_bytes: usize,
    pool: PagePool,
}

/// A page handed to hyper; when hyper drops it, its buffer goes back to the pool.
struct Page {
    bytes: Vec<u8>,
    pool: PagePool,
}

impl AsRef<[u8]> for Page {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.bytes));
    }
}

impl ListBody {
    /// Encodes the first page at once: a list that fits in it (`limit=100`, say) is then sent
    /// whole with a `Content-Length`, not chunked.
    pub(super) fn new(store: Arc<Store>, window: Window, tail: &ListTail<'_>, pool: PagePool) -> Self {
        let mut body = Self {
            store,
            after: window.after,
            up_to: window.up_to,
            started: false,
            wrote_record: false,
            ready: None,
            tail: Some(tail.encode()),
            page_bytes: 4096,
            pool,
        };
        body.ready = body.encode_page();
        body
    }

    /// The next frame's bytes; `None` once everything is sent.
    pub(super) fn next_page(&mut self) -> Option<Vec<u8>> {
        self.ready.take().or_else(|| self.encode_page())
    }

    fn encode_page(&mut self) -> Option<Vec<u8>> {
        let tail = self.tail.take()?;
        let mut page = self.pool.take().unwrap_or_else(|| Vec::with_capacity(self.page_bytes + tail.len()));
        if !self.started {
            self.started = true;
            page.extend_from_slice(b"{\"invocations\":[");
        }
        if self.after < self.up_to {
            let mut wrote_record = self.wrote_record;
            let next = self.store.visit(self.after, self.up_to, PAGE_RECORDS, |record| {
                if wrote_record {
                    page.push(b',');
                }
                wrote_record = true;
                write_record(&mut page, record);
            });
            self.wrote_record = wrote_record;
            // No progress only if the store lost the window (it never shrinks): end the list.
            self.after = if next > self.after { next } else { self.up_to };
        }
        self.page_bytes = self.page_bytes.max(page.len());
        if self.after < self.up_to {
            self.tail = Some(tail);
        } else {
            page.extend_from_slice(&tail);
        }
        Some(page)
    }
}

impl hyper::body::Body for ListBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let body = self.get_mut();
        Poll::Ready(body.next_page().map(|bytes| {
            let page = Page {
                bytes,
                pool: body.pool.clone(),
            };
            Ok(Frame::data(Bytes::from_owner(page)))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.ready, &self.tail) {
            (Some(whole), None) => SizeHint::with_exact(whole.len() as u64),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
