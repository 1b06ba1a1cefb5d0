#![allow(clippy::unwrap_used)]

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::s3::credentials::Source;
use crate::s3::fake::{Got, read_request};
use crate::s3::sigv4::Credentials;
use crate::tls::Tls;

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

fn credentials() -> Provider {
    Provider::new(Source::Environment(Credentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
        session_token: Some("session".into()),
    }))
}

fn bucket(endpoint: Endpoint) -> Bucket {
    Bucket::new(&endpoint, "eu-west-1", "my-bucket", credentials(), None).unwrap()
}

#[tokio::test]
async fn a_put_is_path_style_signed_and_carries_the_body_whole() {
    let (endpoint, mut requests) = fake_s3(vec![(200, "")]).await;
    let address = format!("{}:{}", endpoint.host, endpoint.port);
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
    let parsed = |url: &str| {
        let e = Endpoint::parse(url).unwrap();
        (e.host, e.port, e.https, e.virtual_hosted)
    };
    assert_eq!(parsed("http://127.0.0.1:5000"), ("127.0.0.1".into(), 5000, false, false));
    assert_eq!(parsed("http://localhost/"), ("localhost".into(), 80, false, false));
    assert_eq!(parsed("http://[::1]:9000"), ("[::1]".into(), 9000, false, false));
    assert_eq!(parsed("https://minio.internal"), ("minio.internal".into(), 443, true, false));
    for bad in ["ftp://x", "http://", "https://:443", "http://h:port", "http://h/path", "http://u@h"] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn aws_endpoints_are_regional_and_virtual_hosted_unless_the_bucket_has_a_dot() {
    let aws = Endpoint::aws("eu-west-1").unwrap();
    let of = |bucket: &str| {
        let a = Addressing::of(&aws, bucket);
        (a.address, a.host_header, a.path_prefix)
    };
    assert_eq!(
        of("my-bucket"),
        (
            "my-bucket.s3.eu-west-1.amazonaws.com:443".into(),
            "my-bucket.s3.eu-west-1.amazonaws.com".into(),
            "/".into()
        )
    );
    // S3's certificate is `*.s3.<region>.amazonaws.com`: a dotted name would not match it.
    assert_eq!(
        of("logs.example.com"),
        (
            "s3.eu-west-1.amazonaws.com:443".into(),
            "s3.eu-west-1.amazonaws.com".into(),
            "/logs.example.com/".into()
        )
    );
    assert_eq!(Endpoint::aws("cn-north-1").unwrap().host, "s3.cn-north-1.amazonaws.com.cn");
    for bad in ["", "eu-west-1.evil.com", "EU-WEST-1", "eu west"] {
        assert!(Endpoint::aws(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_named_endpoint_is_path_style_and_its_host_header_names_a_port_only_when_not_the_default() {
    let a = Addressing::of(&Endpoint::parse("http://127.0.0.1:5000").unwrap(), "b");
    assert_eq!(
        (a.address.as_str(), a.host_header.as_str(), a.path_prefix.as_str()),
        ("127.0.0.1:5000", "127.0.0.1:5000", "/b/")
    );
    let a = Addressing::of(&Endpoint::parse("https://s3.example.net").unwrap(), "b");
    assert_eq!(
        (a.address.as_str(), a.host_header.as_str()),
        ("s3.example.net:443", "s3.example.net")
    );
}

#[test]
fn an_https_endpoint_without_tls_settings_is_refused() {
    let endpoint = Endpoint::parse("https://127.0.0.1:1").unwrap();
    let err = Bucket::new(&endpoint, "eu-west-1", "b", credentials(), None).err().unwrap();
    assert!(err.contains("TLS"), "{err}");
}

/// A fake S3 over TLS with the test certificate (`testdata/tls`), answering 200 to each request.
async fn tls_fake_s3() -> (Endpoint, mpsc::UnboundedReceiver<Got>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(include_bytes!("../../../testdata/tls/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../../../testdata/tls/server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls_graviola::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::parse(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut stream) = acceptor.accept(stream).await else { continue };
            while let Some(got) = read_request(&mut stream).await {
                let _ = tx.send(got);
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
                stream.flush().await.unwrap();
            }
        }
    });
    (endpoint, rx)
}

fn test_ca() -> String {
    format!("{}/testdata/tls/ca.pem", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn puts_go_over_tls_to_a_server_whose_certificate_a_named_ca_signed() {
    let (endpoint, mut requests) = tls_fake_s3().await;
    let tls = Tls::new(Some(&test_ca())).unwrap();
    let mut bucket = Bucket::new(&endpoint, "eu-west-1", "my-bucket", credentials(), Some(&tls)).unwrap();
    for n in 0..2 {
        let body = Bytes::from(format!("batch {n}"));
        bucket.put_ndjson_gz("k", body.clone(), NOW, WAIT).await.unwrap();
        let got = requests.recv().await.unwrap();
        assert!(got.head.starts_with("PUT /my-bucket/k HTTP/1.1\r\n"), "{}", got.head);
        assert_eq!(got.header("host"), Some(format!("127.0.0.1:{}", endpoint.port).as_str()));
        assert_eq!(got.body, body.to_vec());
    }
}

#[tokio::test]
async fn a_server_no_trusted_ca_signed_is_refused_and_nothing_is_sent() {
    let (endpoint, mut requests) = tls_fake_s3().await;
    // Mozilla's roots, which do not hold the test CA.
    let tls = Tls::new(None).unwrap();
    let mut bucket = Bucket::new(&endpoint, "eu-west-1", "b", credentials(), Some(&tls)).unwrap();
    let err = bucket.put_ndjson_gz("k", Bytes::from_static(b"x"), NOW, WAIT).await.unwrap_err();
    assert!(matches!(err, PutError::Transport(_)), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(requests.try_recv().is_err());
}
