#![allow(clippy::unwrap_used)]

use super::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const WAIT: Option<Duration> = Some(Duration::from_secs(5));

/// A server that answers each connection's requests with `answers`, in order, then closes it
/// after `per_connection` of them; every request it read goes to the returned channel.
async fn server(answers: Vec<&'static str>, per_connection: usize) -> (String, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut answers = answers.into_iter();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            for _ in 0..per_connection {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                let _ = tx.send(buf[..n].to_vec());
                let Some(answer) = answers.next() else { return };
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        }
    });
    (address, rx)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

async fn get(conn: &mut Connection, max_body: usize) -> Result<Answer, Error> {
    conn.send(Method::GET, "/x", &[], Bytes::new(), max_body, WAIT).await
}

#[tokio::test]
async fn keeps_the_connection_and_reopens_it_when_the_peer_closed_it() {
    let (address, _) = server(vec![OK, OK, OK], 2).await;
    let mut conn = Connection::new(&address);
    for _ in 0..3 {
        let answer = get(&mut conn, 16).await.unwrap();
        assert_eq!((answer.status, &answer.body[..]), (StatusCode::OK, &b"ok"[..]));
    }
}

#[tokio::test]
async fn writes_the_request_line_host_headers_and_body() {
    let (address, mut requests) = server(vec![OK], 1).await;
    let mut conn = Connection::new(&address);
    let body = Bytes::from_static(br#"{"a":1}"#);
    conn.send(Method::PUT, "/p?q=1", &[("Lambda-Extension-Identifier", "id-1")], body, 16, WAIT)
        .await
        .unwrap();
    let request = String::from_utf8(requests.recv().await.unwrap()).unwrap();
    assert_eq!(
        request,
        format!("PUT /p?q=1 HTTP/1.1\r\nHost: {address}\r\nLambda-Extension-Identifier: id-1\r\nContent-Length: 7\r\n\r\n{{\"a\":1}}")
    );
}

#[tokio::test]
async fn a_header_with_a_line_break_is_refused_before_anything_is_sent() {
    let mut conn = Connection::new("127.0.0.1:9");
    let err = conn
        .send(Method::GET, "/x", &[("X", "a\r\nInjected: 1")], Bytes::new(), 16, WAIT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Request(_)), "{err}");
}

#[tokio::test]
async fn headers_are_found_in_any_case_and_as_a_map() {
    let (address, _) = server(
        vec!["HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: abc\r\nX-Two: 1\r\nX-Two: 2\r\nContent-Length: 0\r\n\r\n"],
        1,
    )
    .await;
    let answer = get(&mut Connection::new(&address), 16).await.unwrap();
    assert_eq!(answer.header("lambda-extension-identifier"), Some("abc"));
    assert_eq!(answer.header("missing"), None);
    let map = answer.headers();
    assert_eq!(map.get_all("x-two").iter().count(), 2);
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn a_chunked_answer_is_decoded_and_its_connection_kept() {
    let (address, _) = server(
        vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: t\r\n\r\n",
            OK,
        ],
        2,
    )
    .await;
    let mut conn = Connection::new(&address);
    assert_eq!(&get(&mut conn, 16).await.unwrap().body[..], b"abcdefg");
    assert_eq!(&get(&mut conn, 16).await.unwrap().body[..], b"ok");
}

#[tokio::test]
async fn an_interim_answer_is_skipped() {
    let (address, _) = server(
        vec!["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"],
        1,
    )
    .await;
    let answer = get(&mut Connection::new(&address), 16).await.unwrap();
    assert_eq!((answer.status, &answer.body[..]), (StatusCode::ACCEPTED, &b"ok"[..]));
}

#[tokio::test]
async fn an_answer_without_a_length_ends_with_the_connection() {
    let (address, _) = server(vec!["HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"], 1).await;
    let answer = get(&mut Connection::new(&address), 64).await.unwrap();
    assert_eq!(&answer.body[..], b"until the end");
}

#[tokio::test]
async fn a_head_answer_has_no_body_whatever_its_length_says() {
    let (address, _) = server(vec!["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", OK], 2).await;
    let mut conn = Connection::new(&address);
    let answer = conn.send(Method::HEAD, "/x", &[], Bytes::new(), 16, WAIT).await.unwrap();
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("content-length"), Some("5"));
    assert_eq!(
        &get(&mut conn, 16).await.unwrap().body[..],
        b"ok",
        "the connection was kept in step"
    );
}

#[tokio::test]
async fn an_answer_beyond_the_bound_is_an_error() {
    let long = format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", "x".repeat(100)).leak();
    let chunked = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n{}\r\n0\r\n\r\n",
        "x".repeat(100)
    )
    .leak();
    let unframed = format!("HTTP/1.1 200 OK\r\n\r\n{}", "x".repeat(100)).leak();
    for answer in [&*long, &*chunked, &*unframed] {
        let (address, _) = server(vec![answer], 1).await;
        let err = get(&mut Connection::new(&address), 10).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge(10)), "{err}");
    }
}

#[tokio::test]
async fn garbage_and_truncated_answers_are_errors() {
    for answer in [
        "not http\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
    ] {
        let (address, _) = server(vec![answer], 1).await;
        let err = get(&mut Connection::new(&address), 64).await.unwrap_err();
        assert!(matches!(err, Error::Protocol(_) | Error::Io(_)), "{answer:?}: {err}");
    }
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

// ---- pipelining: a queued request written behind the next one sent ----

/// Accepts one connection and plays `script` on it: `Read` reads what the client wrote (to the
/// returned channel), `Write` answers. A second connection is never accepted.
enum Step {
    Read,
    Write(&'static str),
    Pause(Duration),
    Close,
}

async fn scripted(script: Vec<Step>) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        for step in script {
            match step {
                Step::Read => {
                    let mut buf = [0u8; 4096];
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
                Step::Write(answer) => stream.write_all(answer.as_bytes()).await.unwrap(),
                Step::Pause(pause) => tokio::time::sleep(pause).await,
                Step::Close => return,
            }
        }
        // Hold the connection (and the listener) open until the client is done.
        let _ = stream.read(&mut [0u8; 1]).await;
        drop(listener);
    });
    (address, rx)
}

const ACCEPTED: &str = "HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\n\"OK\"";
const EVENT: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nevent\r\n0\r\n\r\n";
const SHORT: Option<Duration> = Some(Duration::from_secs(1));

async fn put_then_queued_get(conn: &mut Connection) -> Result<Answer, Error> {
    conn.queue(&Method::GET, "/next", &[("Lambda-Extension-Identifier", "id-1")], b"")
        .unwrap();
    assert!(!conn.has_pending(), "nothing is written before the next send");
    conn.send(Method::PUT, "/sub", &[], Bytes::from_static(b"{}"), 64, SHORT).await
}

#[tokio::test]
async fn a_queued_request_goes_in_the_same_write_and_its_answer_is_read_after() {
    // Both answers in one write, as a quick server gives them: the second waits for `receive`,
    // and the connection is kept for what follows (the server accepts no second one).
    let both: &'static str = format!("{ACCEPTED}{EVENT}").leak();
    let (address, mut written) = scripted(vec![Step::Read, Step::Write(both), Step::Read, Step::Write(OK)]).await;
    let mut conn = Connection::new(&address);
    let first = put_then_queued_get(&mut conn).await.unwrap();
    assert_eq!((first.status, &first.body[..]), (StatusCode::ACCEPTED, &b"\"OK\""[..]));
    assert_eq!(
        written.recv().await.unwrap(),
        format!(
            "PUT /sub HTTP/1.1\r\nHost: {address}\r\nContent-Length: 2\r\n\r\n{{}}GET /next HTTP/1.1\r\nHost: {address}\r\nLambda-Extension-Identifier: id-1\r\n\r\n"
        )
    );
    assert!(conn.has_pending());
    let second = conn.receive(64, SHORT).await.unwrap();
    assert_eq!((second.status, &second.body[..]), (StatusCode::OK, &b"event"[..]));
    assert!(!conn.has_pending());
    assert!(conn.stream.is_some(), "kept after the queued answer");
    assert!(
        matches!(conn.receive(64, SHORT).await, Err(Error::Request(_))),
        "nothing waits any more"
    );
    let third = conn.send(Method::GET, "/x", &[], Bytes::new(), 16, SHORT).await.unwrap();
    assert_eq!(&third.body[..], b"ok", "the same connection serves the next request");
}

#[tokio::test]
async fn a_queued_answer_that_comes_later_is_waited_for() {
    // Lambda holds `/event/next` until there is an event: its answer comes long after the first.
    let script = vec![
        Step::Read,
        Step::Write(ACCEPTED),
        Step::Pause(Duration::from_millis(200)),
        Step::Write(EVENT),
    ];
    let (address, _) = scripted(script).await;
    let mut conn = Connection::new(&address);
    put_then_queued_get(&mut conn).await.unwrap();
    let second = conn.receive(64, SHORT).await.unwrap();
    assert_eq!(&second.body[..], b"event");
}

#[tokio::test]
async fn a_queued_answer_that_does_not_come_in_time_is_given_up_with_its_connection() {
    let (address, _) = scripted(vec![Step::Read, Step::Write(ACCEPTED)]).await;
    let mut conn = Connection::new(&address);
    put_then_queued_get(&mut conn).await.unwrap();
    let err = conn.receive(64, Some(Duration::from_millis(50))).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(!conn.has_pending() && conn.stream.is_none());
}

#[tokio::test]
async fn a_connection_closed_before_the_queued_answer_is_an_error_that_says_so() {
    let (address, _) = scripted(vec![Step::Read, Step::Write(ACCEPTED), Step::Close]).await;
    let mut conn = Connection::new(&address);
    put_then_queued_get(&mut conn).await.unwrap();
    match conn.receive(64, SHORT).await {
        Err(Error::Io(e)) => assert!(is_closed(&e), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bytes_nobody_asked_for_after_an_answer_end_the_connection() {
    // Without a queued request, what follows an answer cannot be anyone's: the connection is not
    // reused (a second request would read it as its answer). The server accepts one connection.
    let both: &'static str = format!("{OK}{OK}").leak();
    let (address, _) = scripted(vec![Step::Read, Step::Write(both)]).await;
    let mut conn = Connection::new(&address);
    assert_eq!(&get(&mut conn, 16).await.unwrap().body[..], b"ok");
    assert!(conn.stream.is_none());
    assert!(!conn.has_pending());
}

#[tokio::test]
async fn a_failed_send_drops_its_queued_request() {
    let (address, _) = scripted(vec![Step::Read, Step::Close]).await;
    let mut conn = Connection::new(&address);
    assert!(put_then_queued_get(&mut conn).await.is_err());
    assert!(!conn.has_pending(), "the queued request went with its connection");
}

#[tokio::test]
async fn a_send_given_up_on_keeps_its_queued_request_and_drops_its_late_answer() {
    // The first answer comes after `send` gave up: the connection stays (the server may already
    // hold the queued request), the late answer is read and dropped, and the queued one's read.
    let script = vec![
        Step::Read,
        Step::Pause(Duration::from_millis(200)),
        Step::Write(ACCEPTED),
        Step::Write(EVENT),
    ];
    let (address, _) = scripted(script).await;
    let mut conn = Connection::new(&address);
    conn.queue(&Method::GET, "/next", &[], b"").unwrap();
    let err = conn
        .send(
            Method::PUT,
            "/sub",
            &[],
            Bytes::from_static(b"{}"),
            64,
            Some(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(conn.has_pending() && conn.stream.is_some());
    let answer = conn.receive(64, SHORT).await.unwrap();
    assert_eq!((answer.status, &answer.body[..]), (StatusCode::OK, &b"event"[..]));
}

#[tokio::test]
async fn a_send_given_up_on_without_a_queued_request_drops_its_connection() {
    let (address, _) = scripted(vec![Step::Read, Step::Pause(Duration::from_millis(200)), Step::Write(OK)]).await;
    let mut conn = Connection::new(&address);
    let err = conn
        .send(Method::GET, "/x", &[], Bytes::new(), 64, Some(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(!conn.has_pending() && conn.stream.is_none());
}
