#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::parse::{HEADER_DEADLINE, HEADER_FUNCTION_ARN, HEADER_REQUEST_ID, HEADER_TRACE_ID, PATH_NEXT};
use super::*;
use crate::history::{Record, fixed_clock};
use crate::http_client::Connection;
use crate::log::Level;
use crate::serve::full;
use crate::time::Timestamp;

const NOW: i64 = 1_795_424_000_000_000_000;
const WAIT: Option<Duration> = Some(Duration::from_secs(10));
const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";
const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

// ---------------------------------------------------------------------------------------------
// Harness: a fake upstream Runtime API, the proxy in front of it, and runtimes of several kinds.

struct Harness {
    address: String,
    proxy: RuntimeProxy,
    store: Arc<Store>,
    logs: Arc<Mutex<String>>,
}

impl Harness {
    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    fn record(&self, id: &str) -> Record {
        self.store.get(id).unwrap_or_else(|| panic!("no record for {id}"))
    }

    async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> crate::http_client::Answer {
        let mut runtime = Connection::new(&self.address);
        runtime
            .send(method, path, headers, Bytes::copy_from_slice(body), 16 << 20, WAIT)
            .await
            .unwrap()
    }
}

/// An upstream served by `handler`; its server runs until the test's runtime ends.
async fn fake_upstream<F, Fut>(handler: F) -> String
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = Server::start(listener, Limits::default(), Logger::capture(Level::Error).0, handler);
    std::mem::forget(server); // dropping leaves it running; nothing to shut down in a test
    address
}

async fn proxy_on(listener: TcpListener, upstream: &str) -> Harness {
    let address = listener.local_addr().unwrap().to_string();
    let store = Arc::new(Store::new(10, fixed_clock(NOW)));
    let (log, logs) = Logger::capture(Level::Debug);
    let proxy = RuntimeProxy::start(listener, upstream.to_owned(), Arc::clone(&store), log, fixed_clock(NOW));
    Harness {
        address,
        proxy,
        store,
        logs,
    }
}

async fn proxy_to(upstream: &str) -> Harness {
    proxy_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), upstream).await
}

async fn setup<F, Fut>(handler: F) -> Harness
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    proxy_to(&fake_upstream(handler).await).await
}

fn answer(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(full(body)).unwrap()
}

/// A body whose frames the test sends one at a time.
struct ChannelBody(mpsc::Receiver<Frame<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

fn trailers(name: &str, value: &str) -> Frame<Bytes> {
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    Frame::trailers(map)
}

/// A runtime speaking HTTP/1 through hyper, for streamed bodies.
async fn hyper_runtime<B>(address: &str) -> SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::serve::BoxError>,
{
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

/// Reads one message head (through the blank line) from `stream`; bytes after it stay in `buf`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return head;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("no head within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole head: {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string() // closed when dropped: nothing listens there
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The Go unit tests, ported.

#[tokio::test]
async fn next_creates_the_record_before_the_runtime_sees_the_event() {
    let h = setup(|r: Request<Incoming>| async move {
        if r.method() != Method::GET || r.uri().path() != PATH_NEXT {
            return answer(400, &[], "unexpected request");
        }
        answer(
            200,
            &[
                (HEADER_REQUEST_ID, "req-1"),
                (HEADER_DEADLINE, "1795424684697"),
                (HEADER_FUNCTION_ARN, ARN),
                (HEADER_TRACE_ID, "Root=1-abc"),
                ("Lambda-Runtime-Client-Context", "ctx"),
            ],
            r#"{"hello":"world"}"#,
        )
    })
    .await;
    let got = h.call(Method::GET, PATH_NEXT, &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], br#"{"hello":"world"}"#);
    assert_eq!(got.headers()["lambda-runtime-client-context"], "ctx");
    assert_eq!(got.headers()[HEADER_REQUEST_ID], "req-1");
    let record = h.record("req-1");
    assert_eq!(record.extra.as_ref().unwrap().runtime_received_at, Timestamp(NOW));
    assert_eq!(record.deadline_ms, 1_795_424_684_697);
    assert_eq!(record.trace_id.unwrap().to_string(), "Root=1-abc");
    assert_eq!(record.invoked_function_arn.as_deref(), Some(ARN));
    assert_eq!(record.sequence, 1);
}

/// The record may begin with the INVOKE event: the proxy completes it, never replaces what
/// INVOKE said.
#[tokio::test]
async fn next_completes_a_record_begun_by_invoke() {
    let h = setup(|_| async {
        answer(
            200,
            &[(HEADER_REQUEST_ID, "r1"), (HEADER_DEADLINE, "42"), (HEADER_TRACE_ID, TRACE)],
            "{}",
        )
    })
    .await;
    h.store.begin("r1", Source::Invoke, |r, _| r.deadline_ms = 7);
    h.call(Method::GET, PATH_NEXT, &[], b"").await;
    let record = h.record("r1");
    assert_eq!((record.sequence, record.deadline_ms), (1, 7));
    assert_eq!(record.trace_id.unwrap().to_string(), TRACE);
    assert_eq!(h.store.counts().served, 1);
}

/// Lambda retries a failed asynchronous invocation with the same request id: the runtime taking
/// it again is a new attempt, a new record.
#[tokio::test]
async fn retried_request_id_is_a_new_record() {
    let h = setup(|_| async { answer(200, &[(HEADER_REQUEST_ID, "req-1")], "{}") }).await;
    for _ in 0..2 {
        assert_eq!(h.call(Method::GET, PATH_NEXT, &[], b"").await.status, 200);
    }
    let records = h.store.records();
    assert_eq!(h.store.counts().served, 2);
    assert_eq!(records[1].request_id.to_string(), "req-1");
    assert_eq!(records[1].sequence, 2);
}

#[tokio::test]
async fn response_and_error_are_forwarded_and_recorded() {
    struct Case {
        name: &'static str,
        path: &'static str,
        error_type_header: &'static str,
        body: &'static str,
        upstream_status: u16,
        outcome: Option<Outcome>,
        error_type: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "success",
            path: "/2018-06-01/runtime/invocation/r1/response",
            error_type_header: "",
            body: r#"{"ok":true}"#,
            upstream_status: 202,
            outcome: Some(Outcome::Success),
            error_type: None,
        },
        Case {
            name: "error",
            path: "/2018-06-01/runtime/invocation/r1/error",
            error_type_header: "Runtime.UserError",
            body: r#"{"errorMessage":"boom"}"#,
            upstream_status: 202,
            outcome: Some(Outcome::Error),
            error_type: Some("Runtime.UserError"),
        },
        Case {
            name: "the header wins over the body",
            path: "/2018-06-01/runtime/invocation/r1/error",
            error_type_header: "Runtime.UserError",
            body: r#"{"errorType":"OrderFailed","errorMessage":"boom"}"#,
            upstream_status: 202,
            outcome: Some(Outcome::Error),
            error_type: Some("Runtime.UserError"),
        },
        Case {
            name: "error type from the body when no header",
            path: "/2018-06-01/runtime/invocation/r1/error",
            error_type_header: "",
            body: r#"{"errorType":"OrderFailed","errorMessage":"boom"}"#,
            upstream_status: 202,
            outcome: Some(Outcome::Error),
            error_type: Some("OrderFailed"),
        },
        Case {
            name: "rejected by Lambda",
            path: "/2018-06-01/runtime/invocation/r1/response",
            error_type_header: "",
            body: "{}",
            upstream_status: 413,
            outcome: None,
            error_type: None,
        },
    ];
    for case in cases {
        let (path, body, header, status) = (case.path, case.body, case.error_type_header, case.upstream_status);
        let h = setup(move |r: Request<Incoming>| async move {
            let got_header = r.headers().get(parse::HEADER_ERROR_TYPE).map(|v| v.to_str().unwrap().to_owned());
            let got_path = r.uri().path().to_owned();
            let got = r.into_body().collect().await.unwrap().to_bytes();
            if got_path != path || got != body.as_bytes() || got_header.as_deref().unwrap_or("") != header {
                return answer(400, &[], format!("upstream got {got_path} {got:?} {got_header:?}"));
            }
            answer(status, &[], r#"{"status":"OK"}"#)
        })
        .await;
        h.store.begin("r1", Source::Invoke, |_, _| {});
        let headers: &[(&str, &str)] = if header.is_empty() {
            &[]
        } else {
            &[(parse::HEADER_ERROR_TYPE, header)]
        };
        let got = h.call(Method::POST, path, headers, body.as_bytes()).await;
        assert_eq!(got.status, status, "{}: {:?}", case.name, got.body);
        let record = h.record("r1");
        assert_eq!(record.outcome, case.outcome, "{}", case.name);
        assert_eq!(record.error_type(), case.error_type, "{}", case.name);
        if case.outcome.is_some() {
            let extra = record.extra.as_ref().unwrap();
            assert_eq!(extra.response_bytes, body.len() as u64, "{}", case.name);
            assert_eq!(extra.runtime_responded_at, Timestamp(NOW), "{}", case.name);
        }
    }
}

/// A runtime that sends `Expect: 100-continue` (curl does for large bodies) waits for
/// `100 Continue` before its body: it gets it through the proxy, and the outcome is recorded from
/// the final status.
#[tokio::test]
async fn expect_continue_gets_100_and_records_the_final_status() {
    let h = setup(|r: Request<Incoming>| async move {
        let got = r.into_body().collect().await.unwrap().to_bytes();
        answer(202, &[("x-got", &got.len().to_string())], "")
    })
    .await;
    h.store.begin("r1", Source::Invoke, |_, _| {});
    let body = vec![b'x'; 64 << 10];
    let mut runtime = TcpStream::connect(&h.address).await.unwrap();
    let head = format!(
        "POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    runtime.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let interim = read_head(&mut runtime, &mut buf).await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue\r\n"), "{interim}");
    runtime.write_all(&body).await.unwrap();
    let last = read_head(&mut runtime, &mut buf).await;
    assert!(last.starts_with("HTTP/1.1 202 Accepted\r\n"), "{last}");
    assert!(last.to_ascii_lowercase().contains(&format!("x-got: {}\r\n", body.len())), "{last}");
    let record = h.record("r1");
    assert_eq!(record.outcome, Some(Outcome::Success));
    assert_eq!(record.extra.unwrap().response_bytes, body.len() as u64);
}

/// Dropping this tells the test that the upstream's handler was dropped (its client left).
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A runtime that disconnects (killed mid long-poll) is not an upstream failure, and Lambda sees
/// it leave: the proxy closes its upstream connection too.
#[tokio::test]
async fn runtime_disconnect_is_not_an_upstream_error_and_reaches_lambda() {
    let (left_tx, left_rx) = oneshot::channel();
    let left_tx = Arc::new(Mutex::new(Some(left_tx)));
    let h = setup(move |_| {
        let signal = DropSignal(left_tx.lock().unwrap().take());
        async move {
            let _signal = signal;
            std::future::pending::<()>().await;
            answer(200, &[], "")
        }
    })
    .await;
    let mut runtime = TcpStream::connect(&h.address).await.unwrap();
    runtime
        .write_all(format!("GET {PATH_NEXT} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    wait_for("the request to reach the proxy", || h.proxy.stats().forwarded == 1).await;
    drop(runtime);
    tokio::time::timeout(Duration::from_secs(5), left_rx)
        .await
        .expect("the upstream still holds the abandoned long poll")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(h.proxy.stats().upstream_errors, 0);
    assert!(!h.logs().contains("upstream failed"), "{}", h.logs());
    let line = format!(
        "level=DEBUG msg=\"runtime proxy: runtime disconnected\" extension=invocation-history-extension method=GET path={PATH_NEXT}\n"
    );
    assert!(h.logs().contains(&line), "{}", h.logs());
}

#[tokio::test]
async fn unknown_paths_methods_headers_and_statuses_pass_through() {
    let h = setup(|r: Request<Incoming>| async move {
        let h = r.headers();
        let ok = r.method() == Method::PATCH
            && *r.uri() == "/2099-01-01/runtime/new-thing?x=1"
            && h["x-custom"] == "v"
            && h["host"] == "runtime.example:9001"
            && !h.contains_key("x-hop")
            && !h.contains_key("connection")
            && !h.contains_key("x-forwarded-for");
        if !ok {
            return answer(400, &[], format!("{} {} {h:?}", r.method(), r.uri()));
        }
        let got = r.into_body().collect().await.unwrap().to_bytes();
        answer(
            418,
            &[("X-Upstream", "u"), ("x-body", std::str::from_utf8(&got).unwrap())],
            "short and stout",
        )
    })
    .await;
    let mut runtime = hyper_runtime::<http_body_util::Full<Bytes>>(&h.address).await;
    let request = Request::builder()
        .method(Method::PATCH)
        .uri("/2099-01-01/runtime/new-thing?x=1")
        .header("host", "runtime.example:9001")
        .header("x-custom", "v")
        .header("connection", "X-Hop")
        .header("x-hop", "drop me")
        .body(http_body_util::Full::new(Bytes::from_static(b"data")))
        .unwrap();
    let response = runtime.send_request(request).await.unwrap();
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    assert_eq!(head.status, 418, "{body:?}");
    assert_eq!(&body[..], b"short and stout");
    assert_eq!(head.headers["x-upstream"], "u");
    assert_eq!(head.headers["x-body"], "data");
    assert!(h.store.records().is_empty());
}

#[tokio::test]
async fn upstream_down_gives_502_json() {
    let dead = dead_address().await;
    let h = proxy_to(&dead).await;
    let got = h.call(Method::GET, PATH_NEXT, &[], b"").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.headers()["content-type"], "application/json");
    let body = json(&got.body);
    assert_eq!(body["errorType"], UPSTREAM_ERROR_TYPE);
    assert!(body["errorMessage"].as_str().unwrap().contains(&dead), "{body}");
    assert_eq!(
        h.proxy.stats(),
        Stats {
            forwarded: 1,
            upstream_errors: 1
        }
    );
    assert!(
        h.logs().contains("level=WARN msg=\"runtime proxy: upstream failed\""),
        "{}",
        h.logs()
    );
}

#[tokio::test]
async fn streamed_response_passes_chunk_by_chunk_with_trailers() {
    let (first_tx, first_rx) = oneshot::channel::<()>();
    let first_tx = Arc::new(Mutex::new(Some(first_tx)));
    let (done_tx, mut done_rx) = mpsc::channel::<(Vec<u8>, Option<String>)>(1);
    let h = setup(move |r: Request<Incoming>| {
        let first_tx = first_tx.lock().unwrap().take();
        let done_tx = done_tx.clone();
        async move {
            let mut body = r.into_body();
            let mut got = Vec::new();
            let mut trailer = None;
            let mut first_tx = first_tx;
            while let Some(frame) = body.frame().await {
                let frame = frame.unwrap();
                if let Some(data) = frame.data_ref() {
                    got.extend_from_slice(data);
                    if got.len() >= 5 {
                        // The upstream has the first chunk while the runtime still writes.
                        first_tx.take().map(|tx| tx.send(()));
                    }
                } else if let Some(t) = frame.trailers_ref() {
                    trailer = t.get(parse::HEADER_ERROR_TYPE).map(|v| v.to_str().unwrap().to_owned());
                }
            }
            done_tx.send((got, trailer)).await.unwrap();
            answer(202, &[], "")
        }
    })
    .await;
    h.store.begin("s1", Source::Invoke, |_, _| {});
    let (frames, rx) = mpsc::channel(4);
    let mut runtime = hyper_runtime::<ChannelBody>(&h.address).await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/2018-06-01/runtime/invocation/s1/response")
        .header("Lambda-Runtime-Function-Response-Mode", "streaming")
        .header("Trailer", "Lambda-Runtime-Function-Error-Type")
        .body(ChannelBody(rx))
        .unwrap();
    let sent = tokio::spawn(runtime.send_request(request));
    frames.send(Frame::data(Bytes::from_static(b"chunk"))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), first_rx)
        .await
        .expect("first chunk not forwarded before the body ended: the proxy buffers")
        .unwrap();
    frames.send(Frame::data(Bytes::from_static(b"-rest"))).await.unwrap();
    frames
        .send(trailers("Lambda-Runtime-Function-Error-Type", "Runtime.StreamError"))
        .await
        .unwrap();
    drop(frames);
    let response = sent.await.unwrap().unwrap();
    assert_eq!(response.status(), 202);
    let (got, trailer) = done_rx.recv().await.unwrap();
    assert_eq!(&got[..], b"chunk-rest");
    assert_eq!(trailer.as_deref(), Some("Runtime.StreamError"));
    let record = h.record("s1");
    assert_eq!(record.outcome, Some(Outcome::Error));
    assert_eq!(record.error_type(), Some("Runtime.StreamError"));
    assert_eq!(record.extra.unwrap().response_bytes, 10);
}

/// The other direction: Lambda's answer reaches the runtime frame by frame, trailers included
/// for a runtime that accepts them.
#[tokio::test]
async fn upstream_stream_reaches_the_runtime_chunk_by_chunk_with_trailers() {
    let (frames, rx) = mpsc::channel::<Frame<Bytes>>(4);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let h = setup(move |_| {
        let rx = rx.lock().unwrap().take().unwrap();
        async move {
            let body = ChannelBody(rx).map_err(|never| match never {}).boxed();
            let mut response = Response::new(body);
            response.headers_mut().insert("trailer", HeaderValue::from_static("x-checksum"));
            response
        }
    })
    .await;
    let mut runtime = hyper_runtime::<http_body_util::Empty<Bytes>>(&h.address).await;
    let request = Request::builder()
        .uri("/2099-01-01/stream")
        .header("te", "trailers")
        .body(http_body_util::Empty::new())
        .unwrap();
    let mut body = runtime.send_request(request).await.unwrap().into_body();
    frames.send(Frame::data(Bytes::from_static(b"first"))).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk waits for the rest: the proxy buffers");
    assert_eq!(first.unwrap().unwrap().into_data().unwrap(), "first");
    frames.send(Frame::data(Bytes::from_static(b"second"))).await.unwrap();
    frames.send(trailers("x-checksum", "abc")).await.unwrap();
    drop(frames);
    let rest = body.collect().await.unwrap();
    assert_eq!(rest.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(rest.to_bytes(), "second");
}

#[tokio::test]
async fn six_mebibyte_bodies_are_intact_both_ways() {
    let payload: Bytes = (0..6usize << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let expected = payload.clone();
    let h = setup(move |r: Request<Incoming>| {
        let expected = expected.clone();
        async move {
            let got = r.into_body().collect().await.unwrap().to_bytes();
            if got != expected {
                return answer(
                    400,
                    &[],
                    format!("upstream got {} bytes, want {} intact", got.len(), expected.len()),
                );
            }
            answer(200, &[(HEADER_REQUEST_ID, "x")], expected)
        }
    })
    .await;
    h.store.begin("x", Source::Invoke, |_, _| {});
    let got = h
        .call(Method::POST, "/2018-06-01/runtime/invocation/x/response", &[], &payload)
        .await;
    assert_eq!(got.status, 200, "{:?}", &got.body[..got.body.len().min(200)]);
    assert!(
        got.body == payload,
        "the runtime got {} bytes back, not the {} sent",
        got.body.len(),
        payload.len()
    );
    assert_eq!(h.record("x").extra.unwrap().response_bytes, payload.len() as u64);
}

#[tokio::test]
async fn next_long_poll_has_no_timeout() {
    let h = setup(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await; // stands for a long wait for the next event
        answer(200, &[(HEADER_REQUEST_ID, "late")], "")
    })
    .await;
    assert_eq!(h.call(Method::GET, PATH_NEXT, &[], b"").await.status, 200);
    // A wait of minutes cannot run in a test (see the paused-clock test below): no bound the
    // proxy sets may be shorter than a function's longest run, 15 minutes.
    assert!(LIMITS.header_timeout >= Duration::from_secs(16 * 60), "{:?}", LIMITS.header_timeout);
}

/// On a clock that jumps, the two long waits of a runtime's connection: `/next` held 20 minutes
/// for the next event, then a function that runs 15 minutes before answering on the same
/// connection. Neither may be cut.
#[tokio::test(start_paused = true)]
async fn long_waits_on_a_runtime_connection_are_never_cut() {
    let h = setup(|r: Request<Incoming>| async move {
        if r.uri().path() == PATH_NEXT {
            tokio::time::sleep(Duration::from_secs(20 * 60)).await;
            return answer(200, &[(HEADER_REQUEST_ID, "slow")], "{}");
        }
        answer(202, &[], "")
    })
    .await;
    // One connection, never re-opened: a runtime whose kept connection the proxy closed would
    // see its answer fail.
    let mut runtime = hyper_runtime::<http_body_util::Full<Bytes>>(&h.address).await;
    let request = |method: Method, path: &str, body: &'static [u8]| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "x")
            .body(http_body_util::Full::new(Bytes::from_static(body)))
            .unwrap()
    };
    let next = runtime.send_request(request(Method::GET, PATH_NEXT, b"")).await.unwrap();
    assert_eq!(next.status(), 200);
    next.into_body().collect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(15 * 60)).await;
    let path = "/2018-06-01/runtime/invocation/slow/response";
    let answered = runtime.send_request(request(Method::POST, path, b"{}")).await.unwrap();
    assert_eq!(answered.status(), 202);
    assert_eq!(h.record("slow").outcome, Some(Outcome::Success));
    assert_eq!(h.proxy.stats().upstream_errors, 0);
}

#[test]
fn classify_recognises_the_three_requests_that_tell_an_invocations_story() {
    let long_id = "x".repeat(parse::MAX_REQUEST_ID_BYTES + 1);
    let long_path = format!("/2018-06-01/runtime/invocation/{long_id}/response");
    let cases: &[(Method, &str, RuntimeRequest<'_>)] = &[
        (Method::GET, PATH_NEXT, RuntimeRequest::Next),
        (Method::POST, PATH_NEXT, RuntimeRequest::Other),
        (
            Method::POST,
            "/2018-06-01/runtime/invocation/abc/response",
            RuntimeRequest::Response(Cow::Borrowed("abc")),
        ),
        (
            Method::POST,
            "/2018-06-01/runtime/invocation/abc/error",
            RuntimeRequest::Error(Cow::Borrowed("abc")),
        ),
        (Method::GET, "/2018-06-01/runtime/invocation/abc/response", RuntimeRequest::Other),
        (Method::POST, "/2018-06-01/runtime/invocation//response", RuntimeRequest::Other),
        (
            Method::POST,
            "/2018-06-01/runtime/invocation/abc/response/more",
            RuntimeRequest::Other,
        ),
        (Method::POST, "/2018-06-01/runtime/init/error", RuntimeRequest::Other),
        (Method::POST, "/2018-06-01/runtime/invocation/abc", RuntimeRequest::Other),
        // Escapes are read as Lambda reads them.
        (
            Method::POST,
            "/2018-06-01/runtime/invocation/a%20b/error",
            RuntimeRequest::Error(Cow::Borrowed("a b")),
        ),
        (Method::GET, "/2018-06-01/runtime/invocation/ne%78t", RuntimeRequest::Next),
        (Method::POST, "/2018-06-01/runtime/invocation/a%2Fb/response", RuntimeRequest::Other),
        (Method::POST, "/2018-06-01/runtime/invocation/a%zz/response", RuntimeRequest::Other),
        (Method::POST, "/2018-06-01/runtime/invocation/a%ff/response", RuntimeRequest::Other),
        // Ids that could not be stored are forwarded, not recorded.
        (Method::POST, "/2018-06-01/runtime/invocation/a%0Ab/response", RuntimeRequest::Other),
        (Method::POST, &long_path, RuntimeRequest::Other),
    ];
    for (method, path, want) in cases {
        assert_eq!(&classify(method, path), want, "{method} {path}");
    }
}

#[tokio::test]
async fn check_upstream_rejects_what_is_not_host_port() {
    for upstream in [
        "",
        "http://x:1",
        "host:1/path",
        "host",
        "host:0",
        "host:65536",
        "[::1:9001",
        "a b:1",
    ] {
        let result = RuntimeProxy::check_upstream(upstream, 9009).await;
        assert!(result.is_err(), "{upstream:?} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// Hardening: the proxy never loops and never strands the runtime.

#[tokio::test]
async fn check_upstream_refuses_the_proxy_itself_in_every_spelling() {
    // The proxy's own listener is up: a plain connection test would pass.
    let own = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = own.local_addr().unwrap().port();
    for host in [
        "127.0.0.1",
        "localhost",
        "LocalHost",
        "localhost.",
        "app.localhost",
        "127.1",
        "127.0.1",
        "127.0.0.2",
        "0",
        "0.0.0.0",
        "[::1]",
        "[::]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "2130706433",
        "0x7f000001",
        "0x7f.1",
        "0177.0.0.1",
        "017700000001",
    ] {
        let upstream = format!("{host}:{port}");
        let result = RuntimeProxy::check_upstream(&upstream, port).await;
        let why = result.expect_err(&format!("{upstream} accepted"));
        assert!(why.contains("loop back"), "{upstream}: {why}");
    }
}

#[tokio::test]
async fn check_upstream_refuses_a_name_that_resolves_to_the_proxy() {
    let own = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = own.local_addr().unwrap().port();
    for resolved in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0"] {
        let ip: std::net::IpAddr = resolved.parse().unwrap();
        let result = upstream::check(&format!("runtime.example:{port}"), port, move |host, p| async move {
            assert_eq!((host.as_str(), p), ("runtime.example", port));
            Ok(vec![std::net::SocketAddr::new(ip, p)])
        })
        .await;
        let why = result.expect_err(&format!("a name resolving to {resolved} accepted"));
        assert!(why.contains("resolves to") && why.contains("loop back"), "{why}");
    }
    // The same name on another port is another service.
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let result = upstream::check(&format!("runtime.example:{other_port}"), port, |_, p| async move {
        Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], p))])
    })
    .await;
    assert_eq!(result, Ok(()));
}

/// The same through the system's resolver, with a name /etc/hosts maps to loopback (when the
/// machine has one besides `localhost`, which is refused by its spelling alone).
#[tokio::test]
async fn check_upstream_resolves_host_names_through_the_system() {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let name = hosts
        .lines()
        .filter_map(|line| line.split('#').next())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let ip = fields.next()?;
            ip.starts_with("127.").then_some(fields)
        })
        .flatten()
        .find(|name| !crate::config::is_own_host(name))
        .map(str::to_owned);
    let Some(name) = name else {
        eprintln!("no loopback name besides localhost in /etc/hosts: nothing to check");
        return;
    };
    let own = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = own.local_addr().unwrap().port();
    let why = RuntimeProxy::check_upstream(&format!("{name}:{port}"), port).await.unwrap_err();
    assert!(why.contains("resolves to"), "{name}: {why}");
}

#[tokio::test]
async fn check_upstream_bounds_a_resolver_that_hangs() {
    let started = std::time::Instant::now();
    let result = upstream::check("runtime.example:9001", 9009, |_, _| std::future::pending()).await;
    assert!(result.unwrap_err().contains("did not resolve"));
    assert!(
        started.elapsed() < CHECK_WINDOW + Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn check_upstream_reports_an_upstream_that_does_not_answer_within_its_bound() {
    let dead = dead_address().await;
    let started = std::time::Instant::now();
    let why = RuntimeProxy::check_upstream(&dead, 9009).await.unwrap_err();
    assert!(why.contains(&dead) && why.contains("no connection"), "{why}");
    assert!(
        started.elapsed() < CHECK_WINDOW + Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn check_upstream_accepts_a_listening_upstream_and_one_that_listens_a_little_late() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = up.local_addr().unwrap();
    assert_eq!(RuntimeProxy::check_upstream(&address.to_string(), 9009).await, Ok(()));
    drop(up);
    // A chained proxy that starts beside this extension binds a moment later.
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listener = TcpListener::bind(address).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(listener);
    });
    assert_eq!(RuntimeProxy::check_upstream(&address.to_string(), 9009).await, Ok(()));
    late.abort();
}

/// An upstream that accepts the connection and closes it without an answer.
async fn upstream_that_hangs_up() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            read_head(&mut stream, &mut buf).await;
            drop(stream);
        }
    });
    address
}

#[tokio::test]
async fn an_upstream_failing_later_gets_the_runtime_a_502_and_is_counted() {
    let h = proxy_to(&upstream_that_hangs_up().await).await;
    for i in 1..=2 {
        let got = h.call(Method::GET, PATH_NEXT, &[], b"").await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY);
        assert_eq!(json(&got.body)["errorType"], UPSTREAM_ERROR_TYPE);
        assert_eq!(h.proxy.stats().upstream_errors, i);
    }
    assert!(h.store.records().is_empty());
}

#[tokio::test]
async fn an_upstream_breaking_off_mid_body_cuts_the_runtime_and_is_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream, &mut Vec::new()).await;
        let head = format!("HTTP/1.1 200 OK\r\n{HEADER_REQUEST_ID}: cut\r\nContent-Length: 100\r\n\r\n0123456789");
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    let h = proxy_to(&address).await;
    let mut runtime = Connection::new(&h.address);
    let result = runtime.send(Method::GET, PATH_NEXT, &[], Bytes::new(), 1024, WAIT).await;
    assert!(result.is_err(), "the runtime got a whole answer: {result:?}");
    wait_for("the upstream error to be counted", || h.proxy.stats().upstream_errors == 1).await;
    assert!(h.logs().contains("runtime proxy: upstream failed"), "{}", h.logs());
}

/// A raw upstream answering `GET`s: it counts its connections and closes each after
/// `per_connection` answers (0: never).
async fn counting_upstream(per_connection: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                while per_connection == 0 || answered < per_connection {
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    buf.drain(..end + 4);
                    let ok = format!("HTTP/1.1 200 OK\r\n{HEADER_REQUEST_ID}: id-{answered}\r\nContent-Length: 2\r\n\r\nok");
                    stream.write_all(ok.as_bytes()).await.unwrap();
                    answered += 1;
                }
            });
        }
    });
    (address, connections)
}

#[tokio::test]
async fn upstream_connections_are_kept_between_requests() {
    let (address, connections) = counting_upstream(0).await;
    let h = proxy_to(&address).await;
    for _ in 0..5 {
        let got = h.call(Method::GET, "/2099-01-01/x", &[], b"").await;
        assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// An upstream that closes its side after each answer costs a new connection, never an error.
#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_replaced() {
    let (address, connections) = counting_upstream(1).await;
    let h = proxy_to(&address).await;
    for _ in 0..5 {
        let got = h.call(Method::GET, "/2099-01-01/x", &[], b"").await;
        assert_eq!(got.status, 200, "{:?}", got.body);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 5);
    assert_eq!(h.proxy.stats().upstream_errors, 0);
}

/// Values from Lambda's headers are checked before they are stored; what fails is not stored,
/// and the runtime still gets the answer exactly as Lambda sent it.
#[tokio::test]
async fn invalid_next_headers_are_not_stored_and_pass_unchanged() {
    let long_arn = format!("arn:{}", "a".repeat(parse::MAX_FUNCTION_ARN_BYTES));
    let long_trace = format!("Root={}", "1".repeat(parse::MAX_TRACE_ID_BYTES));
    let long_id = "i".repeat(parse::MAX_REQUEST_ID_BYTES + 1);
    let cases: Vec<[String; 4]> = vec![
        ["id-1".into(), "-1".into(), long_arn.clone(), long_trace.clone()],
        ["id-2".into(), "99999999999999999999".into(), String::new(), String::new()],
        ["id-3".into(), "not-a-number".into(), String::new(), String::new()],
        ["id-4".into(), "253402300800000".into(), String::new(), String::new()],
        ["id-5".into(), "+17".into(), String::new(), String::new()],
        [long_id.clone(), "1795424684697".into(), ARN.into(), TRACE.into()],
    ];
    for [id, deadline, arn, trace] in cases {
        let sent = [
            (HEADER_REQUEST_ID, id.clone()),
            (HEADER_DEADLINE, deadline.clone()),
            (HEADER_FUNCTION_ARN, arn.clone()),
            (HEADER_TRACE_ID, trace.clone()),
        ];
        let answered = sent.clone();
        let h = setup(move |_| {
            let headers: Vec<(&str, &str)> = answered
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            let response = answer(200, &headers, "{}");
            async move { response }
        })
        .await;
        let got = h.call(Method::GET, PATH_NEXT, &[], b"").await;
        assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"{}"[..]));
        for (name, value) in sent.iter().filter(|(_, v)| !v.is_empty()) {
            assert_eq!(got.headers()[*name], value.as_str(), "{name}");
        }
        if id == long_id {
            assert!(h.store.records().is_empty(), "an over-long request id was stored");
            continue;
        }
        let record = h.record(&id);
        assert_eq!(record.deadline_ms, 0, "{id}: deadline {deadline:?} stored");
        assert_eq!(record.invoked_function_arn, None, "{id}");
        assert_eq!(record.trace_id, None, "{id}");
        assert_eq!(record.extra.unwrap().runtime_received_at, Timestamp(NOW));
    }
}

#[test]
fn next_event_reads_valid_values_only() {
    let headers = |pairs: &[(&str, &[u8])]| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    };
    let full = headers(&[
        (HEADER_REQUEST_ID, b"8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
        (HEADER_DEADLINE, b"1542409706888"),
        (HEADER_FUNCTION_ARN, ARN.as_bytes()),
        (HEADER_TRACE_ID, TRACE.as_bytes()),
    ]);
    assert_eq!(
        next_event(&full),
        Some(NextEvent {
            request_id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
            deadline_ms: Some(1_542_409_706_888),
            function_arn: Some(ARN),
            trace_id: Some(TRACE),
        })
    );
    assert_eq!(next_event(&headers(&[])), None);
    assert_eq!(next_event(&headers(&[(HEADER_REQUEST_ID, b"")])), None);
    assert_eq!(next_event(&headers(&[(HEADER_REQUEST_ID, "é".repeat(129).as_bytes())])), None);
    assert_eq!(next_event(&headers(&[(HEADER_REQUEST_ID, b"\xff\xfe")])), None);
    let spaced = headers(&[(HEADER_REQUEST_ID, b"id with spaces"), (HEADER_FUNCTION_ARN, b"\x80")]);
    let spaced = next_event(&spaced).unwrap();
    assert_eq!((spaced.request_id, spaced.function_arn), ("id with spaces", None));
    for (deadline, want) in [
        (&b"1"[..], Some(1)),
        (b"253402300799999", Some(parse::MAX_DEADLINE_MS)),
        (b"253402300800000", None),
        (b"0", None),
        (b"-1", None),
        (b"+1", None),
        (b" 1", None),
        (b"1.5", None),
        (b"9223372036854775808", None),
        (b"", None),
    ] {
        assert_eq!(parse::deadline_ms(deadline), want, "{:?}", String::from_utf8_lossy(deadline));
    }
}

#[test]
fn error_type_from_body_reads_a_bounded_string_only() {
    let long = format!(r#"{{"errorType":"{}"}}"#, "T".repeat(parse::MAX_ERROR_TYPE_BYTES + 1));
    let cases: &[(&[u8], Option<&str>)] = &[
        (
            br#"{"errorType":"OrderFailed","errorMessage":"boom","stackTrace":["a"]}"#,
            Some("OrderFailed"),
        ),
        (br#"{"errorMessage":"boom"}"#, None),
        (br#"{"errorType":""}"#, None),
        (br#"{"errorType":42}"#, None),
        (br#"{"errorType":"a\nb"}"#, None),
        (br#"{"errorType":"Order"#, None), // cut off by the peek's bound
        (b"not json", None),
        (b"", None),
        (long.as_bytes(), None),
    ];
    for (body, want) in cases {
        assert_eq!(error_type_from_body(body).as_deref(), *want, "{:?}", String::from_utf8_lossy(body));
    }
}

/// An error body larger than the peek: its type is not read (the body still passes whole).
#[tokio::test]
async fn an_error_body_beyond_the_peek_is_forwarded_whole_without_its_type() {
    let h = setup(|r: Request<Incoming>| async move {
        let got = r.into_body().collect().await.unwrap().to_bytes();
        answer(202, &[("x-got", &got.len().to_string())], "")
    })
    .await;
    let body = format!(r#"{{"errorMessage":"{}","errorType":"Late"}}"#, "m".repeat(MAX_ERROR_BODY_PEEK));
    h.store.begin("r1", Source::Invoke, |_, _| {});
    let got = h
        .call(Method::POST, "/2018-06-01/runtime/invocation/r1/error", &[], body.as_bytes())
        .await;
    assert_eq!(got.headers()["x-got"], body.len().to_string().as_str());
    let record = h.record("r1");
    assert_eq!((record.outcome, record.error_type()), (Some(Outcome::Error), None));
    assert_eq!(record.extra.unwrap().response_bytes, body.len() as u64);
}

/// The pass-through rule, checked over many header names and values (the fuzz target drives the
/// same function with arbitrary ones): end-to-end headers stay exactly as they were, hop-by-hop
/// ones and those `Connection` names go.
#[test]
fn strip_hop_by_hop_keeps_end_to_end_headers_exactly() {
    let names = [
        "x-custom",
        "content-type",
        "lambda-runtime-function-error-type",
        "lambda-runtime-function-response-mode",
        "trailer",
        "content-length",
        "host",
        "user-agent",
        "x-empty",
        "expect",
    ];
    let values: [&[u8]; 6] = [
        b"v",
        b"",
        b"a  b",
        b"application/json; charset=utf-8",
        b"\x80\xff",
        b"Runtime.Error",
    ];
    for name in names {
        for value in values {
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static(name), HeaderValue::from_bytes(value).unwrap());
            headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            headers.insert("upgrade", HeaderValue::from_static("websocket"));
            headers.insert("proxy-authorization", HeaderValue::from_static("secret"));
            let before = headers[name].clone();
            strip_hop_by_hop(&mut headers);
            assert_eq!(headers.len(), 1, "{name}: {headers:?}");
            assert_eq!(headers[name], before, "{name}");
        }
    }
    let mut headers = HeaderMap::new();
    headers.append("connection", HeaderValue::from_static("keep-alive, X-Hop , TE"));
    headers.append("connection", HeaderValue::from_static("x-other"));
    headers.insert("x-hop", HeaderValue::from_static("1"));
    headers.insert("x-other", HeaderValue::from_static("1"));
    headers.insert("te", HeaderValue::from_static("gzip, trailers"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    headers.insert("content-length", HeaderValue::from_static("5"));
    headers.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut headers);
    let left: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&("x-kept", "1")) && left.contains(&("te", "trailers")), "{left:?}");
}

/// Header pass-through end to end, for a sample of names and values (Go's FuzzHeaderPassThrough).
#[tokio::test]
async fn any_end_to_end_header_reaches_lambda_unchanged_and_the_answer_is_recorded() {
    let h = setup(|r: Request<Incoming>| async move {
        let echo: Vec<String> = r
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-") || k.as_str().starts_with("lambda-"))
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        answer(202, &[("x-echo", &echo.join("|"))], "")
    })
    .await;
    h.store.begin("id", Source::Invoke, |_, _| {});
    for (name, value) in [
        ("X-Custom", "v"),
        ("Lambda-Runtime-Function-Error-Type", "Runtime.Error"),
        ("x-spaces", "a  b"),
        ("X-Tab", "a\tb"),
        ("x-punct", "!#$%&'*+-.^_`|~"),
    ] {
        let got = h
            .call(Method::POST, "/2018-06-01/runtime/invocation/id/response", &[(name, value)], b"{}")
            .await;
        assert_eq!(got.status, 202);
        assert_eq!(got.headers()["x-echo"], format!("{}={value}", name.to_ascii_lowercase()).as_str());
        let record = h.record("id");
        assert_eq!((record.outcome, record.extra.unwrap().response_bytes), (Some(Outcome::Success), 2));
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded buffering: a 6 MB answer must not cost 6 MB.

/// A listener whose connections have small kernel buffers, so that what a slow peer leaves
/// unread stays in the proxy (where it is measured) rather than in the kernel.
fn small_buffer_listener() -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.set_send_buffer_size(16 << 10).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(16).unwrap()
}

/// What the proxy itself may hold of a body at any time: its read buffer and hyper's write
/// queue, a few hundred KiB, whatever the body's size.
const MAX_PROXY_BUFFERING: usize = 512 << 10;
const BIG_BODY: usize = 32 << 20;

/// Waits until `progress` stops moving for a while, and returns where it stopped.
async fn stalled(progress: &AtomicUsize) -> usize {
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = progress.load(Ordering::SeqCst);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Checks what the proxy holds while a transfer is stalled: `in_flight` bytes left one end and
/// did not reach the other; the kernel's socket queues hold most of them.
fn assert_bounded_buffering(in_flight: usize, ports_of: &[&str]) {
    match kernel_queues(ports_of) {
        Some(queued) => {
            let held = in_flight.saturating_sub(queued);
            eprintln!("stalled: {in_flight} bytes in flight, {queued} in kernel queues, {held} in the proxy");
            assert!(held <= MAX_PROXY_BUFFERING, "the proxy holds {held} bytes of a stalled body");
        }
        // Without the kernel's figures, only a bound that still tells streaming from buffering.
        None => assert!(in_flight < BIG_BODY / 4, "{in_flight} bytes of a stalled body in flight"),
    }
}

/// The runtime sends a body much larger than any buffer to an upstream that stops reading after
/// the head: the runtime is held back (TCP back-pressure through the proxy) and the proxy holds
/// a bounded amount, not the body.
#[tokio::test]
async fn a_stalled_upstream_holds_the_runtime_back_with_bounded_buffering() {
    let upstream = small_buffer_listener();
    let upstream_address = upstream.local_addr().unwrap().to_string();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let received = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&received);
    tokio::spawn(async move {
        let (mut stream, _) = upstream.accept().await.unwrap();
        let mut buf = Vec::new();
        read_head(&mut stream, &mut buf).await;
        counted.fetch_add(buf.len(), Ordering::SeqCst);
        let _ = release_rx.await; // stalls: reads nothing more until released
        let mut chunk = vec![0u8; 64 << 10];
        while counted.load(Ordering::SeqCst) < BIG_BODY {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            counted.fetch_add(n, Ordering::SeqCst);
        }
        stream
            .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let h = proxy_on(small_buffer_listener(), &upstream_address).await;
    h.store.begin("big", Source::Invoke, |_, _| {});

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(16 << 10).unwrap();
    let mut runtime = socket.connect(h.address.parse().unwrap()).await.unwrap();
    let head = format!("POST /2018-06-01/runtime/invocation/big/response HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG_BODY}\r\n\r\n");
    runtime.write_all(head.as_bytes()).await.unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let writing = Arc::clone(&written);
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        while writing.load(Ordering::SeqCst) < BIG_BODY {
            let left = BIG_BODY - writing.load(Ordering::SeqCst);
            let n = runtime.write(&chunk[..chunk.len().min(left)]).await.unwrap();
            writing.fetch_add(n, Ordering::SeqCst);
        }
        runtime
    });
    let sent = stalled(&written).await;
    assert!(sent < BIG_BODY, "the runtime wrote its whole body while the upstream read nothing");
    assert_bounded_buffering(sent - received.load(Ordering::SeqCst), &[&h.address, &upstream_address]);

    release_tx.send(()).unwrap();
    let mut runtime = writer.await.unwrap();
    let head = read_head(&mut runtime, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    assert_eq!(received.load(Ordering::SeqCst), BIG_BODY);
    assert_eq!(h.record("big").extra.unwrap().response_bytes, BIG_BODY as u64);
}

/// The other direction: Lambda sends a large event to a runtime that reads slowly.
#[tokio::test]
async fn a_slow_runtime_holds_the_upstream_back_with_bounded_buffering() {
    let upstream = small_buffer_listener();
    let upstream_address = upstream.local_addr().unwrap().to_string();
    let written = Arc::new(AtomicUsize::new(0));
    let writing = Arc::clone(&written);
    let upstream_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closed = Arc::clone(&upstream_closed);
    tokio::spawn(async move {
        let (mut stream, _) = upstream.accept().await.unwrap();
        read_head(&mut stream, &mut Vec::new()).await;
        let head = format!("HTTP/1.1 200 OK\r\n{HEADER_REQUEST_ID}: big\r\nContent-Length: {BIG_BODY}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'e'; 64 << 10];
        while writing.load(Ordering::SeqCst) < BIG_BODY {
            match stream.write(&chunk).await {
                Ok(n) => writing.fetch_add(n, Ordering::SeqCst),
                Err(_) => break,
            };
        }
        closed.store(true, Ordering::SeqCst);
    });
    let h = proxy_on(small_buffer_listener(), &upstream_address).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let mut runtime = socket.connect(h.address.parse().unwrap()).await.unwrap();
    runtime
        .write_all(format!("GET {PATH_NEXT} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head = read_head(&mut runtime, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let sent = stalled(&written).await;
    assert!(sent < BIG_BODY, "the upstream wrote the whole event while the runtime read nothing");
    assert_bounded_buffering(sent - buf.len(), &[&h.address, &upstream_address]);

    // The runtime goes away mid-event (6 MiB bodies are checked intact elsewhere): not an upstream
    // error, and the upstream connection is closed with it.
    drop(runtime);
    wait_for("the upstream connection to close", || upstream_closed.load(Ordering::SeqCst)).await;
    assert_eq!(h.proxy.stats().upstream_errors, 0);
    assert!(h.logs().contains("runtime proxy: runtime disconnected"), "{}", h.logs());
    assert_eq!(h.record("big").extra.unwrap().runtime_received_at, Timestamp(NOW));
}

/// Bytes queued in the kernel (sent but not yet read, both directions) on the connections to
/// the given local addresses, from /proc/net/tcp; `None` where the system does not say.
fn kernel_queues(addresses: &[&str]) -> Option<usize> {
    let ports: Vec<String> = addresses
        .iter()
        .map(|a| format!("{:04X}", a.rsplit_once(':').unwrap().1.parse::<u16>().unwrap()))
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let mut total = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port_of = |field: &str| field.rsplit_once(':').map(|(_, p)| p.to_owned());
        let ours = [fields.get(1)?, fields.get(2)?]
            .iter()
            .any(|f| port_of(f).is_some_and(|p| ports.contains(&p)));
        if ours {
            let (tx, rx) = fields.get(4)?.split_once(':')?;
            total += usize::from_str_radix(tx, 16).ok()? + usize::from_str_radix(rx, 16).ok()?;
        }
    }
    Some(total)
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and odd clients.

#[tokio::test]
async fn shutdown_ends_by_its_deadline_with_a_long_poll_in_flight() {
    let h = setup(|_| async {
        std::future::pending::<()>().await;
        answer(200, &[], "")
    })
    .await;
    let mut runtime = TcpStream::connect(&h.address).await.unwrap();
    runtime
        .write_all(format!("GET {PATH_NEXT} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    wait_for("the long poll to reach the proxy", || h.proxy.stats().forwarded == 1).await;
    let started = tokio::time::Instant::now();
    let stats = h.proxy.shutdown(started + Duration::from_millis(100)).await;
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!(
        stats,
        Stats {
            forwarded: 1,
            upstream_errors: 0
        }
    );
    assert!(TcpStream::connect(&h.address).await.is_err(), "still listening after shutdown");
}

/// An HTTP/1.0 runtime sends no Host: the upstream, on HTTP/1.1, gets the upstream's.
#[tokio::test]
async fn a_request_without_host_gets_the_upstreams() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_address = upstream.local_addr().unwrap().to_string();
    let h = proxy_to(&upstream_address).await;
    let mut runtime = TcpStream::connect(&h.address).await.unwrap();
    runtime.write_all(b"GET /2099-01-01/x HTTP/1.0\r\n\r\n").await.unwrap();
    let (mut stream, _) = upstream.accept().await.unwrap();
    let head = read_head(&mut stream, &mut Vec::new()).await;
    assert!(head.starts_with("GET /2099-01-01/x HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains(&format!("host: {upstream_address}\r\n")),
        "{head}"
    );
}

/// The parsers on many arbitrary inputs (the fuzz targets go further): no panic, and whatever
/// they accept is fit to store.
#[test]
fn parsers_take_arbitrary_input() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"/%0123456789abcdefABCDEFnext-response_error.~ \x00\x7f\xc3\xa9";
    for _ in 0..20_000 {
        let len = (next() % 80) as usize;
        let mut bytes: Vec<u8> = b"/2018-06-01/runtime/invocation/".to_vec();
        bytes.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
        let path = String::from_utf8_lossy(&bytes);
        for method in [Method::GET, Method::POST] {
            if let RuntimeRequest::Response(id) | RuntimeRequest::Error(id) = classify(&method, &path) {
                assert!(!id.is_empty() && id.len() <= parse::MAX_REQUEST_ID_BYTES, "{path:?}");
                assert!(!id.contains('/') && !id.chars().any(char::is_control), "{path:?} gave {id:?}");
            }
        }
        if let Ok(value) = HeaderValue::from_bytes(&bytes[31..]) {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER_REQUEST_ID, value.clone());
            headers.insert(HEADER_DEADLINE, value.clone());
            headers.insert("connection", value);
            if let Some(event) = next_event(&headers) {
                assert!(event.request_id.len() <= parse::MAX_REQUEST_ID_BYTES);
                assert!(event.deadline_ms.is_none_or(|d| (1..=parse::MAX_DEADLINE_MS).contains(&d)));
            }
            strip_hop_by_hop(&mut headers);
            assert!(!headers.contains_key("connection"));
        }
        let _ = error_type_from_body(&bytes);
    }
}
