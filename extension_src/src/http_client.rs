//! A small HTTP/1 client for Lambda's local APIs (Extensions API, Telemetry API): plain HTTP on a
//! `host:port` the platform gives, answers read into memory up to a bound.
//!
//! A `Connection` is kept open across requests (the event loop's `/event/next` long poll is one
//! request per invocation: a new TCP connection each time would cost on every invoke) and is
//! re-opened once, transparently, when the peer has closed it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request got no answer.
#[derive(Debug)]
pub enum Error {
    Connect(std::io::Error),
    Http(hyper::Error),
    /// The answer's body is larger than the caller's bound.
    TooLarge(usize),
    Timeout(Duration),
    Request(hyper::http::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Http(e) => write!(f, "http: {e}"),
            Self::TooLarge(limit) => write!(f, "answer larger than {limit} bytes"),
            Self::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            Self::Request(e) => write!(f, "request: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// An answer read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A connection to `host:port`, opened on first use and re-opened when the peer closed it.
pub struct Connection {
    address: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    #[must_use]
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            sender: None,
        }
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
        let exchange = self.exchange(method, path, headers, body, max_body);
        match timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(limit))),
            None => exchange.await,
        }
        .inspect_err(|_| self.sender = None)
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        max_body: usize,
    ) -> Result<Answer, Error> {
        let reused = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        let mut sender = match self.sender.take() {
            Some(sender) if reused => sender,
            _ => self.open().await?,
        };
        let request = self.request(&method, path, headers, body.clone())?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            // A kept connection the peer closed meanwhile: once more on a new one.
            Err(e) if reused && (e.is_closed() || e.is_canceled() || e.is_incomplete_message()) => {
                sender = self.open().await?;
                sender
                    .send_request(self.request(&method, path, headers, body)?)
                    .await
                    .map_err(Error::Http)?
            }
            Err(e) => return Err(Error::Http(e)),
        };
        let (parts, incoming) = response.into_parts();
        if hyper::body::Body::size_hint(&incoming).lower() > max_body as u64 {
            return Err(Error::TooLarge(max_body));
        }
        let body = Limited::new(incoming, max_body)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(http) => Error::Http(*http),
                Err(_) => Error::TooLarge(max_body),
            })?;
        self.sender = Some(sender);
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.to_bytes(),
        })
    }

    fn request(&self, method: &Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Request<Full<Bytes>>, Error> {
        let mut builder = Request::builder().method(method.clone()).uri(path).header(
            hyper::header::HOST,
            HeaderValue::from_str(&self.address).map_err(|e| Error::Request(e.into()))?,
        );
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(body)).map_err(Error::Request)
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        let stream = TcpStream::connect(&self.address).await.map_err(Error::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        // The connection's I/O runs beside the caller; it ends when the sender is dropped.
        tokio::spawn(connection);
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    /// A server that answers each connection's requests with `answers`, then closes it.
    async fn server(answers: Vec<&'static str>, per_connection: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                for _ in 0..per_connection {
                    let mut buf = [0u8; 4096];
                    if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                        break;
                    }
                    let Some(answer) = answers.next() else { return };
                    stream.write_all(answer.as_bytes()).await.unwrap();
                }
            }
        });
        address
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[tokio::test]
    async fn keeps_the_connection_and_reopens_it_when_the_peer_closed_it() {
        let address = server(vec![OK, OK, OK], 2).await;
        let mut conn = Connection::new(&address);
        for _ in 0..3 {
            let answer = conn
                .send(Method::GET, "/x", &[], Bytes::new(), 16, Some(Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!((answer.status, &answer.body[..]), (StatusCode::OK, &b"ok"[..]));
        }
    }

    #[tokio::test]
    async fn an_answer_beyond_the_bound_is_an_error() {
        let address = server(
            vec![format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", "x".repeat(100)).leak()],
            1,
        )
        .await;
        let mut conn = Connection::new(&address);
        let err = conn
            .send(Method::GET, "/x", &[], Bytes::new(), 10, Some(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge(10)), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let mut conn = Connection::new(&address);
        let err = conn
            .send(Method::GET, "/x", &[], Bytes::new(), 10, Some(Duration::from_millis(50)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout(_)), "{err}");
        drop(listener);
    }
}
