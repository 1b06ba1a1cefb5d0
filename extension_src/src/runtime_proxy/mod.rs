//! A transparent proxy of the Lambda Runtime API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>) that records, per request
//! id, when the runtime took its event, when and how it answered, and the answer's size.
//!
//! The runtime is pointed at the proxy by the wrapper script (`AWS_LAMBDA_EXEC_WRAPPER`) or by a
//! bootstrap that sets `AWS_LAMBDA_RUNTIME_API`. Every path and method is forwarded; status codes,
//! headers (minus hop-by-hop ones), bodies, trailers and `100 Continue` pass unchanged and
//! unbuffered, so streamed responses stream: the proxy holds at most one read buffer of a body
//! at a time, never a whole body.
//!
//! The proxy must never strand the runtime: `check_upstream` refuses an upstream that is the
//! proxy itself or that does not answer, so the caller leaves the runtime on Lambda's API; an
//! upstream that fails later gets the runtime a JSON 502 it can report.

mod body;
pub mod parse;
mod upstream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri, Version, header};
use tokio::sync::Notify;

pub use body::MAX_ERROR_BODY_PEEK;
pub use parse::{NextEvent, RuntimeRequest, classify, error_type_from_body, next_event, strip_hop_by_hop};
pub use upstream::{CHECK_WINDOW, CONNECT_WINDOW, MAX_IDLE_CONNECTIONS};

use self::body::{ForwardBody, RuntimeBodyError, Tally, UpstreamBody};
use self::parse::{HEADER_ERROR_TYPE, MAX_ERROR_TYPE_BYTES};
use self::upstream::{Upstream, UpstreamError};
use crate::history::{Outcome, Source, Store};
use crate::log::Logger;
use crate::serve::{self, Body, Limits, Server};
use crate::time::Clock;

/// The `errorType` of the proxy's own 502.
pub const UPSTREAM_ERROR_TYPE: &str = "Runtime.ProxyUpstreamUnavailable";

/// The listening side's bounds. A runtime holds one connection, or a few (Lambda Managed
/// Instances runs several workers), each with a `/next` long poll: 128 leave room for any of
/// them and keep the proxy to a tenth of Lambda's 1,024 descriptors (two per request).
pub const LIMITS: Limits = Limits {
    max_connections: 128,
    header_timeout: IDLE_CONNECTION_BOUND,
    max_header_bytes: 64 << 10,
};

/// The server's header timeout also bounds a kept connection's wait for its next request, and a
/// runtime's connection waits between the `/next` answer and its own answer for as long as the
/// function runs (up to 15 minutes): the bound must never cut that. It cannot cut the `/next`
/// long poll itself (its headers were read) and there is no body timeout.
const IDLE_CONNECTION_BOUND: Duration = Duration::from_secs(60 * 60);

/// The proxy's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received from the runtime.
    pub forwarded: u64,
    /// Requests the upstream failed (no connection, or the exchange broke).
    pub upstream_errors: u64,
}

/// A running proxy.
pub struct RuntimeProxy {
    server: Server,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: Upstream,
    store: Arc<Store>,
    log: Logger,
    clock: Clock,
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
    /// Woken when the runtime takes an event and when Lambda accepts its answer.
    seen: Arc<Notify>,
}

impl RuntimeProxy {
    /// Refuses an upstream that is the proxy itself in any spelling (host names resolving to
    /// this machine, `localhost.`, `127.1`, `0`, `[::1]`, `[::ffff:127.0.0.1]`, decimal, hex or
    /// octal IPv4) on the proxy's own port, and checks that the upstream accepts a TCP connection
    /// within `CHECK_WINDOW`. `Err` says why.
    pub async fn check_upstream(upstream: &str, own_port: u16) -> Result<(), String> {
        upstream::check(upstream.trim(), own_port, upstream::resolve).await
    }

    /// Serves `listener`, forwarding to `upstream` (host:port) and recording into `store`.
    #[must_use]
    pub fn start(listener: tokio::net::TcpListener, upstream: String, store: Arc<Store>, log: Logger, clock: Clock) -> Self {
        let shared = Arc::new(Shared {
            upstream: Upstream::new(upstream.trim().to_owned()),
            store,
            log: log.clone(),
            clock,
            forwarded: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            seen: Arc::new(Notify::new()),
        });
        let handler_shared = Arc::clone(&shared);
        let server = Server::start(listener, LIMITS, log, move |request| Arc::clone(&handler_shared).forward(request));
        Self { server, shared }
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Woken each time the proxy records that the runtime took an event or that its answer was
    /// accepted: whoever waits for a function's answer (the export's post-invoke window) learns
    /// it here as soon as it is sent, with or without telemetry.
    #[must_use]
    pub fn seen(&self) -> Arc<Notify> {
        Arc::clone(&self.shared.seen)
    }

    /// Stops listening and waits for requests in flight until `deadline` (a runtime's `/next`
    /// long poll lasts until then), closes the upstream connections and returns the counters.
    pub async fn shutdown(self, deadline: tokio::time::Instant) -> Stats {
        self.server.shutdown(deadline).await;
        self.shared.upstream.close_idle();
        self.shared.stats()
    }
}

impl Shared {
    fn stats(&self) -> Stats {
        Stats {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
        }
    }

    /// Forwards one request and records what it says about an invocation.
    async fn forward(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let (mut head, body) = request.into_parts();
        let method = head.method.clone();
        let uri = head.uri.clone();
        let kind = classify(&method, uri.path());
        let (tally, header_error_type) = match kind {
            RuntimeRequest::Response(_) => (Some(Arc::new(Tally::new(0))), None),
            RuntimeRequest::Error(_) => {
                let header = head.headers.get(HEADER_ERROR_TYPE);
                let error_type = header.and_then(|v| parse::header_text(v, MAX_ERROR_TYPE_BYTES));
                // The body is read for the type only when the header does not give it.
                let peek = if error_type.is_some() { 0 } else { MAX_ERROR_BODY_PEEK };
                (Some(Arc::new(Tally::new(peek))), error_type.map(Box::<str>::from))
            }
            RuntimeRequest::Next | RuntimeRequest::Other => (None, None),
        };

        head.uri = head
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        head.version = Version::HTTP_11;
        strip_hop_by_hop(&mut head.headers);
        if let (false, Some(host)) = (head.headers.contains_key(header::HOST), &self.upstream.host) {
            head.headers.insert(header::HOST, host.clone());
        }
        let upstream_request = Request::from_parts(head, ForwardBody::new(body, tally.clone()));

        let mut waiting = Waiting {
            shared: &self,
            method: &method,
            path: uri.path(),
            answered: false,
        };
        let sent = self.upstream.send(upstream_request).await;
        waiting.answered = true;
        drop(waiting);
        let (response, connection) = match sent {
            Ok(answer) => answer,
            Err(e) => return self.upstream_failed(&method, uri.path(), &e),
        };
        let (mut head, body) = response.into_parts();
        // Recorded before the runtime sees Lambda's answer: whoever that answer unblocks (the
        // invoker, the function's next request) finds the record already there.
        match (&kind, tally) {
            (RuntimeRequest::Next, _) if head.status == StatusCode::OK => self.record_next(&head.headers),
            (RuntimeRequest::Response(id), Some(tally)) if head.status.is_success() => {
                let error_type = tally.trailer_error_type();
                self.record_answer(id, error_type.is_some(), error_type, &tally);
            }
            (RuntimeRequest::Error(id), Some(tally)) if head.status.is_success() => {
                let error_type = header_error_type.or_else(|| tally.body_error_type());
                self.record_answer(id, true, error_type, &tally);
            }
            // Lambda did not accept it: nothing happened to the invocation.
            _ => {}
        }
        strip_hop_by_hop(&mut head.headers);
        let body = UpstreamBody::new(body, connection, Arc::clone(&self), method, uri);
        Response::from_parts(head, body.boxed())
    }

    /// The runtime took an event: its record begins now.
    fn record_next(&self, headers: &header::HeaderMap) {
        let Some(event) = next_event(headers) else { return };
        let at = (self.clock)();
        self.store.begin(event.request_id, Source::Runtime, |record, _created| {
            record.extra_mut().runtime_received_at = at;
            if record.deadline_ms == 0 {
                record.deadline_ms = event.deadline_ms.unwrap_or(0);
            }
            if record.invoked_function_arn.is_none() {
                record.invoked_function_arn = event.function_arn.map(Arc::from);
            }
            if record.trace_id.is_none() {
                record.set_trace_id(event.trace_id.unwrap_or_default());
            }
        });
        self.seen.notify_waiters();
    }

    /// Lambda accepted the runtime's answer. It answers only once the whole body (and its
    /// trailers) arrived, so the count and the trailers are complete here.
    fn record_answer(&self, request_id: &str, failed: bool, error_type: Option<Box<str>>, tally: &Tally) {
        let at = (self.clock)();
        let bytes = tally.bytes();
        let outcome = if failed { Outcome::Error } else { Outcome::Success };
        let held = error_type.as_ref().map_or(0, |t| t.len());
        self.store.update(request_id, held, move |record| {
            record.outcome = Some(outcome);
            let extra = record.extra_mut();
            extra.runtime_responded_at = at;
            extra.response_bytes = bytes;
            if error_type.is_some() {
                extra.error_type = error_type;
            }
        });
        self.seen.notify_waiters();
    }

    /// The runtime went away (killed at a timeout or at shutdown, often mid long-poll on
    /// `/next`): nobody is left to answer, and the upstream did nothing wrong.
    fn runtime_disconnected(&self, method: &Method, path: &str) {
        self.log.debug(
            "runtime proxy: runtime disconnected",
            &[("method", method.as_str().into()), ("path", path.into())],
        );
    }

    fn upstream_failed(&self, method: &Method, path: &str, error: &UpstreamError) -> Response<Body> {
        let from_runtime = match error {
            UpstreamError::Http(e) => std::error::Error::source(e).is_some_and(|s| s.is::<RuntimeBodyError>()),
            _ => false,
        };
        if from_runtime {
            self.runtime_disconnected(method, path);
            return serve::json_error(
                StatusCode::BAD_REQUEST,
                "Runtime.ProxyRequestBodyFailed",
                "invocation history runtime proxy: the request body broke off",
            );
        }
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
        let reason = self.upstream.describe(error);
        self.log.warn(
            "runtime proxy: upstream failed",
            &[
                ("method", method.as_str().into()),
                ("path", path.into()),
                ("error", reason.as_str().into()),
            ],
        );
        serve::json_error(
            StatusCode::BAD_GATEWAY,
            UPSTREAM_ERROR_TYPE,
            &format!("invocation history runtime proxy: upstream Runtime API unavailable: {reason}"),
        )
    }

    /// Lambda's answer broke off after its head was passed on: the runtime's connection is cut
    /// (it cannot be told otherwise), and it is counted.
    fn upstream_failed_midway(&self, method: &Method, path: &str, error: &hyper::Error) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
        let reason = format!("{}: {error}", self.upstream.address);
        self.log.warn(
            "runtime proxy: upstream failed",
            &[
                ("method", method.as_str().into()),
                ("path", path.into()),
                ("error", reason.as_str().into()),
            ],
        );
    }
}

/// A request waiting for the upstream's answer; dropped unanswered, its runtime went away
/// (the server drops a request's handler when its connection closes).
struct Waiting<'a> {
    shared: &'a Shared,
    method: &'a Method,
    path: &'a str,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.shared.runtime_disconnected(self.method, self.path);
        }
    }
}

#[cfg(test)]
mod tests;
