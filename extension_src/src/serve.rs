//! The HTTP/1 server under the extension's three listeners (local API, telemetry listener,
//! Runtime API proxy): bounded connections, bounded headers and waits, and a shutdown that ends
//! within a deadline.
//!
//! Lambda gives the whole execution environment 1,024 file descriptors, shared with the function,
//! so each listener holds at most `Limits::max_connections`; at the limit a new caller is answered
//! at once with a JSON 503 and the connection is closed, never left waiting in the backlog.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
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
    /// Connections open at once; beyond, a new caller gets a JSON 503 at once.
    pub max_connections: usize,
    /// Time to receive a request's headers.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers).
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

/// A running listener. Dropping it leaves it running; call `shutdown`.
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

async fn accept_loop<F, Fut>(listener: TcpListener, limits: Limits, log: Logger, handler: Arc<F>, mut stopped: watch::Receiver<bool>)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: wait a little rather than spin.
                log.debug("accept failed", &[("error", e.to_string().as_str().into())]);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            connections.spawn(async move {
                let _ = stream.write_all(TOO_MANY_CONNECTIONS).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |req| {
            let response = handler(req);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let _permit = permit;
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
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 129\r\n\r\n{\"errorType\":\"TooManyConnections\",\"errorMessage\":\"too many open connections to this listener; close idle connections and retry\"}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_refusal_is_well_formed() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(parsed["errorType"], "TooManyConnections");
    }
}
