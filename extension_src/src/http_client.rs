//! A small HTTP/1.1 client for Lambda's local APIs (Extensions API, Telemetry API): plain HTTP on a
//! `host:port` the platform gives, answers read into memory up to a bound. The export's S3 client
//! uses it too, over TLS (`with_tls`).
//!
//! A `Connection` is kept open across requests (the event loop's `/event/next` long poll is one
//! request per invocation: a new TCP connection each time would cost on every invoke) and is
//! re-opened once, transparently, when the peer has closed it. A request can be queued to go in
//! the same write as the next one (HTTP/1.1 pipelining, `queue`/`receive`): at init the first
//! `/event/next` follows the telemetry subscription without waiting for its answer.
//!
//! Written on `httparse` (hyper's own parser) rather than on hyper's client: `/event/next` is on
//! every invocation's path, and hyper's client spent most of the extension's time over the floor
//! there (a connection task woken and woken back, a `HeaderMap` built for each request and answer,
//! the body collected through a frame list). Here a request is one `write` from a kept buffer and
//! an answer one allocation; headers are parsed again only when a caller asks for one.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::tls::Tls;

/// The longest answer head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// Headers parsed in one answer at most.
const MAX_HEADERS: usize = 64;
/// The read buffer is kept between requests up to this size (a large answer's is let go).
const MAX_KEPT_BUFFER: usize = 64 << 10;
/// The body of an answer read only to be dropped (`receive` after a timeout) is bounded here.
const MAX_SKIPPED_BODY: usize = 64 << 10;
/// What one read asks the socket for at least.
const READ_CHUNK: usize = 4096;

/// Why a request got no answer.
#[derive(Debug)]
pub enum Error {
    Connect(std::io::Error),
    Io(std::io::Error),
    /// The answer is not HTTP/1.1 this client can read.
    Protocol(String),
    /// The answer's body is larger than the caller's bound.
    TooLarge(usize),
    Timeout(Duration),
    /// The request cannot be written (a header with a line break, say).
    Request(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Io(e) => write!(f, "http: {e}"),
            Self::Protocol(e) => write!(f, "http: {e}"),
            Self::TooLarge(limit) => write!(f, "answer larger than {limit} bytes"),
            Self::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            Self::Request(e) => write!(f, "request: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// An answer read whole: its head as sent and its body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// The header lines, parsed again by `header` and `headers`.
    head: Bytes,
}

impl Answer {
    /// The first header named `name` (any case), when it is text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(httparse::Status::Complete((_, found))) = httparse::parse_headers(&self.head, &mut headers) else {
            return None;
        };
        found
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    }

    /// Every header, as a map (tests compare several).
    #[cfg(test)]
    #[must_use]
    pub fn headers(&self) -> hyper::HeaderMap {
        use hyper::header::{HeaderName, HeaderValue};
        let mut map = hyper::HeaderMap::new();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        if let Ok(httparse::Status::Complete((_, found))) = httparse::parse_headers(&self.head, &mut headers) {
            for h in found.iter() {
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value)) {
                    map.append(name, value);
                }
            }
        }
        map
    }
}

/// A connection to `host:port`, opened on first use and re-opened when the peer closed it.
pub struct Connection {
    address: String,
    /// The `Host` header: the address, or the name the server is known by.
    host: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    stream: Option<Stream>,
    /// The request being written, kept between requests.
    request: Vec<u8>,
    /// What was read of the answer, kept between requests.
    read: Vec<u8>,
    /// A request to write right behind the next one `send` writes (`queue`).
    queued: Vec<u8>,
    queued_head_only: bool,
    /// A request written behind the last one sent awaits its answer (`receive`).
    pending: Option<Pending>,
    /// The whole of `request` went out on the kept connection.
    written: bool,
}

/// The answers still to come for a queued request, in the order the server gives them.
#[derive(Clone, Copy)]
struct Pending {
    /// The answer of the request sent in front of it, when `send` gave up on it (a timeout, before
    /// any of it came): read and dropped first. `true` when that was a HEAD (no body comes).
    skip: Option<bool>,
    /// `true` when the queued request is a HEAD.
    head_only: bool,
}

/// How the answer's body ends.
enum Framing {
    Length(usize),
    Chunked,
    /// Until the peer closes: the connection cannot be kept.
    Close,
}

impl Connection {
    #[must_use]
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            host: address.to_owned(),
            tls: None,
            stream: None,
            request: Vec::new(),
            read: Vec::new(),
            queued: Vec::new(),
            queued_head_only: false,
            pending: None,
            written: false,
        }
    }

    /// A connection to `address` over TLS, the server's certificate checked for `server` (a DNS
    /// name or an IP address).
    pub fn with_tls(address: &str, server: &str, tls: &Tls) -> Result<Self, String> {
        let name = ServerName::try_from(server.trim_start_matches('[').trim_end_matches(']').to_owned())
            .map_err(|e| format!("{server:?} is not a name TLS can check: {e}"))?;
        Ok(Self {
            tls: Some((TlsConnector::from(std::sync::Arc::clone(&tls.config)), name)),
            ..Self::new(address)
        })
    }

    /// Sends `host` as the `Host` header instead of the address connected to.
    #[must_use]
    pub fn host_header(mut self, host: &str) -> Self {
        host.clone_into(&mut self.host);
        self
    }

    /// Sends one request with `headers` and `body` and reads the answer, at most `max_body`
    /// bytes of it; `timeout` bounds the whole exchange (`None`: the caller waits as long as the
    /// server holds the request, as `/event/next` must).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        max_body: usize,
        timeout: Option<Duration>,
    ) -> Result<Answer, Error> {
        if self.pending.take().is_some() {
            // An answer nobody read would be taken for this one's: start on a new connection.
            self.stream = None;
        }
        self.request.clear();
        encode(&mut self.request, &self.host, &method, path, headers, &body)?;
        let head_only = method == Method::HEAD;
        let queued = (!self.queued.is_empty()).then(|| {
            self.request.extend_from_slice(&self.queued);
            self.queued.clear();
            self.queued_head_only
        });
        let exchange = self.exchange(head_only, max_body, queued.is_some());
        let answer = match timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(limit))),
            None => exchange.await,
        };
        match (answer, queued) {
            (Ok(answer), queued) => {
                // The queued request's answer follows on the same connection, if it was kept.
                self.pending = queued
                    .filter(|_| self.stream.is_some())
                    .map(|head_only| Pending { skip: None, head_only });
                Ok(answer)
            }
            // Given up on before any of its answer came, with a request queued behind it: the
            // connection stays, and the late answer is read and dropped before the queued one's.
            // Dropping the connection instead could lose an answer the server still gives, to a
            // request (`/event/next`) it may already have taken.
            (Err(Error::Timeout(limit)), Some(queued_head_only)) if self.written && self.read.is_empty() && self.stream.is_some() => {
                self.pending = Some(Pending {
                    skip: Some(head_only),
                    head_only: queued_head_only,
                });
                Err(Error::Timeout(limit))
            }
            (Err(e), _) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    /// Encodes a request to be written right behind the next one `send` writes, in the same
    /// `write` (HTTP/1.1 pipelining): the server answers the two in order, so this one's answer
    /// is read afterwards, with `receive`. Lambda's APIs are Go's HTTP server, which reads a
    /// connection's requests one after the other.
    pub fn queue(&mut self, method: &Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Error> {
        self.queued.clear();
        encode(&mut self.queued, &self.host, method, path, headers, body)?;
        self.queued_head_only = *method == Method::HEAD;
        Ok(())
    }

    /// Whether a queued request was written and its answer is still to be read (`receive`).
    #[must_use]
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Reads the answer to the request written behind the last one sent (`queue`), at most
    /// `max_body` bytes of it; `timeout` as for `send`.
    pub async fn receive(&mut self, max_body: usize, timeout: Option<Duration>) -> Result<Answer, Error> {
        let Some(pending) = self.pending.take() else {
            return Err(Error::Request("no request waits for its answer".to_owned()));
        };
        // `pending` is set only while the connection is kept.
        let Some(mut stream) = self.stream.take() else {
            return Err(Error::Request("no request waits for its answer".to_owned()));
        };
        let read = &mut self.read;
        let answers = async {
            if let Some(head_only) = pending.skip {
                // The answer `send` gave up on; its size is bounded like any answer's.
                read_answer(&mut stream, read, head_only, MAX_SKIPPED_BODY).await?;
            }
            read_answer(&mut stream, read, pending.head_only, max_body).await
        };
        let (answer, keep) = match timeout {
            Some(limit) => tokio::time::timeout(limit, answers)
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(limit))),
            None => answers.await,
        }?;
        if keep && self.read.is_empty() {
            self.stream = Some(stream);
        }
        Ok(answer)
    }

    /// Writes the encoded request(s) and reads the first answer; with `pipelined`, the bytes after
    /// it are the next answer's and are kept.
    async fn exchange(&mut self, head_only: bool, max_body: usize, pipelined: bool) -> Result<Answer, Error> {
        let reused = self.stream.is_some();
        if !reused {
            self.stream = Some(self.connect().await?);
        }
        let (answer, keep) = match self.round_trip(head_only, max_body, pipelined).await {
            // A kept connection the peer closed meanwhile: once more on a new one.
            Err(Error::Io(e)) if reused && is_closed(&e) => {
                self.stream = None;
                self.stream = Some(self.connect().await?);
                self.round_trip(head_only, max_body, pipelined).await
            }
            other => other,
        }?;
        if !keep {
            self.stream = None;
        }
        Ok(answer)
    }

    /// Opens the connection now when none is kept, so that the next request is written without
    /// waiting for a handshake.
    pub async fn open(&mut self) -> Result<(), Error> {
        if self.stream.is_none() {
            self.stream = Some(self.connect().await?);
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Stream, Error> {
        let stream = TcpStream::connect(&self.address).await.map_err(Error::Connect)?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(stream)),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), stream).await.map_err(Error::Connect)?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }

    /// Writes the encoded request(s) and reads the first answer; `true` beside it when the
    /// connection can be kept. Bytes after the answer are kept for the next one only when a
    /// second request was written (`pipelined`): otherwise nothing asked for them, and the
    /// connection is not reused.
    async fn round_trip(&mut self, head_only: bool, max_body: usize, pipelined: bool) -> Result<(Answer, bool), Error> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::Request("no connection".to_owned()));
        };
        self.written = false;
        self.read.clear();
        stream.write_all(&self.request).await.map_err(Error::Io)?;
        stream.flush().await.map_err(Error::Io)?;
        self.written = true;
        let (answer, keep) = read_answer(stream, &mut self.read, head_only, max_body).await?;
        Ok((answer, keep && (pipelined || self.read.is_empty())))
    }
}

/// Reads one answer from `read` (what was already read) and `stream`, at most `max_body` bytes of
/// body; `true` beside it when the connection can be kept. The bytes after it stay in `read`.
async fn read_answer(stream: &mut Stream, read: &mut Vec<u8>, head_only: bool, max_body: usize) -> Result<(Answer, bool), Error> {
    // The head; interim 1xx answers are skipped.
    let (status, head_end, framing, keep) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(read) {
            Ok(httparse::Status::Partial) if read.len() < MAX_HEAD_BYTES => {
                fill_or_eof(stream, read).await?;
            }
            Ok(httparse::Status::Partial) => return Err(Error::Protocol(format!("answer head over {MAX_HEAD_BYTES} bytes"))),
            Err(e) => return Err(Error::Protocol(format!("answer head: {e}"))),
            Ok(httparse::Status::Complete(end)) => {
                let code = response.code.unwrap_or(0);
                if (100..200).contains(&code) {
                    read.drain(..end);
                    continue;
                }
                let status = StatusCode::from_u16(code).map_err(|e| Error::Protocol(e.to_string()))?;
                let (framing, keep) = framing(&response, head_only || code == 204 || code == 304)?;
                break (status, end, framing, keep);
            }
        }
    };
    let (body_end, answer_end) = match framing {
        Framing::Length(len) => {
            if len > max_body {
                return Err(Error::TooLarge(max_body));
            }
            while read.len() < head_end + len {
                fill_or_eof(stream, read).await?;
            }
            (head_end + len, head_end + len)
        }
        Framing::Close => loop {
            if read.len() - head_end > max_body {
                return Err(Error::TooLarge(max_body));
            }
            if fill(stream, read).await? == 0 {
                break (read.len(), read.len());
            }
        },
        Framing::Chunked => dechunk(stream, read, head_end, max_body).await?,
    };
    let raw = Bytes::copy_from_slice(&read[..body_end]);
    // The head without its status line, for `Answer::header`.
    let line_end = raw.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let answer = Answer {
        status,
        head: raw.slice(line_end..head_end),
        body: raw.slice(head_end..body_end),
    };
    // What follows the answer is the next one's, when one was asked for (pipelining).
    read.drain(..answer_end);
    if read.capacity() > MAX_KEPT_BUFFER {
        read.shrink_to(read.len());
    }
    Ok((answer, keep))
}

/// Writes the request line, `Host`, `headers`, the length and `body` into `r`.
fn encode(r: &mut Vec<u8>, host: &str, method: &Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Error> {
    let clean = |s: &str| !s.bytes().any(|b| b == b'\r' || b == b'\n');
    if !clean(path) || path.contains(' ') || !headers.iter().all(|(n, v)| clean(n) && clean(v) && !n.contains(':')) {
        return Err(Error::Request(format!("a line break or separator in {path:?} or its headers")));
    }
    for part in [method.as_str(), " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n"] {
        r.extend_from_slice(part.as_bytes());
    }
    for (name, value) in headers {
        for part in [name, ": ", value, "\r\n"] {
            r.extend_from_slice(part.as_bytes());
        }
    }
    if !body.is_empty() || *method == Method::POST || *method == Method::PUT {
        r.extend_from_slice(b"Content-Length: ");
        r.extend_from_slice(body.len().to_string().as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    Ok(())
}

/// How the body of `response` ends, and whether the connection may be kept after it.
fn framing(response: &httparse::Response<'_, '_>, no_body: bool) -> Result<(Framing, bool), Error> {
    let mut length = None;
    let mut chunked = false;
    let mut keep = response.version == Some(1);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            match (parsed, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err(Error::Protocol("invalid Content-Length".to_owned())),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(Error::Protocol("unsupported Transfer-Encoding".to_owned()));
            }
        } else if h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close") {
            keep = false;
        }
    }
    Ok(match (no_body, chunked, length) {
        (true, _, _) => (Framing::Length(0), keep),
        (false, true, _) => (Framing::Chunked, keep),
        (false, false, Some(n)) => (Framing::Length(n), keep),
        (false, false, None) => (Framing::Close, false),
    })
}

/// Decodes the chunked body that starts at `start` of `read`, in place: returns where the decoded
/// body ends and where the answer ended in what was read.
async fn dechunk(stream: &mut Stream, read: &mut Vec<u8>, start: usize, max_body: usize) -> Result<(usize, usize), Error> {
    let mut end = start; // the decoded body is read[start..end]
    let mut at = start; // the next chunk-size line
    loop {
        let (consumed, size) = loop {
            match httparse::parse_chunk_size(&read[at..]) {
                Ok(httparse::Status::Complete(found)) => break found,
                Ok(httparse::Status::Partial) if read.len() - at < MAX_HEAD_BYTES => fill_or_eof(stream, read).await?,
                _ => return Err(Error::Protocol("invalid chunk size".to_owned())),
            }
        };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > max_body - (end - start) {
            return Err(Error::TooLarge(max_body));
        }
        at += consumed;
        if size == 0 {
            // Trailers, if any, then the empty line.
            loop {
                match read[at..].windows(2).position(|w| w == b"\r\n") {
                    Some(0) => return Ok((end, at + 2)),
                    Some(line) => at += line + 2,
                    None if read.len() - at < MAX_HEAD_BYTES => fill_or_eof(stream, read).await?,
                    None => return Err(Error::Protocol("trailers too long".to_owned())),
                }
            }
        }
        while read.len() < at + size + 2 {
            fill_or_eof(stream, read).await?;
        }
        if &read[at + size..at + size + 2] != b"\r\n" {
            return Err(Error::Protocol("chunk without its line end".to_owned()));
        }
        read.copy_within(at..at + size, end);
        end += size;
        at += size + 2;
    }
}

/// Reads what the socket has into `read`'s spare room; the count, 0 at the end of the stream.
async fn fill(stream: &mut Stream, read: &mut Vec<u8>) -> Result<usize, Error> {
    read.reserve(READ_CHUNK);
    stream.read_buf(read).await.map_err(Error::Io)
}

/// As `fill`, the end of the stream an error: the answer is not complete.
async fn fill_or_eof(stream: &mut Stream, read: &mut Vec<u8>) -> Result<(), Error> {
    match fill(stream, read).await? {
        0 => Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into())),
        _ => Ok(()),
    }
}

/// A connection as read and written: plain TCP (Lambda's local APIs, on every invoke) or TLS (S3).
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Whether `e` says the peer closed the connection (a kept one, before answering).
pub fn is_closed(e: &io::Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted)
}

#[cfg(test)]
mod tests;
