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
