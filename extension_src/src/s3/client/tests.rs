#![allow(clippy::unwrap_used)]

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::s3::credentials::Source;
use crate::s3::fake::{Got, read_request};
use crate::s3::sigv4::Credentials;

const WAIT: Duration = Duration::from_secs(5);
// 2026-11-29T19:05:00Z
const NOW: Timestamp = Timestamp(1_795_979_100_000_000_000);

/// A fake S3 that answers its requests with `answers` in turn and sends each request it read.
async fn fake_s3(answers: Vec<(u16, &'static str)>) -> (Endpoint, mpsc::UnboundedReceiver<Got>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut answers = answers.into_iter();
        let (mut stream, _) = listener.accept().await.unwrap();
        while let Some(got) = read_request(&mut stream).await {
            let _ = tx.send(got);
            let Some((status, body)) = answers.next() else { return };
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            stream.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (endpoint, rx)
}

fn bucket(endpoint: Endpoint) -> Bucket {
    let credentials = Provider::new(Source::Environment(Credentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
        session_token: Some("session".into()),
    }));
    Bucket::new(endpoint, "eu-west-1", "my-bucket", credentials)
}

#[tokio::test]
async fn a_put_is_path_style_signed_and_carries_the_body_whole() {
    let (endpoint, mut requests) = fake_s3(vec![(200, "")]).await;
    let address = endpoint.address.clone();
    let mut bucket = bucket(endpoint);
    let body = Bytes::from_static(b"\x1f\x8b gzip bytes");
    bucket
        .put_ndjson_gz("p/function=f/date=2026-11-29/hour=19/env-000001.ndjson.gz", body.clone(), NOW, WAIT)
        .await
        .unwrap();
    let got = requests.recv().await.unwrap();
    assert!(
        got.head
            .starts_with("PUT /my-bucket/p/function%3Df/date%3D2026-11-29/hour%3D19/env-000001.ndjson.gz HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(got.body, body.to_vec());
    assert_eq!(got.header("host"), Some(address.as_str()));
    assert_eq!(got.header("x-amz-content-sha256"), Some(sigv4::sha256_hex(&body).as_str()));
    assert_eq!(got.header("x-amz-date"), Some("20261129T190500Z"));
    assert_eq!(got.header("x-amz-security-token"), Some("session"));
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    let authorization = got.header("authorization").unwrap();
    assert!(
        authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261129/eu-west-1/s3/aws4_request, \
             SignedHeaders=content-encoding;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
        ),
        "{authorization}"
    );
}

#[tokio::test]
async fn answers_are_classified_for_retries() {
    let error = |code: &'static str| -> &'static str {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>").leak()
    };
    let (endpoint, _requests) = fake_s3(vec![
        (403, error("AccessDenied")),
        (404, error("NoSuchBucket")),
        (500, error("InternalError")),
        (503, error("SlowDown")),
        (400, error("RequestTimeout")),
        (400, error("InvalidArgument")),
        (502, ""),
    ])
    .await;
    let mut bucket = bucket(endpoint);
    let mut outcomes = Vec::new();
    for _ in 0..7 {
        let err = bucket.put_ndjson_gz("k", Bytes::from_static(b"x"), NOW, WAIT).await.unwrap_err();
        outcomes.push((err.to_string(), err.is_retryable()));
    }
    let expected = [
        ("status 403: AccessDenied", false),
        ("status 404: NoSuchBucket", false),
        ("status 500: InternalError", true),
        ("status 503: SlowDown", true),
        ("status 400: RequestTimeout", true),
        ("status 400: InvalidArgument", false),
        ("status 502", true),
    ];
    assert_eq!(outcomes, expected.map(|(s, r)| (s.to_owned(), r)));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut bucket = bucket(Endpoint::parse(&format!("http://{address}")).unwrap());
    let err = bucket.put_ndjson_gz("k", Bytes::from_static(b"x"), NOW, WAIT).await.unwrap_err();
    assert!(matches!(err, PutError::Transport(_)) && err.is_retryable(), "{err}");
}

#[test]
fn endpoints_parse_or_say_why_not() {
    assert_eq!(Endpoint::parse("http://127.0.0.1:5000").unwrap().address, "127.0.0.1:5000");
    assert_eq!(Endpoint::parse("http://localhost/").unwrap().address, "localhost:80");
    assert_eq!(Endpoint::parse("http://[::1]:9000").unwrap().address, "[::1]:9000");
    assert!(Endpoint::parse("https://s3.eu-west-1.amazonaws.com").unwrap_err().contains("TLS"));
    for bad in ["ftp://x", "http://", "http://h:port", "http://h/path", "http://u@h"] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}
