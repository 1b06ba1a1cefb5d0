//! The HTTP/1 server under the extension's three listeners (local API, telemetry listener,
//! Runtime API proxy): bounded connections, bounded headers and waits, every error answered as
//! JSON, and a shutdown that ends within a deadline.
//!
//! Lambda gives the whole execution environment 1,024 file descriptors, shared with the function,
//! so each listener holds at most `Limits::max_connections`. At the limit a new caller is still
//! answered: the connection idle for longest is closed to make room, and only when every
//! connection is busy is the caller refused at once with a JSON 503 (never left in the backlog).
//! Idle keep-alive connections do not linger either: hyper (1.12, `proto/h1/conn.rs`
//! `poll_read_head`) arms the header timeout whenever it waits for a request head, including the
//! wait for the next request on a kept-alive connection, so `Limits::header_timeout` is also the
//! longest a connection stays idle (`idle_keep_alive_connections_are_closed` pins this).
//!
//! hyper answers a request it cannot parse (bad request line or header, head over the size
//! limit, too many headers, URI too long) by itself, with a bare status and no body. Those
//! answers are rewritten on their way to the socket into the documented JSON error: a write on a
//! connection that owes no response can only be one of them (see `TrackedStream`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::HOST;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::log::Logger;

/// Errors a response body may end with (a proxied upstream that breaks off, say).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the extension sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body from bytes.
#[must_use]
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// An AWS-style JSON error: `{"errorType": "...", "errorMessage": "..."}`.
#[must_use]
pub fn json_error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
    json_response(status, &body)
}

/// A JSON response with a trailing newline and its length.
#[must_use]
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The bounds of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; beyond, the longest-idle one is closed, or, when none is idle,
    /// a new caller gets a JSON 503 at once.
    pub max_connections: usize,
    /// Time to receive a request's headers; also the longest a kept-alive connection stays idle.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers); beyond, a JSON 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            max_header_bytes: 16 << 10,
        }
    }
}

/// A running listener. Dropping it stops it as `shutdown` does, without waiting.
pub struct Server {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `listener` with `handler` until `shutdown`. Each connection runs in its own task.
    pub fn start<F, Fut>(listener: TcpListener, limits: Limits, log: Logger, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, limits, log, Arc::new(handler), stopped));
        Self { stop, task }
    }

    /// Stops accepting, lets in-flight requests finish and closes idle connections, waiting at
    /// most until `deadline`; connections still open then are dropped.
    pub async fn shutdown(self, deadline: Instant) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Refusals being written at once; beyond, a caller's connection is closed without an answer
/// (it would take a flood of callers on a listener whose every connection is busy).
const MAX_REFUSALS: usize = 16;
/// How long a refused caller has to read the answer before its connection is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// One open connection, as the accept loop sees it.
struct Open {
    abort: AbortHandle,
    activity: Arc<Activity>,
}

async fn accept_loop<F, Fut>(listener: TcpListener, limits: Limits, log: Logger, handler: Arc<F>, mut stopped: watch::Receiver<bool>)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let max_connections = limits.max_connections.max(1);
    let mut open: Vec<Open> = Vec::with_capacity(max_connections.min(64));
    let mut connections = JoinSet::new();
    let mut refusals = JoinSet::new();
    let refusal: Arc<[u8]> = canned_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "TooManyConnections",
        "too many open connections to this listener; close idle connections and retry",
    )
    .into();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Header names as most servers write them (`Content-Type`, `Allow`): clients that read
        // headers into case-sensitive maps find them where they always were.
        .title_case_headers(true)
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                open.retain(|c| c.abort.id() != id);
                continue;
            }
            Some(_) = refusals.join_next(), if !refusals.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: free one of ours if we can, and wait a
                // little rather than spin.
                close_oldest_idle(&mut open);
                log.debug("accept failed", &[("error", e.to_string().as_str().into())]);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if open.len() >= max_connections && !close_oldest_idle(&mut open) {
            if refusals.len() < MAX_REFUSALS {
                refusals.spawn(refuse(stream, Arc::clone(&refusal)));
            }
            log.debug("refused a connection: every connection is busy", &[("open", open.len().into())]);
            continue;
        }
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = Arc::clone(&activity);
            let handler = Arc::clone(&handler);
            hyper::service::service_fn(move |request: Request<Incoming>| {
                activity.request_started();
                let guard = BodyEnd(Arc::clone(&activity));
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await.map(|body| TrackedBody { body, _end: guard })) }
            })
        };
        let io = TrackedStream {
            stream,
            activity: Arc::clone(&activity),
            max_header_bytes: limits.max_header_bytes,
            replacement: None,
        };
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut stopped = stopped.clone();
        let abort = connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let stopping = tokio::select! {
                _ = connection.as_mut() => false,
                _ = stopped.wait_for(|stop| *stop) => true,
            };
            if stopping {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        });
        open.push(Open { abort, activity });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    refusals.abort_all();
}

/// Closes the connection idle for longest; false when every connection is busy. An idle
/// keep-alive connection holds nothing the client needs: closing it is what its idle timeout
/// would do, only sooner.
fn close_oldest_idle(open: &mut Vec<Open>) -> bool {
    let oldest = open
        .iter()
        .enumerate()
        .filter(|(_, c)| c.activity.is_idle())
        .min_by_key(|(_, c)| c.activity.idle_since.load(Ordering::Relaxed))
        .map(|(i, _)| i);
    match oldest {
        Some(i) => {
            open.swap_remove(i).abort.abort();
            true
        }
        None => false,
    }
}

/// Answers the canned 503, then lets the caller read it: closing a socket with its request
/// unread would send a reset that can discard the answer before the caller sees it.
async fn refuse(mut stream: TcpStream, answer: Arc<[u8]>) {
    let linger = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

/// HTTP/1.1 requires exactly one Host header (RFC 9112, section 3.2); hyper does not check.
pub fn host_rejection<B>(request: &Request<B>) -> Option<Response<Body>> {
    let hosts = request.headers().get_all(HOST).iter().count();
    let valid = if request.version() == Version::HTTP_11 {
        hosts == 1
    } else {
        hosts <= 1
    };
    (!valid).then(|| {
        json_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "an HTTP/1.1 request needs exactly one Host header",
        )
    })
}

/// A whole HTTP/1.1 response closing its connection, with a JSON error body.
fn canned_response(status: StatusCode, error_type: &str, message: &str) -> Vec<u8> {
    let mut body = serde_json::to_vec(&serde_json::json!({"errorType": error_type, "errorMessage": message})).unwrap_or_default();
    body.push(b'\n');
    let mut response = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// The JSON answer replacing hyper's own bare answer `head` to a request it could not parse;
/// `None` when `head` is not a status line (which hyper never writes there).
fn replacement_for(head: &[u8], max_header_bytes: usize) -> Option<Vec<u8>> {
    let code = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?
        .get(..3)?;
    let status = StatusCode::from_bytes(code).ok()?;
    Some(match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => canned_response(
            status,
            "HeadersTooLarge",
            &format!("the request line and headers are over {max_header_bytes} bytes, or over 100 headers"),
        ),
        _ => canned_response(
            status,
            "InvalidRequest",
            "the request is not valid HTTP/1.1 (request line, method, target, version or a header)",
        ),
    })
}

/// Orders the moments connections become idle (smaller: longer ago), for all listeners.
static IDLE_ORDER: AtomicU64 = AtomicU64::new(0);

/// What the accept loop knows of one connection, kept by the connection's own task. The
/// counters are only ever compared; a stale read (there is none on the current-thread runtime)
/// would only pick another idle connection.
struct Activity {
    /// Requests handed to the handler.
    requests: AtomicU64,
    /// Responses whose body has ended: hyper has queued their last byte.
    bodies_ended: AtomicU64,
    /// Responses whose last byte has been flushed to the socket.
    responses_sent: AtomicU64,
    /// Bytes came in while no response was owed: a request is on its way.
    request_arriving: AtomicBool,
    /// When the connection last became idle, in `IDLE_ORDER`.
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            bodies_ended: AtomicU64::new(0),
            responses_sent: AtomicU64::new(0),
            request_arriving: AtomicBool::new(false),
            idle_since: AtomicU64::new(IDLE_ORDER.fetch_add(1, Ordering::Relaxed)),
        }
    }

    fn owes_response(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > self.responses_sent.load(Ordering::Relaxed)
    }

    /// Idle: it has answered a request and nothing new is under way. A connection that has not
    /// yet sent a request is not idle: its request may be in the socket's buffer, unread, and
    /// closing it would leave that caller without an answer (the header timeout bounds it).
    fn is_idle(&self) -> bool {
        self.responses_sent.load(Ordering::Relaxed) > 0 && !self.owes_response() && !self.request_arriving.load(Ordering::Relaxed)
    }

    fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.request_arriving.store(false, Ordering::Relaxed);
    }

    /// hyper flushes the socket only once its own buffer is empty: every body ended by now is
    /// on the wire.
    fn flushed(&self) {
        let ended = self.bodies_ended.load(Ordering::Relaxed);
        if self.responses_sent.load(Ordering::Relaxed) < ended {
            self.responses_sent.store(ended, Ordering::Relaxed);
            if !self.owes_response() {
                self.idle_since.store(IDLE_ORDER.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// Counts a response's body as ended when hyper drops it (after its last frame, or unpolled for
/// a HEAD request or an empty body).
struct BodyEnd(Arc<Activity>);

impl Drop for BodyEnd {
    fn drop(&mut self) {
        self.0.bodies_ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handler's response body, reporting its end to the connection's `Activity`.
struct TrackedBody {
    body: Body,
    _end: BodyEnd,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket, watching what crosses it: incoming bytes while no response is owed
/// (a request arriving), flushes (responses sent), and writes while no response is owed, which
/// only hyper's automatic answers to unparseable requests are; those are replaced by JSON.
struct TrackedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
    max_header_bytes: usize,
    /// The JSON answer sent instead of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl TrackedStream {
    /// Starts replacing when `head` is hyper's own answer; true while replacing.
    fn replacing(&mut self, head: &[u8]) -> bool {
        if self.replacement.is_none() && !self.activity.owes_response() {
            self.replacement = replacement_for(head, self.max_header_bytes).map(|r| (r, 0));
        }
        self.replacement.is_some()
    }

    /// Writes the rest of the replacement; hyper's own bytes (`len` of them) count as written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        if let Some((answer, written)) = &mut self.replacement {
            while *written < answer.len() {
                let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &answer[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(len))
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before && !this.activity.owes_response() {
            this.activity.request_arriving.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing(buf) {
            return this.poll_replacement(cx, buf.len());
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let head = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        if this.replacing(head) {
            return this.poll_replacement(cx, bufs.iter().map(|b| b.len()).sum());
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.stream).poll_flush(cx))?;
        this.activity.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
