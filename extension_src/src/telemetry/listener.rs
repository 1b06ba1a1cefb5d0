//! The listener Lambda posts batches to, and where it binds.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::DESTINATION_HOST;
use super::apply::Applier;
use crate::log::Logger;
use crate::serve::{Body, Limits, Server, full, json_error};

/// How long an asynchronous resolver may delay the bind (tests pass slow ones); the hosts file
/// that `bind` reads is read at once, in microseconds.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
/// Time to receive a batch's body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Beyond the limit, this much more is read and discarded so the caller, still sending, sees the
/// 413 rather than a reset connection; a body declared larger still is refused unread.
const DRAIN_BYTES: usize = 64 << 10;

/// The largest batch the listener reads for a subscription buffering `max_bytes`: Lambda caps a
/// batch at `max_bytes` of events; the margin covers the JSON array around them.
#[must_use]
pub fn body_limit(max_bytes: u32) -> usize {
    max_bytes as usize + (64 << 10)
}

/// What the listener received. These counters are the only trace of bad input: the listener
/// never logs per batch or per event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Batches accepted.
    pub batches: u64,
    /// Events applied.
    pub events: u64,
    /// Events of a type the extension does not know.
    pub ignored: u64,
    /// Events that were not an event object, had a record of the wrong shape or no request id, or
    /// carried a value outside what Lambda documents.
    pub invalid: u64,
    /// Requests answered 4xx: bad method, malformed JSON, too large, unreadable.
    pub rejected_batches: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    events: AtomicU64,
    ignored: AtomicU64,
    invalid: AtomicU64,
    rejected: AtomicU64,
}

impl Counters {
    fn stats(&self) -> Stats {
        Stats {
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            rejected_batches: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// The running listener. Start it before subscribing (Lambda may post at once) and shut it down
/// when the subscription is not in effect.
pub struct TelemetryListener {
    server: Server,
    counters: Arc<Counters>,
}

impl TelemetryListener {
    /// Serves `listener`: a POST of a JSON array of events, on any path (Lambda posts to the
    /// destination URI's path, the RIE always to "/"), of at most `max_body` bytes.
    #[must_use]
    pub fn start(listener: TcpListener, applier: Applier, max_body: usize, log: Logger) -> Self {
        let applier = Arc::new(applier);
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let server = Server::start(listener, Limits::default(), log, move |request| {
            let applier = Arc::clone(&applier);
            let counters = Arc::clone(&shared);
            async move { handle(request, &applier, max_body, &counters).await }
        });
        Self { server, counters }
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        self.counters.stats()
    }

    /// Stops accepting and lets batches in flight finish, until `deadline`; returns the final
    /// counters.
    pub async fn shutdown(self, deadline: Instant) -> Stats {
        self.server.shutdown(deadline).await;
        self.counters.stats()
    }
}

async fn handle(request: Request<Incoming>, applier: &Applier, max_body: usize, counters: &Counters) -> Response<Body> {
    if request.method() != Method::POST {
        return reject(counters, StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(request.into_body(), max_body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::TooLarge)) => {
            return reject(
                counters,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("batch larger than {max_body} bytes"),
            );
        }
        Ok(Err(ReadError::Broken)) | Err(_) => return reject(counters, StatusCode::BAD_REQUEST, "cannot read the body"),
    };
    match applier.apply_batch(&body) {
        Ok(outcome) => {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters.events.fetch_add(outcome.events, Ordering::Relaxed);
            counters.ignored.fetch_add(outcome.ignored, Ordering::Relaxed);
            counters.invalid.fetch_add(outcome.invalid, Ordering::Relaxed);
            Response::new(full(Bytes::new()))
        }
        Err(malformed) => reject(counters, StatusCode::BAD_REQUEST, &malformed.to_string()),
    }
}

fn reject(counters: &Counters, status: StatusCode, message: &str) -> Response<Body> {
    counters.rejected.fetch_add(1, Ordering::Relaxed);
    json_error(status, "InvalidRequest", message)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    TooLarge,
    Broken,
}

/// Reads at most `max` bytes of `body`, checking the bound as the bytes arrive.
pub(crate) async fn read_body<B>(mut body: B, max: usize) -> Result<Vec<u8>, ReadError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let declared = body.size_hint().lower();
    if declared > (max + DRAIN_BYTES) as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut out = Vec::with_capacity(usize::try_from(declared).unwrap_or(0).min(max));
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ReadError::Broken)?.into_data() else {
            continue; // trailers
        };
        received = received.saturating_add(data.len());
        if received > max + DRAIN_BYTES {
            return Err(ReadError::TooLarge);
        }
        if received <= max {
            out.extend_from_slice(&data);
        } else if !out.is_empty() {
            out = Vec::new(); // over the limit: what was kept is of no use, give it back now
        }
    }
    if received > max {
        return Err(ReadError::TooLarge);
    }
    Ok(out)
}

/// Binds the listener on port `port` (0: any free port) at the address Lambda delivers to, and
/// returns it with the host to put in the destination URI. The address is the one
/// `sandbox.localdomain` has in the sandbox's hosts file when that is a loopback or link-local
/// address (inside Lambda); otherwise 127.0.0.1, where the RIE and other emulators post. Never
/// 0.0.0.0: the listener is not for the network.
///
/// Only the hosts file is read, never DNS: Lambda names the sandbox there, and a DNS query for a
/// name that is not there costs every cold start about a millisecond (a thread and a round trip to
/// the resolver, measured on the RIE) to learn nothing.
pub async fn bind(port: u16) -> io::Result<(TcpListener, String)> {
    bind_with(port, |host| async move {
        let hosts = read_bounded(HOSTS_FILE, MAX_HOSTS_BYTES)?;
        Ok(hosts_lookup(&hosts, host))
    })
    .await
}

const HOSTS_FILE: &str = "/etc/hosts";
/// A hosts file is a few hundred bytes; a larger one is read this far.
const MAX_HOSTS_BYTES: u64 = 64 << 10;

fn read_bounded(path: &str, max: u64) -> io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    // One read of the whole file in the usual case (std's growth from a small first read would
    // take several); `take` bounds a file that is larger than any hosts file should be.
    let expected = file.metadata().map_or(0, |m| m.len()).min(max);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0) + 1);
    (&mut file).take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The addresses `name` has in a hosts file's text (names compare without case; `#` starts a
/// comment).
pub(crate) fn hosts_lookup(hosts: &str, name: &str) -> Vec<SocketAddr> {
    hosts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('#').next().unwrap_or_default().split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            fields
                .any(|alias| alias.eq_ignore_ascii_case(name))
                .then_some(SocketAddr::new(ip, 0))
        })
        .collect()
}

pub(crate) async fn bind_with<F, Fut>(port: u16, resolve: F) -> io::Result<(TcpListener, String)>
where
    F: FnOnce(&'static str) -> Fut,
    Fut: Future<Output = io::Result<Vec<SocketAddr>>>,
{
    let resolved = tokio::time::timeout(LOOKUP_TIMEOUT, resolve(DESTINATION_HOST))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut address = listen_address(&resolved);
    address.set_port(port);
    let listener = TcpListener::bind(address).await?;
    Ok((listener, DESTINATION_HOST.to_owned()))
}

/// The sandbox's own address among `resolved` (an IPv4 one first), or the IPv4 loopback.
pub(crate) fn listen_address(resolved: &[SocketAddr]) -> SocketAddr {
    let sandbox = |a: &&SocketAddr| match a.ip() {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_link_local(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.is_unicast_link_local(),
    };
    resolved
        .iter()
        .filter(sandbox)
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.iter().find(sandbox))
        .copied()
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}
