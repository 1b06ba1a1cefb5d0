#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;

/// A request the fake API received, and on which of its connections (0 for the first).
#[derive(Debug)]
struct Seen {
    route: String,
    headers: HeaderMap,
    body: Bytes,
    connection: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers: Vec::new(),
        body: body.to_owned(),
    }
}

fn registered(body: &str) -> Reply {
    Reply {
        headers: vec![("Lambda-Extension-Identifier", "ext-id-1".to_owned())],
        ..reply(200, body)
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Option<Reply> + Send + Sync>;

/// A fake Extensions API on 127.0.0.1: `handler` answers each request by its `"METHOD path"`
/// (`None`: never answer); every request is kept for the test to inspect.
struct FakeApi {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeApi {
    async fn start(handler: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let connections = Arc::new(AtomicUsize::new(0));
        let kept = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = connections.fetch_add(1, Ordering::SeqCst);
                let (handler, seen) = (Arc::clone(&handler), Arc::clone(&kept));
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (handler, seen) = (Arc::clone(&handler), Arc::clone(&seen));
                    async move {
                        let (parts, body) = request.into_parts();
                        let request = Seen {
                            route: format!("{} {}", parts.method, parts.uri.path()),
                            headers: parts.headers,
                            body: body.collect().await.unwrap().to_bytes(),
                            connection,
                        };
                        let answer = handler(&request);
                        seen.lock().unwrap().push(request);
                        let Some(answer) = answer else {
                            std::future::pending::<()>().await;
                            unreachable!()
                        };
                        let mut response = Response::new(Full::new(Bytes::from(answer.body)));
                        *response.status_mut() = answer.status;
                        for (name, value) in answer.headers {
                            response.headers_mut().insert(name, value.parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { address, seen }
    }

    fn client(&self) -> Client {
        Client::new(&self.address)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }
}

const REGISTER: &str = "POST /2020-01-01/extension/register";
const NEXT: &str = "GET /2020-01-01/extension/event/next";

#[tokio::test]
async fn register_sends_name_events_and_feature_and_keeps_the_identifier() {
    let api = FakeApi::start(|r| {
        (r.route == REGISTER).then(|| registered(r#"{"functionName":"fn","functionVersion":"$LATEST","handler":"h","accountId":"123"}"#))
    })
    .await;
    let mut client = api.client();
    let got = client
        .register("invocation-history-extension", &[EventType::Invoke, EventType::Shutdown])
        .await
        .unwrap();
    assert_eq!(
        got,
        Registration {
            function_name: "fn".into(),
            function_version: "$LATEST".into(),
            handler: "h".into()
        }
    );
    assert_eq!(client.extension_id(), "ext-id-1");
    let seen = api.seen();
    let request = &seen[0];
    assert_eq!(request.header("Lambda-Extension-Name"), Some("invocation-history-extension"));
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    assert_eq!(request.header("Lambda-Extension-Accept-Feature"), Some("accountId"));
    assert_eq!(&request.body[..], br#"{"events":["INVOKE","SHUTDOWN"]}"#);
}

#[tokio::test]
async fn register_failures_say_why() {
    let long_id = "i".repeat(MAX_IDENTIFIER_BYTES + 1);
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "forbidden",
            reply(403, r#"{"errorType":"Extension.Forbidden","errorMessage":"not allowed"}"#),
            "register extension: status 403: Extension.Forbidden: not allowed",
        ),
        ("forbidden, no body", reply(403, ""), "register extension: status 403"),
        (
            "forbidden, text body",
            reply(403, "go away\n"),
            "register extension: status 403: go away",
        ),
        ("no identifier", reply(200, "{}"), "no valid Lambda-Extension-Identifier"),
        (
            "identifier too long",
            Reply {
                headers: vec![("Lambda-Extension-Identifier", long_id)],
                ..reply(200, "{}")
            },
            "no valid Lambda-Extension-Identifier",
        ),
        ("bad json", registered("{"), "register extension: decode response"),
        ("not an object", registered("[]"), "register extension: decode response"),
        (
            "answer beyond 1 MiB",
            registered(&"x".repeat(MAX_ANSWER_BYTES + 1)),
            "larger than 1048576 bytes",
        ),
    ];
    for (name, answer, want) in cases {
        let answer = Mutex::new(Some(answer));
        let api = FakeApi::start(move |_| answer.lock().unwrap().take()).await;
        let mut client = api.client();
        let err = client.register("x", &[EventType::Invoke]).await.unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err} does not contain {want:?}");
        assert!(client.extension_id().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_registration_value_that_fails_validation_is_left_empty() {
    let body = format!(
        r#"{{"functionName":"fn\u0000x","functionVersion":7,"handler":"{}"}}"#,
        "h".repeat(MAX_HANDLER_BYTES + 1)
    );
    let api = FakeApi::start(move |_| Some(registered(&body))).await;
    let got = api.client().register("x", &[EventType::Shutdown]).await.unwrap();
    assert_eq!(got, Registration::default());
}

/// Serves `bodies` in turn from `/event/next`, and registers.
async fn event_source(bodies: &[&str]) -> FakeApi {
    let queue = Mutex::new(bodies.iter().map(|b| (*b).to_owned()).collect::<VecDeque<_>>());
    FakeApi::start(move |r| match r.route.as_str() {
        REGISTER => Some(registered("{}")),
        NEXT => queue.lock().unwrap().pop_front().map(|body| reply(200, &body)),
        _ => Some(reply(404, "unexpected")),
    })
    .await
}

#[tokio::test]
async fn next_event_decodes_invoke_and_shutdown() {
    let api = event_source(&[
        r#"{"eventType":"INVOKE","deadlineMs":1700000000000,"requestId":"r1","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-abc"}}"#,
        r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1700000002000}"#,
    ])
    .await;
    let mut client = api.client();
    assert_eq!(
        client.next_event().await.unwrap(),
        Event::Invoke {
            request_id: "r1".into(),
            deadline_ms: 1_700_000_000_000,
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:fn".into(),
            trace_id: "Root=1-abc".into(),
        }
    );
    assert_eq!(
        client.next_event().await.unwrap(),
        Event::Shutdown {
            reason: "spindown".into(),
            deadline_ms: 1_700_000_002_000
        }
    );
    // Before registration there is no identifier to send.
    assert!(api.seen().iter().all(|r| r.header("Lambda-Extension-Identifier").is_none()));
}

#[tokio::test]
async fn register_and_every_next_event_share_one_connection_and_send_the_identifier() {
    let invoke = r#"{"eventType":"INVOKE","requestId":"r"}"#;
    let api = event_source(&[invoke, invoke, invoke]).await;
    let mut client = api.client();
    client.register("x", &[EventType::Invoke]).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(client.next_event().await.unwrap(), Event::Invoke { .. }));
    }
    let seen = api.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r.connection == 0), "{seen:?}");
    assert!(
        seen[1..]
            .iter()
            .all(|r| r.header("Lambda-Extension-Identifier") == Some("ext-id-1"))
    );
}

#[tokio::test]
async fn an_invoke_with_invalid_fields_is_still_an_invoke() {
    let long_id = "r".repeat(MAX_REQUEST_ID_BYTES + 1);
    let body = format!(
        r#"{{"eventType":"INVOKE","deadlineMs":"soon","requestId":"{long_id}","invokedFunctionArn":["arn"],"tracing":"Root=1-abc"}}"#
    );
    let api = event_source(&[&body]).await;
    assert_eq!(
        api.client().next_event().await.unwrap(),
        Event::Invoke {
            request_id: String::new(),
            deadline_ms: 0,
            invoked_function_arn: String::new(),
            trace_id: String::new(),
        }
    );
}

#[tokio::test]
async fn a_body_that_is_not_an_event_object_is_an_error() {
    let api = event_source(&["not json", "null"]).await;
    let mut client = api.client();
    for _ in 0..2 {
        let err = client.next_event().await.unwrap_err();
        assert!(err.to_string().starts_with("next event: decode response: "), "{err}");
    }
}

#[tokio::test]
async fn a_failed_next_event_carries_the_status_and_lambdas_reason() {
    let api = FakeApi::start(|_| {
        Some(reply(
            500,
            r#"{"errorType":"Extension.Unknown","errorMessage":"line one\nline two"}"#,
        ))
    })
    .await;
    let err = api.client().next_event().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    // Control characters from the answer never reach a log line.
    assert_eq!(err.to_string(), "next event: status 500: Extension.Unknown: line one line two");
}

#[tokio::test]
async fn error_reports_send_the_type_header_the_message_and_the_identifier() {
    for (path, error_type) in [
        ("/init/error", "Extension.ConfigInvalid"),
        ("/exit/error", "Extension.EventLoopFailed"),
    ] {
        let route = format!("POST /2020-01-01/extension{path}");
        let api = FakeApi::start(move |r| match r.route.as_str() {
            REGISTER => Some(registered("{}")),
            _ if r.route == route => Some(reply(202, "")),
            _ => Some(reply(404, "unexpected")),
        })
        .await;
        let mut client = api.client();
        client.register("x", &[EventType::Invoke]).await.unwrap();
        if path == "/init/error" {
            client.init_error(error_type, "boom \"quoted\"").await.unwrap();
        } else {
            client.exit_error(error_type, "boom \"quoted\"").await.unwrap();
        }
        let seen = api.seen();
        let report = &seen[1];
        assert_eq!(report.header("Lambda-Extension-Function-Error-Type"), Some(error_type), "{path}");
        assert_eq!(report.header("Lambda-Extension-Identifier"), Some("ext-id-1"), "{path}");
        assert_eq!(report.header("Content-Type"), Some("application/json"), "{path}");
        let body: serde_json::Value = serde_json::from_slice(&report.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"errorType": error_type, "errorMessage": "boom \"quoted\""}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_error_report_is_cut_to_a_bounded_message() {
    let api = FakeApi::start(|_| Some(reply(202, ""))).await;
    let message = "é".repeat(MAX_REPORT_MESSAGE_BYTES);
    api.client().exit_error("Extension.Test", &message).await.unwrap();
    let seen = api.seen();
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    let sent = body["errorMessage"].as_str().unwrap();
    assert_eq!(sent.len(), MAX_REPORT_MESSAGE_BYTES);
    assert!(message.starts_with(sent));
}

#[tokio::test]
async fn an_error_report_lambda_does_not_answer_gives_up_after_a_second() {
    let api = FakeApi::start(|_| None).await;
    let started = Instant::now();
    let err = api.client().init_error("Extension.Test", "boom").await.unwrap_err();
    let waited = started.elapsed();
    assert!(err.to_string().contains("report /init/error: no answer within 1000 ms"), "{err}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn parse_event_keeps_what_is_valid_and_empties_what_is_not() {
    let long = |n: usize| "a".repeat(n);
    let invoke = |request_id: &str, arn: &str, trace: &str, deadline: i64| Event::Invoke {
        request_id: request_id.into(),
        deadline_ms: deadline,
        invoked_function_arn: arn.into(),
        trace_id: trace.into(),
    };
    let cases: Vec<(String, Event)> = vec![
        (
            // Escapes are decoded; unknown members, a `null` and a missing member are fine.
            r#"{"eventType":"INVOKE","requestId":"r\u0031","deadlineMs":5,"extra":{"a":[1,2]},"tracing":null}"#.into(),
            invoke("r1", "", "", 5),
        ),
        (
            format!(
                r#"{{"eventType":"INVOKE","requestId":"{}","invokedFunctionArn":"{}","tracing":{{"value":"{}"}}}}"#,
                long(MAX_REQUEST_ID_BYTES),
                long(MAX_ARN_BYTES),
                long(MAX_TRACE_ID_BYTES)
            ),
            invoke(&long(MAX_REQUEST_ID_BYTES), &long(MAX_ARN_BYTES), &long(MAX_TRACE_ID_BYTES), 0),
        ),
        (
            format!(
                r#"{{"eventType":"INVOKE","requestId":"ok","invokedFunctionArn":"{}","tracing":{{"value":"{}"}}}}"#,
                long(MAX_ARN_BYTES + 1),
                long(MAX_TRACE_ID_BYTES + 1)
            ),
            invoke("ok", "", "", 0),
        ),
        (
            r#"{"eventType":"INVOKE","requestId":"","deadlineMs":-1,"tracing":{"value":{"nested":"x"}}}"#.into(),
            invoke("", "", "", 0),
        ),
        (
            r#"{"eventType":"INVOKE","requestId":"a\nlevel=ERROR","deadlineMs":1.5}"#.into(),
            invoke("", "", "", 0),
        ),
        (
            r#"{"eventType":"INVOKE","deadlineMs":99999999999999999999,"requestId":true}"#.into(),
            invoke("", "", "", 0),
        ),
        (
            // As Go's decoder: a repeated member's last value wins.
            r#"{"eventType":"SHUTDOWN","eventType":"INVOKE","requestId":"a","requestId":"b"}"#.into(),
            invoke("b", "", "", 0),
        ),
        (
            r#"{"eventType":"SHUTDOWN"}"#.into(),
            Event::Shutdown {
                reason: String::new(),
                deadline_ms: 0,
            },
        ),
        (
            format!(r#"{{"eventType":"SHUTDOWN","shutdownReason":"{}","deadlineMs":3}}"#, long(65)),
            Event::Shutdown {
                reason: String::new(),
                deadline_ms: 3,
            },
        ),
        (r#"{"eventType":"RESTORE"}"#.into(), Event::Unknown("RESTORE".into())),
        (format!(r#"{{"eventType":"{}"}}"#, long(100)), Event::Unknown(long(64))),
        (r#"{"eventType":"A\tB"}"#.into(), Event::Unknown("AB".into())),
        (r#"{"eventType":7}"#.into(), Event::Unknown(String::new())),
        ("{}".into(), Event::Unknown(String::new())),
    ];
    for (body, want) in cases {
        assert_eq!(parse_event(body.as_bytes()), Ok(want), "{body}");
    }
}

#[test]
fn parse_event_refuses_only_what_is_not_an_object() {
    for body in [
        "",
        "null",
        "[]",
        "\"INVOKE\"",
        "{",
        r#"{"eventType":"INVOKE"} trailing"#,
        "{\"a\":\u{0}}",
    ] {
        assert!(parse_event(body.as_bytes()).is_err(), "{body:?}");
    }
    // Deep nesting where a member is read stops at serde_json's recursion limit, not the stack's.
    let deep = format!(r#"{{"tracing":{}"x"{}}}"#, r#"{"value":"#.repeat(10_000), "}".repeat(10_000));
    assert!(parse_event(deep.as_bytes()).is_err());
}

#[test]
fn deep_nesting_in_an_unknown_member_is_skipped() {
    let deep = format!(r#"{{"eventType":"SHUTDOWN","x":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(parse_event(deep.as_bytes()), Ok(Event::Shutdown { .. })));
}

#[test]
fn members_borrow_plain_strings_from_the_body() {
    // Why the decoder is hand-written: no allocation per member beyond the event's own strings.
    let plain: event::Member<'_> = serde_json::from_slice(br#""plain""#).unwrap();
    assert!(matches!(plain.text(), Some(std::borrow::Cow::Borrowed("plain"))));
    let escaped: event::Member<'_> = serde_json::from_slice(br#""pl\u0061in""#).unwrap();
    assert!(matches!(escaped.text(), Some(std::borrow::Cow::Owned(s)) if s == "plain"));
}

#[tokio::test]
async fn registration_waits_briefly_for_an_api_that_is_not_listening_yet() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        tokio::time::sleep(Duration::from_millis(30)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await.unwrap();
        let body = r#"{"functionName":"fn","functionVersion":"1","handler":"h"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: id-9\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
    });
    let mut client = Client::new(&format!("127.0.0.1:{port}"));
    let registration = client.register("ext", &[EventType::Invoke]).await.unwrap();
    assert_eq!((registration.function_name.as_str(), client.extension_id()), ("fn", "id-9"));
}

#[tokio::test]
async fn registration_gives_up_on_an_api_that_never_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let err = Client::new(&format!("127.0.0.1:{port}"))
        .register("ext", &[EventType::Invoke])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connect"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

const SUBSCRIBE: &str = "PUT /2022-07-01/telemetry";

/// Queues `/event/next` and sends a subscription in front of it, as the lifecycle does at init.
async fn subscribe_with_next_queued(client: &mut Client, timeout: Option<Duration>) -> Result<Answer, http_client::Error> {
    client.queue_next_event();
    assert!(!client.next_event_queued(), "written only with the next request");
    let id = client.extension_id().to_owned();
    let headers: &[(&str, &str)] = if id.is_empty() { &[] } else { &[(HEADER_IDENTIFIER, &id)] };
    client
        .connection()
        .send(
            Method::PUT,
            "/2022-07-01/telemetry",
            headers,
            Bytes::from_static(b"{}"),
            1024,
            timeout,
        )
        .await
}

#[tokio::test]
async fn a_queued_next_event_follows_the_next_request_and_is_not_asked_again() {
    let invoke = r#"{"eventType":"INVOKE","requestId":"r1"}"#;
    let queue = Mutex::new(VecDeque::from([invoke.to_owned(), invoke.to_owned()]));
    let api = FakeApi::start(move |r| match r.route.as_str() {
        REGISTER => Some(registered("{}")),
        SUBSCRIBE => Some(reply(200, r#""OK""#)),
        NEXT => queue.lock().unwrap().pop_front().map(|body| reply(200, &body)),
        _ => Some(reply(404, "unexpected")),
    })
    .await;
    let mut client = api.client();
    client.connect().await;
    client.register("x", &[EventType::Invoke]).await.unwrap();
    let sub = subscribe_with_next_queued(&mut client, None).await.unwrap();
    assert_eq!(sub.status, StatusCode::OK);
    assert!(client.next_event_queued());
    for _ in 0..2 {
        assert!(matches!(client.next_event().await.unwrap(), Event::Invoke { .. }));
    }
    let seen = api.seen();
    let routes: Vec<_> = seen.iter().map(|r| (r.route.as_str(), r.connection)).collect();
    assert_eq!(
        routes,
        [(REGISTER, 0), (SUBSCRIBE, 0), (NEXT, 0), (NEXT, 0)],
        "one connection, in order"
    );
    assert_eq!(seen[2].header("Lambda-Extension-Identifier"), Some("ext-id-1"));
}

#[tokio::test]
async fn a_queued_next_event_lost_with_its_connection_is_asked_again() {
    // The subscription's answer closes the connection: the server never read the queued request.
    let invoke = r#"{"eventType":"INVOKE","requestId":"r1"}"#;
    let api = FakeApi::start(move |r| match r.route.as_str() {
        REGISTER => Some(registered("{}")),
        SUBSCRIBE => Some(Reply {
            headers: vec![("Connection", "close".to_owned())],
            ..reply(200, r#""OK""#)
        }),
        NEXT => Some(reply(200, invoke)),
        _ => Some(reply(404, "unexpected")),
    })
    .await;
    let mut client = api.client();
    client.register("x", &[EventType::Invoke]).await.unwrap();
    subscribe_with_next_queued(&mut client, None).await.unwrap();
    assert!(!client.next_event_queued(), "nothing waits on a closed connection");
    assert!(matches!(client.next_event().await.unwrap(), Event::Invoke { .. }));
    let seen = api.seen();
    let routes: Vec<_> = seen.iter().map(|r| (r.route.as_str(), r.connection)).collect();
    assert_eq!(routes, [(REGISTER, 0), (SUBSCRIBE, 0), (NEXT, 1)]);
}

#[tokio::test]
async fn a_queued_next_event_outlives_a_subscription_given_up_on() {
    // Go's server reads a connection's requests one after the other and may take the queued
    // `/event/next` once it has answered the late subscription, whoever still listens. Lambda
    // then refuses a second `/event/next` from an extension that is already waiting (403), so the
    // client must not ask again on a new connection: it reads the late answer and drops it, then
    // reads its event.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let event = r#"{"eventType":"INVOKE","requestId":"r1"}"#;
    tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = first.read(&mut buf).await; // the PUT and the GET behind it
        tokio::time::sleep(Duration::from_millis(300)).await;
        let late = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\"OK\"";
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{event}", event.len());
        let _ = first.write_all(format!("{late}{answer}").as_bytes()).await;
        // A second connection asking for its next event is refused, as Lambda refuses it.
        while let Ok((mut other, _)) = listener.accept().await {
            let _ = other.read(&mut buf).await;
            let body = r#"{"errorType":"Extension.InvalidState"}"#;
            let refused = format!("HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = other.write_all(refused.as_bytes()).await;
        }
    });
    let mut client = Client::new(&address);
    let err = subscribe_with_next_queued(&mut client, Some(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(matches!(err, http_client::Error::Timeout(_)), "{err}");
    assert!(client.next_event_queued());
    assert!(matches!(client.next_event().await.unwrap(), Event::Invoke { .. }));
}
