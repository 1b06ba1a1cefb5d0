#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

fn no_file(path: &str) -> std::io::Result<String> {
    Err(std::io::Error::new(std::io::ErrorKind::NotFound, path.to_owned()))
}

#[test]
fn the_environment_triple_comes_first() {
    let source = Source::from_env(
        env(&[
            (ENV_ACCESS_KEY_ID, "AKID"),
            (ENV_SECRET_ACCESS_KEY, "secret"),
            (ENV_SESSION_TOKEN, "tok"),
            (ENV_FULL_URI, "http://127.0.0.1:9001/creds"),
        ]),
        no_file,
    )
    .unwrap();
    assert_eq!(
        source,
        Source::Environment(Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into())
        })
    );
}

#[test]
fn the_container_endpoint_where_the_triple_is_absent() {
    let source = Source::from_env(
        env(&[
            (ENV_FULL_URI, "http://127.0.0.1:9001/2021-04-23/credentials"),
            (ENV_AUTH_TOKEN, "t1"),
        ]),
        no_file,
    )
    .unwrap();
    assert_eq!(
        source,
        Source::Endpoint {
            address: "127.0.0.1:9001".into(),
            path: "/2021-04-23/credentials".into(),
            token: Some("t1".into())
        }
    );
    // The token file wins over the token variable.
    let source = Source::from_env(
        env(&[
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
            (ENV_AUTH_TOKEN, "t1"),
            (ENV_AUTH_TOKEN_FILE, "/f"),
        ]),
        |_| Ok("from-file\n".to_owned()),
    )
    .unwrap();
    assert_eq!(
        source,
        Source::Endpoint {
            address: "169.254.170.23:80".into(),
            path: "/v1/credentials".into(),
            token: Some("from-file".into())
        }
    );
}

#[test]
fn missing_or_unsafe_sources_are_named() {
    let err = Source::from_env(env(&[]), no_file).unwrap_err();
    assert!(err.contains(ENV_ACCESS_KEY_ID) && err.contains(ENV_FULL_URI), "{err}");
    for uri in [
        "https://127.0.0.1/c",
        "http://10.0.0.1:80/c",
        "http://example.com/c",
        "http://:80/c",
        "http://127.0.0.1:x/c",
    ] {
        let err = Source::from_env(env(&[(ENV_FULL_URI, uri)]), no_file).unwrap_err();
        assert!(err.contains(ENV_FULL_URI) && err.contains(uri), "{uri}: {err}");
    }
    for uri in [
        "http://[::1]:8080/c",
        "http://[fd00:ec2::23]/c",
        "http://localhost:9/c",
        "http://169.254.170.2/c",
    ] {
        assert!(Source::from_env(env(&[(ENV_FULL_URI, uri)]), no_file).is_ok(), "{uri}");
    }
    let err = Source::from_env(
        env(&[(ENV_FULL_URI, "http://127.0.0.1:1/c"), (ENV_AUTH_TOKEN_FILE, "/missing")]),
        no_file,
    )
    .unwrap_err();
    assert!(err.contains(ENV_AUTH_TOKEN_FILE), "{err}");
}

/// An endpoint that answers every request with `body` and counts the requests.
async fn endpoint(
    body: &'static str,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let counter = std::sync::Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        }
    });
    (address, count, rx)
}

#[tokio::test]
async fn endpoint_credentials_are_fetched_with_the_token_and_kept_until_near_expiry() {
    let (address, count, mut requests) =
        endpoint(r#"{"AccessKeyId":"AK","SecretAccessKey":"SK","Token":"ST","Expiration":"2026-11-29T20:00:00Z"}"#).await;
    let mut provider = Provider::new(Source::Endpoint {
        address,
        path: "/creds".into(),
        token: Some("auth-token".into()),
    });
    let early = Timestamp::parse_rfc3339("2026-11-29T19:00:00Z").unwrap();
    let got = provider.get(early).await.unwrap();
    assert_eq!((got.access_key_id.as_str(), got.session_token.as_deref()), ("AK", Some("ST")));
    let request = requests.recv().await.unwrap();
    assert!(
        request.starts_with("GET /creds HTTP/1.1\r\n") && request.contains("\r\nAuthorization: auth-token\r\n"),
        "{request}"
    );
    provider.get(early).await.unwrap();
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "kept while far from expiry");
    let near = Timestamp::parse_rfc3339("2026-11-29T19:56:00Z").unwrap();
    provider.get(near).await.unwrap();
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "fetched again within the margin"
    );
}

#[tokio::test]
async fn a_bad_endpoint_answer_is_an_error() {
    let (address, _, _) = endpoint(r#"{"Code":"Denied"}"#).await;
    let mut provider = Provider::new(Source::Endpoint {
        address,
        path: "/".into(),
        token: None,
    });
    let err = provider.get(Timestamp(0)).await.unwrap_err();
    assert!(err.starts_with("credentials endpoint"), "{err}");
}
