//! The two bodies the proxy streams: the runtime's request on its way to Lambda (counted, and
//! peeked at for an error's type), and Lambda's answer on its way back (its upstream connection
//! returned to the pool once it is read whole). Frames pass one at a time, never collected.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderMap;
use hyper::{Method, Uri};

use super::Shared;
use super::parse::{self, HEADER_ERROR_TYPE, MAX_ERROR_TYPE_BYTES};
use super::upstream::Kept;
use crate::serve::BoxError;

/// What the proxy keeps of an `/error` body to read its `errorType` when the runtime sends no
/// `Lambda-Runtime-Function-Error-Type` header (awslambdaric does not).
pub const MAX_ERROR_BODY_PEEK: usize = 64 << 10;

/// What a runtime's answer body told the proxy as it streamed through. Shared between the
/// connection task that sends the body and the handler that records the answer: Lambda may
/// answer before that task has returned from its last read.
pub(super) struct Tally {
    bytes: AtomicU64,
    peek_limit: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    peek: Vec<u8>,
    trailer_error_type: Option<Box<str>>,
}

impl Tally {
    /// A tally that keeps the first `peek_limit` bytes of the body (0: none).
    pub(super) fn new(peek_limit: usize) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            peek_limit,
            seen: Mutex::new(Seen::default()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, data: &Bytes) {
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.peek_limit > 0 {
            let mut seen = self.seen();
            let room = self.peek_limit.saturating_sub(seen.peek.len());
            seen.peek.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn trailers(&self, trailers: &HeaderMap) {
        if let Some(t) = trailers
            .get(HEADER_ERROR_TYPE)
            .and_then(|v| parse::header_text(v, MAX_ERROR_TYPE_BYTES))
        {
            self.seen().trailer_error_type = Some(t.into());
        }
    }

    /// Body bytes seen so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The error type of a streamed response that failed mid-way (sent as a trailer).
    pub(super) fn trailer_error_type(&self) -> Option<Box<str>> {
        self.seen().trailer_error_type.take()
    }

    /// The `errorType` of the peeked body, when it is an error body that fitted the peek.
    pub(super) fn body_error_type(&self) -> Option<Box<str>> {
        parse::error_type_from_body(&self.seen().peek).map(String::into_boxed_str)
    }
}

/// The runtime's body failed (it went away mid-body): not the upstream's fault.
#[derive(Debug)]
pub(super) struct RuntimeBodyError(pub hyper::Error);

impl std::fmt::Display for RuntimeBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "runtime's request body: {}", self.0)
    }
}

impl std::error::Error for RuntimeBodyError {}

/// The runtime's request body on its way upstream.
pub(super) struct ForwardBody {
    inner: Incoming,
    tally: Option<Arc<Tally>>,
}

impl ForwardBody {
    pub(super) fn new(inner: Incoming, tally: Option<Arc<Tally>>) -> Self {
        Self { inner, tally }
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = RuntimeBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(RuntimeBodyError(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(tally) = &this.tally {
            if let Some(data) = frame.data_ref() {
                tally.add(data);
            } else if let Some(trailers) = frame.trailers_ref() {
                tally.trailers(trailers);
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Lambda's answer on its way to the runtime. It holds the upstream connection: read whole, the
/// connection goes back to the pool; dropped before its end (the runtime went away), the
/// connection is closed with it, so Lambda sees the runtime leave as it would without the proxy.
pub(super) struct UpstreamBody {
    inner: Incoming,
    lease: Option<Kept>,
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
}

impl UpstreamBody {
    pub(super) fn new(inner: Incoming, lease: Kept, shared: Arc<Shared>, method: Method, uri: Uri) -> Self {
        let mut body = Self {
            inner,
            lease: Some(lease),
            shared,
            method,
            uri,
        };
        // A body known to be empty may never be polled: its connection is free now.
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some(kept) = self.lease.take() {
            self.shared.upstream.release(kept);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.lease.is_some() {
            self.shared.runtime_disconnected(&self.method, self.uri.path());
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // The server stops polling once the body says it is at its end.
                if this.inner.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.lease = None;
                this.shared.upstream_failed_midway(&this.method, this.uri.path(), &e);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
