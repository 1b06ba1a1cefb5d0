#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::*;
use crate::log::{Level, Logger};

/// A server whose handler answers `{"ok":true}`, an empty 404 on /empty, and holds /block until
/// `release` gets a permit.
async fn server(limits: Limits) -> (Server, std::net::SocketAddr, Arc<Semaphore>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Semaphore::new(0));
    let gate = Arc::clone(&release);
    let (log, _) = Logger::capture(Level::Error);
    let server = Server::start(listener, limits, log, move |request: Request<Incoming>| {
        let gate = Arc::clone(&gate);
        async move {
            match request.uri().path() {
                "/block" => {
                    let _ = gate.acquire().await.map(tokio::sync::SemaphorePermit::forget);
                    json_response(StatusCode::OK, &serde_json::json!({"released": true}))
                }
                "/empty" => {
                    let mut response = Response::new(full(Bytes::new()));
                    *response.status_mut() = StatusCode::NOT_FOUND;
                    response
                }
                _ => json_response(StatusCode::OK, &serde_json::json!({"ok": true})),
            }
        }
    });
    (server, addr, release)
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response with a Content-Length body; `None` when the server closed first.
async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(Answer {
        status: head[9..12].parse().unwrap(),
        head,
        body: String::from_utf8(body).unwrap(),
    })
}

async fn ask(stream: &mut TcpStream, request: &[u8]) -> Option<Answer> {
    stream.write_all(request).await.ok()?;
    read_answer(stream).await
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// True when the server has closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(within, stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

fn error_type(answer: &Answer) -> String {
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body));
    assert!(body["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(answer.head.contains("Content-Type: application/json") || answer.head.contains("content-type: application/json"));
    body["errorType"].as_str().unwrap().to_owned()
}

#[test]
fn canned_answers_are_well_formed() {
    for (head, status, kind) in [
        (&b"HTTP/1.1 431 Request Header Fields Too Large\r\n"[..], 431, "HeadersTooLarge"),
        (b"HTTP/1.1 400 Bad Request\r\n", 400, "InvalidRequest"),
        (b"HTTP/1.0 414 URI Too Long\r\n", 414, "InvalidRequest"),
    ] {
        let answer = replacement_for(head, 16384).unwrap();
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["errorType"], kind);
    }
    assert!(replacement_for(b"0\r\n\r\n", 16384).is_none());
}

#[tokio::test]
async fn a_new_caller_is_answered_when_idle_connections_fill_the_listener() {
    let limits = Limits {
        max_connections: 64,
        ..Limits::default()
    };
    let (server, addr, _) = server(limits).await;
    // GIVEN 70 kept-alive connections, each idle after one answered request
    let mut idle = Vec::new();
    for _ in 0..70 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(ask(&mut stream, GET).await.map(|a| a.status), Some(200));
        idle.push(stream);
    }
    // WHEN a new caller comes
    let started = std::time::Instant::now();
    let mut caller = TcpStream::connect(addr).await.unwrap();
    let answer = ask(&mut caller, GET).await.unwrap();
    // THEN it is answered at once, the oldest idle connections made room, the newest are intact
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    for stream in &mut idle[..7] {
        assert!(closed_within(stream, Duration::from_secs(1)).await);
    }
    for stream in &mut idle[7..] {
        assert_eq!(ask(stream, GET).await.map(|a| a.status), Some(200));
    }
    server.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn every_connection_busy_gives_a_quick_json_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (server, addr, release) = server(limits).await;
    // GIVEN both connections held by requests in progress
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // WHEN a third caller comes THEN it is refused at once, in JSON
    let mut caller = TcpStream::connect(addr).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(1), ask(&mut caller, GET))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 503);
    assert_eq!(error_type(&answer), "TooManyConnections");
    // AND the busy ones finish normally
    release.add_permits(2);
    for stream in &mut busy {
        assert_eq!(read_answer(stream).await.map(|a| a.status), Some(200));
    }
    server.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_connection_with_a_request_arriving_is_not_closed_to_make_room() {
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let (server, addr, _) = server(limits).await;
    // GIVEN a connection whose request has begun to arrive
    let mut arriving = TcpStream::connect(addr).await.unwrap();
    arriving.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // WHEN another caller comes THEN it is refused, and the first request completes
    let mut caller = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut caller, GET).await.map(|a| a.status), Some(503));
    assert_eq!(ask(&mut arriving, b"Host: x\r\n\r\n").await.map(|a| a.status), Some(200));
    server.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let limits = Limits {
        header_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (server, addr, _) = server(limits).await;
    // A kept-alive connection after its answer, and one that never sent anything.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut kept, GET).await.map(|a| a.status), Some(200));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        !closed_within(&mut kept, Duration::from_millis(100)).await,
        "closed before the bound"
    );
    assert!(closed_within(&mut kept, Duration::from_secs(1)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(1)).await);
    server.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_json_errors() {
    let (server, addr, _) = server(Limits::default()).await;
    let oversized = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(17 << 10));
    let many_headers = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: 1\r\n".repeat(101));
    let cases: [(&[u8], u16, &str); 5] = [
        (oversized.as_bytes(), 431, "HeadersTooLarge"),
        (many_headers.as_bytes(), 431, "HeadersTooLarge"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "InvalidRequest"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "InvalidRequest"),
        (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "InvalidRequest"),
    ];
    for (request, status, kind) in cases {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let answer = ask(&mut stream, request).await.unwrap();
        assert_eq!((answer.status, error_type(&answer).as_str()), (status, kind), "{}", answer.head);
    }
    // A bad request after a good one on the same connection is answered in JSON too.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut stream, GET).await.map(|a| a.status), Some(200));
    let answer = ask(&mut stream, b"BAD\r\n\r\n").await.unwrap();
    assert_eq!((answer.status, error_type(&answer).as_str()), (400, "InvalidRequest"));
    server.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[test]
fn an_http_1_1_request_needs_one_host() {
    let request = |version, hosts: &[&str]| {
        let mut builder = Request::builder().version(version).uri("/");
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap()
    };
    for bad in [request(hyper::Version::HTTP_11, &[]), request(hyper::Version::HTTP_11, &["a", "b"])] {
        let rejection = host_rejection(&bad).unwrap();
        assert_eq!(rejection.status(), 400);
    }
    assert!(host_rejection(&request(hyper::Version::HTTP_11, &["a"])).is_none());
    assert!(host_rejection(&request(hyper::Version::HTTP_10, &[])).is_none());
}

#[tokio::test]
async fn a_handlers_own_bare_answer_is_never_rewritten() {
    let (server, addr, _) = server(Limits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for request in [
        &b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        GET,
        b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let answer = ask(&mut stream, request).await.unwrap();
        assert!(
            matches!((answer.status, answer.body.as_str()), (404, "") | (200, "{\"ok\":true}\n")),
            "{}{}",
            answer.head,
            answer.body
        );
    }
    server.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_within_the_deadline() {
    let (server, addr, _) = server(Limits::default()).await;
    let mut kept = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut kept, GET).await.map(|a| a.status), Some(200));
    let started = std::time::Instant::now();
    server.shutdown(Instant::now() + Duration::from_secs(2)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(closed_within(&mut kept, Duration::from_secs(1)).await);
}
