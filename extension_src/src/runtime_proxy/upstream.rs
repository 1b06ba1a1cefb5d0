//! The proxy's side towards Lambda: HTTP/1 connections to the upstream Runtime API, a few kept
//! between requests (each invocation makes two, `/next` and the answer: a new TCP connection for
//! each would add to every invoke), and the check made before the proxy is published.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::body::ForwardBody;
use crate::config::{is_own_host, parse_host_port};

/// Idle upstream connections kept. A runtime holds one request at a time per connection, and
/// Lambda Managed Instances runs a few runtime workers; beyond, a connection is closed when done.
pub const MAX_IDLE_CONNECTIONS: usize = 4;
/// The wait for a TCP connection to the upstream while serving: Lambda's Runtime API answers in
/// microseconds; a chained proxy may be busy, but not for seconds.
pub const CONNECT_WINDOW: Duration = Duration::from_secs(2);
/// The bound on a response head and on each body read from the upstream. Lambda's `/next` head is
/// a few KiB (a client context is at most 3.5 KiB); bodies stream through in reads of this size.
pub const MAX_READ_BUFFER: usize = 64 << 10;

/// The upstream check's whole bound (name resolution and connection). Another extension that
/// proxies the Runtime API (a chain) starts alongside this one and may listen a few milliseconds
/// later, so a refused connection is retried within the bound.
pub const CHECK_WINDOW: Duration = Duration::from_millis(500);
const CHECK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// An upstream connection: its sender and the task that drives it. Dropping it closes the
/// connection (a request left half-way cannot be reused, and Lambda must see the runtime leave).
pub(super) struct Kept {
    sender: SendRequest<ForwardBody>,
    task: AbortHandle,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a request got no answer from the upstream.
#[derive(Debug)]
pub(super) enum UpstreamError {
    Connect(io::Error),
    ConnectTimeout,
    Http(hyper::Error),
}

/// The upstream Runtime API and the connections kept to it.
pub(super) struct Upstream {
    /// host:port, as configured.
    pub(super) address: String,
    /// For a runtime request without a Host header (HTTP/1.0): HTTP/1.1 needs one.
    pub(super) host: Option<HeaderValue>,
    builder: Builder,
    idle: Mutex<Vec<Kept>>,
}

impl Upstream {
    pub(super) fn new(address: String) -> Self {
        let mut builder = Builder::new();
        builder.max_buf_size(MAX_READ_BUFFER);
        Self {
            host: HeaderValue::from_str(&address).ok(),
            address,
            builder,
            idle: Mutex::new(Vec::with_capacity(MAX_IDLE_CONNECTIONS)),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Kept>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `request` on a kept connection, or a new one; returns the answer's head with the
    /// connection it arrived on (its body streams on it).
    pub(super) async fn send(&self, request: Request<ForwardBody>) -> Result<(Response<Incoming>, Kept), UpstreamError> {
        let mut request = request;
        let kept = self.take_idle();
        if let Some(mut kept) = kept {
            match kept.sender.try_send_request(request).await {
                Ok(response) => return Ok((response, kept)),
                Err(mut e) => match e.take_message() {
                    // Never written: the upstream had closed the kept connection. A new one.
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
        let mut kept = self.connect().await?;
        match kept.sender.try_send_request(request).await {
            Ok(response) => Ok((response, kept)),
            Err(e) => Err(UpstreamError::Http(e.into_error())),
        }
    }

    fn take_idle(&self) -> Option<Kept> {
        let mut idle = self.idle();
        while let Some(kept) = idle.pop() {
            if kept.sender.is_ready() {
                return Some(kept);
            }
        }
        None
    }

    /// Keeps a connection whose exchange is over, if it is still open and there is room.
    pub(super) fn release(&self, kept: Kept) {
        if kept.sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(kept);
        }
    }

    /// Closes the kept connections.
    pub(super) fn close_idle(&self) {
        self.idle().clear();
    }

    async fn connect(&self) -> Result<Kept, UpstreamError> {
        let stream = match tokio::time::timeout(CONNECT_WINDOW, TcpStream::connect(self.address.as_str())).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
            Err(_) => return Err(UpstreamError::ConnectTimeout),
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = self.builder.handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Http)?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        })
        .abort_handle();
        Ok(Kept { sender, task })
    }

    /// Why a request failed, naming the upstream (the runtime's author reads it).
    pub(super) fn describe(&self, error: &UpstreamError) -> String {
        match error {
            UpstreamError::Connect(e) => format!("connect to {}: {e}", self.address),
            UpstreamError::ConnectTimeout => {
                format!(
                    "connect to {}: no connection within {} ms",
                    self.address,
                    CONNECT_WINDOW.as_millis()
                )
            }
            UpstreamError::Http(e) => match std::error::Error::source(e) {
                Some(cause) => format!("{}: {e}: {cause}", self.address),
                None => format!("{}: {e}", self.address),
            },
        }
    }
}

/// See `RuntimeProxy::check_upstream`; `resolve` turns a host and port into addresses.
pub(super) async fn check<R, F>(upstream: &str, own_port: u16, resolve: R) -> Result<(), String>
where
    R: FnOnce(String, u16) -> F,
    F: Future<Output = io::Result<Vec<SocketAddr>>>,
{
    const LOOP: &str = "every request would loop back to the proxy";
    let deadline = Instant::now() + CHECK_WINDOW;
    let window_ms = CHECK_WINDOW.as_millis();
    let (host, port) = parse_host_port(upstream).map_err(|reason| format!("upstream {upstream:?}: {reason}"))?;
    if port == own_port && is_own_host(host) {
        return Err(format!("upstream {upstream} is the proxy's own address: {LOOP}"));
    }
    let addresses = match tokio::time::timeout_at(deadline, resolve(host.to_owned(), port)).await {
        Ok(Ok(addresses)) if !addresses.is_empty() => addresses,
        Ok(Ok(_)) => return Err(format!("upstream {upstream}: {host} has no address")),
        Ok(Err(e)) => return Err(format!("upstream {upstream}: cannot resolve {host}: {e}")),
        Err(_) => return Err(format!("upstream {upstream}: {host} did not resolve within {window_ms} ms")),
    };
    if let Some(own) = addresses.iter().find(|a| a.port() == own_port && is_own_ip(a.ip())) {
        return Err(format!("upstream {upstream} resolves to {own}, the proxy's own address: {LOOP}"));
    }
    loop {
        let mut refusal = None;
        for address in &addresses {
            match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => refusal = Some(e),
                Err(_) => break,
            }
        }
        if Instant::now() + CHECK_RETRY_PAUSE >= deadline {
            let why = refusal.map_or_else(|| "no answer".to_owned(), |e| e.to_string());
            return Err(format!("upstream {upstream}: no connection within {window_ms} ms: {why}"));
        }
        tokio::time::sleep(CHECK_RETRY_PAUSE).await;
    }
}

/// The system's resolver.
pub(super) async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect())
}

/// A loopback or unspecified address (IPv4-mapped ones too): where the proxy listens.
fn is_own_ip(ip: IpAddr) -> bool {
    is_own_host(&ip.to_string())
}
