#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::encode::tests::{Gen, ReferenceRecord, reference};
use super::*;
use crate::history::{InitInfo, Source, fixed_clock};
use crate::http_client::Connection;
use crate::log::Level;

const MAX_WAIT: Duration = Duration::from_secs(2);

struct Harness {
    api: LocalApi,
    store: Arc<Store>,
    addr: String,
}

impl Harness {
    async fn start(capacity: usize, request_ids: &[&str]) -> Self {
        let store = Arc::new(Store::new(capacity, fixed_clock(1_795_424_400_000_000_000)));
        for id in request_ids {
            invoke(&store, id);
        }
        let listener = bind(0).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let env = Environment {
            environment_id: "env-1".into(),
            extension_version: "test".into(),
            ..Environment::default()
        };
        let (log, _) = Logger::capture(Level::Error);
        let api = LocalApi::start(listener, Arc::clone(&store), env, MAX_WAIT, log);
        Self { api, store, addr }
    }

    async fn call(&self, method: Method, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        let answer = Connection::new(&self.addr)
            .send(method, path, &[], Bytes::new(), 64 << 20, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        (answer.status, answer.headers(), answer.body)
    }

    /// A GET whose answer must be JSON.
    async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let (status, headers, body) = self.call(Method::GET, path).await;
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "application/json", "GET {path}");
        let value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body:?}"));
        (status, value)
    }

    async fn stop(self) {
        self.api.shutdown(Instant::now() + Duration::from_secs(1)).await;
    }
}

fn invoke(store: &Store, id: &str) {
    store.begin(id, Source::Invoke, |_, _| {});
}

fn request_ids(body: &serde_json::Value) -> Vec<String> {
    body["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["awsRequestId"].as_str().unwrap().to_owned())
        .collect()
}

/// Percent-encodes everything but unreserved characters.
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn list_invocations() {
    let h = Harness::start(3, &["a", "b", "c", "d"]).await;
    let cases: [(&str, &[&str], u64); 6] = [
        ("", &["b", "c", "d"], 4),
        ("?limit=1", &["d"], 4),
        ("?after=2", &["c", "d"], 4),
        ("?after=4", &[], 4),
        ("?after=99", &[], 99),
        ("?requestId=c", &["b", "c", "d"], 4),
    ];
    for (query, want_ids, want_cursor) in cases {
        let (status, body) = h.get(&format!("/invocations{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(request_ids(&body), want_ids, "{query}");
        assert_eq!(
            (&body["cursor"], &body["served"], &body["retained"], &body["dropped"]),
            (&want_cursor.into(), &4.into(), &3.into(), &1.into()),
            "{query}"
        );
        assert_eq!(body["environmentId"], "env-1");
    }
    h.stop().await;
}

#[tokio::test]
async fn an_empty_store_lists_an_empty_array_not_null() {
    let h = Harness::start(3, &[]).await;
    let (_, body) = h.get("/invocations").await;
    assert_eq!(body["invocations"], serde_json::json!([]));
    h.stop().await;
}

#[tokio::test]
async fn record_fields_keep_the_seed_shape() {
    let h = Harness::start(3, &[]).await;
    h.store.begin("r1", Source::Invoke, |r, _| {
        r.deadline_ms = 1_700_000_000_000;
        r.invoked_function_arn = Some(Arc::from("arn:x"));
        r.set_trace_id("Root=1");
    });
    let (_, body) = h.get("/invocations").await;
    assert_eq!(
        body["invocations"][0],
        serde_json::json!({
            "awsRequestId": "r1", "invocatedAt": "2026-11-23T09:00:00Z", "sequence": 1, "deadlineMs": 1_700_000_000_000_i64,
            "invokedFunctionArn": "arn:x", "traceId": "Root=1", "coldStart": true,
        })
    );
    h.stop().await;
}

#[tokio::test]
async fn a_request_id_wait_covers_the_invoke_race() {
    let h = Arc::new(Harness::start(10, &["earlier"]).await);
    // GIVEN the function asks about its own request id before the extension has recorded it
    let asking = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.get("/invocations?requestId=mine&waitMs=2000").await })
    };
    let record = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.get("/invocations/late?waitMs=2000").await })
    };
    // WHEN the INVOKE reaches the extension a little later
    tokio::time::sleep(Duration::from_millis(50)).await;
    invoke(&h.store, "mine");
    invoke(&h.store, "late");
    // THEN the answers include it
    let (status, body) = asking.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(request_ids(&body)[..2], ["earlier", "mine"]);
    assert_eq!(body["waitedFor"], serde_json::json!({"requestId": "mine", "found": true}));
    let (status, body) = record.await.unwrap();
    assert_eq!((status, &body["awsRequestId"]), (StatusCode::OK, &"late".into()));
}

#[tokio::test]
async fn a_request_id_wait_is_bounded() {
    let h = Harness::start(10, &["a"]).await;
    let started = std::time::Instant::now();
    let (status, body) = h.get("/invocations?requestId=never&waitMs=30").await;
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_millis(30), "{:?}", started.elapsed());
    assert_eq!((status, &body["waitedFor"]["found"]), (StatusCode::OK, &false.into()));
    let (status, body) = h.get("/invocations/never?waitMs=30").await;
    assert_eq!((status, &body["errorType"]), (StatusCode::NOT_FOUND, &"InvocationNotFound".into()));
    h.stop().await;
}

#[tokio::test]
async fn get_invocation() {
    let h = Harness::start(10, &["a", "b/c", "d", "é \"q\""]).await;
    let (status, body) = h.get("/invocations/d").await;
    assert_eq!(
        (status, &body["awsRequestId"], &body["sequence"]),
        (StatusCode::OK, &"d".into(), &3.into())
    );
    let (status, body) = h.get(&format!("/invocations/{}", encode_component("é \"q\""))).await;
    assert_eq!((status, &body["awsRequestId"]), (StatusCode::OK, &"é \"q\"".into()));
    let (status, body) = h.get("/invocations/zzz").await;
    assert_eq!((status, &body["errorType"]), (StatusCode::NOT_FOUND, &"InvocationNotFound".into()));
    let (status, _) = h.get("/invocations/b%2Fc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an escaped slash");
    h.stop().await;
}

#[tokio::test]
async fn environment_merges_counts_init_and_the_latest_environment() {
    let h = Harness::start(2, &["a", "b", "c"]).await;
    let (status, body) = h.get("/environment").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({
            "environmentId": "env-1", "initStartedAt": "1970-01-01T00:00:00Z", "managedInstances": false,
            "extensionVersion": "test", "features": {"telemetry": "", "runtimeProxy": false, "s3Export": false, "requestIdWait": false},
            "limits": {"maxRecords": 0, "maxWaitMs": 0},
            "counts": {"served": 3, "retained": 2, "dropped": 1, "pendingUpdates": 0, "pendingUpdatesDropped": 0},
        })
    );
    h.store.set_init(|init| {
        *init = InitInfo {
            init_type: "on-demand".into(),
            init_duration_ms: 180.25,
            init_status: "success".into(),
            runtime_version: "python:3.13.v20".into(),
            runtime_version_arn: "arn:rt".into(),
        };
    });
    h.api.set_environment(Environment {
        environment_id: "env-2".into(),
        function_name: "f".into(),
        function_version: "$LATEST".into(),
        memory_mb: 128,
        region: "eu-west-1".into(),
        init_started_at: Timestamp(1_795_424_400_000_000_000),
        managed_instances: true,
        extension_version: "0.2.0".into(),
        features: Features {
            telemetry: "on",
            runtime_proxy: true,
            s3_export: false,
            request_id_wait: true,
        },
        limits: Limits {
            max_records: 2,
            max_wait_ms: 2000,
        },
        ..Environment::default()
    });
    let (_, _, body) = h.call(Method::GET, "/environment").await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"environmentId":"env-2","functionName":"f","functionVersion":"$LATEST","memoryMB":128,"region":"eu-west-1","#,
            r#""initType":"on-demand","initStartedAt":"2026-11-23T09:00:00Z","initDurationMs":180.25,"initStatus":"success","#,
            r#""runtimeVersion":"python:3.13.v20","runtimeVersionArn":"arn:rt","managedInstances":true,"extensionVersion":"0.2.0","#,
            r#""features":{"telemetry":"on","runtimeProxy":true,"s3Export":false,"requestIdWait":true},"#,
            r#""limits":{"maxRecords":2,"maxWaitMs":2000},"#,
            r#""counts":{"served":3,"retained":2,"dropped":1,"pendingUpdates":0,"pendingUpdatesDropped":0}}"#,
            "\n"
        )
    );
    h.stop().await;
}

#[tokio::test]
async fn errors_are_documented_json() {
    let h = Harness::start(3, &["a"]).await;
    let long_id = "a".repeat(257);
    let cases = [
        (Method::GET, "/nope", 404, "NotFound"),
        (Method::GET, "/", 404, "NotFound"),
        (Method::GET, "/invocationsX", 404, "NotFound"),
        (Method::POST, "/invocations", 405, "MethodNotAllowed"),
        (Method::DELETE, "/invocations/a", 405, "MethodNotAllowed"),
        (Method::PUT, "/environment", 405, "MethodNotAllowed"),
        (Method::GET, "/invocations?limit=0", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limit=-1", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limit=ten", 400, "InvalidParameter"),
        (Method::GET, "/invocations?after=x", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limt=5", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limit=1&limit=2", 400, "InvalidParameter"),
        (Method::GET, "/invocations?waitMs=10", 400, "InvalidParameter"),
        (Method::GET, "/invocations?requestId=a&waitMs=999999", 400, "InvalidParameter"),
        (Method::GET, "/invocations?requestId=", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limit=1;after=0", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limit=%zz", 400, "InvalidParameter"),
        (Method::GET, "/invocations?=1", 400, "InvalidParameter"),
        (Method::GET, "/invocations?limit=1&", 400, "InvalidParameter"),
        (Method::GET, "/invocations/a?waitMs=soon", 400, "InvalidParameter"),
        (Method::GET, "/invocations/a?x=1", 400, "InvalidParameter"),
        (Method::GET, "/invocations/a?waitMs=1;", 400, "InvalidParameter"),
        (Method::GET, "/invocations/%zz", 400, "InvalidParameter"),
        (Method::GET, "/invocations/a%ff", 400, "InvalidParameter"),
        (Method::GET, "/invocations/a/b", 400, "InvalidParameter"),
        (Method::GET, "/environment?x=1", 400, "InvalidParameter"),
    ];
    for (method, path, status, error_type) in cases {
        let (got, headers, body) = h.call(method.clone(), path).await;
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "application/json", "{method} {path}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (got.as_u16(), &body["errorType"]),
            (status, &error_type.into()),
            "{method} {path}: {body}"
        );
        assert!(body["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
    let (_, _, body) = h.call(Method::GET, &format!("/invocations?requestId={long_id}")).await;
    assert!(String::from_utf8_lossy(&body).contains("requestId"));
    h.stop().await;
}

#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let h = Harness::start(3, &[]).await;
    let (status, headers, body) = h.call(Method::POST, "/invocations").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get(ALLOW).unwrap(), "GET, HEAD");
    assert!(body.starts_with(b"{\"errorMessage\":"), "the shape the black-box tests read");
    h.stop().await;
}

#[tokio::test]
async fn head_answers_without_a_body() {
    let h = Harness::start(3, &["a"]).await;
    for path in ["/invocations", "/invocations/a", "/environment"] {
        let (status, headers, body) = h.call(Method::HEAD, path).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0), "{path}");
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "application/json");
    }
    h.stop().await;
}

#[tokio::test]
async fn too_many_waiters_are_refused_not_queued() {
    let h = Arc::new(Harness::start(3, &[]).await);
    // GIVEN MAX_WAITERS callers parked on a request id not yet recorded
    let mut parked = Vec::new();
    for _ in 0..MAX_WAITERS {
        let h = Arc::clone(&h);
        parked.push(tokio::spawn(async move { h.get("/invocations?requestId=slow&waitMs=2000").await }));
    }
    while h.api.api.waiters.load(Ordering::Acquire) < MAX_WAITERS {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // WHEN one more asks THEN it is refused at once; a reader without a wait is still served
    let (status, body) = h.get("/invocations?requestId=slow&waitMs=2000").await;
    assert_eq!(
        (status, &body["errorType"]),
        (StatusCode::TOO_MANY_REQUESTS, &"TooManyWaiters".into())
    );
    let (status, body) = h.get("/invocations/slow?waitMs=10").await;
    assert_eq!(
        (status, &body["errorType"]),
        (StatusCode::TOO_MANY_REQUESTS, &"TooManyWaiters".into())
    );
    assert_eq!(h.get("/invocations").await.0, StatusCode::OK);
    // AND the parked ones are answered when the record comes
    invoke(&h.store, "slow");
    for waiter in parked {
        let (status, body) = waiter.await.unwrap();
        assert_eq!((status, &body["waitedFor"]["found"]), (StatusCode::OK, &true.into()));
    }
    assert_eq!(h.api.api.waiters.load(Ordering::Acquire), 0);
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferenceList {
    invocations: Vec<ReferenceRecord>,
    environment_id: String,
    served: u64,
    retained: u64,
    dropped: u64,
    cursor: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    waited_for: Option<WaitState>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WaitState {
    request_id: String,
    found: bool,
}

/// The streamed list is byte for byte serde_json's encoding of the reference list: records over
/// several pages, odd strings, the counters and the wait's outcome.
#[tokio::test]
async fn the_streamed_list_equals_serde_json_of_the_reference() {
    let total = 3 * PAGE_RECORDS + 7;
    let h = Harness::start(total - 5, &[]).await;
    let mut generate = Gen::new(42);
    let mut waited = String::new();
    for n in 0..total {
        let template = generate.record(0);
        let id = format!("{}-{n}", template.request_id);
        if n == total - 3 {
            waited.clone_from(&id);
        }
        h.store.begin(&id, Source::Invoke, |r, _| {
            let (sequence, at, cold) = (r.sequence, r.invocated_at, r.cold_start);
            *r = template;
            r.request_id = crate::history::RequestId::new(&id);
            (r.sequence, r.invocated_at, r.cold_start) = (sequence, at, cold);
        });
    }
    let (status, _, got) = h
        .call(
            Method::GET,
            &format!("/invocations?requestId={}&waitMs=0", encode_component(&waited)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let counts = h.store.counts();
    let want = ReferenceList {
        invocations: h.store.records().iter().map(reference).collect(),
        environment_id: "env-1".into(),
        served: counts.served,
        retained: counts.retained,
        dropped: counts.dropped,
        cursor: counts.served,
        waited_for: Some(WaitState {
            request_id: waited,
            found: true,
        }),
    };
    let mut want = serde_json::to_vec(&want).unwrap();
    want.push(b'\n');
    assert!(
        got == want,
        "streamed body differs from serde_json:\n got {:.300}\nwant {:.300}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    h.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_json_from_the_listener_too() {
    let h = Harness::start(3, &[]).await;
    let oversized = format!("GET /invocations HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(16 << 10));
    for (request, status) in [
        (oversized.as_bytes(), "431"),
        (&b"GET /invocations HTTP/1.1\r\nConnection: close\r\n\r\n"[..], "400"),
        (b"GET /invocations?\x7f HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&h.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let body: serde_json::Value = serde_json::from_str(body.trim_end()).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(body["errorType"].is_string() && body["errorMessage"].is_string(), "{body}");
    }
    h.stop().await;
}

#[tokio::test]
async fn binds_the_loopback_address_only() {
    let listener = bind(0).await.unwrap();
    assert_eq!(listener.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
}

#[tokio::test]
async fn a_list_within_one_page_has_a_length_and_a_longer_one_is_chunked() {
    let ids: Vec<String> = (0..PAGE_RECORDS + 5).map(|n| format!("id-{n}")).collect();
    let h = Harness::start(1000, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (status, headers, body) = h.call(Method::GET, "/invocations?limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(CONTENT_LENGTH).unwrap(), body.len().to_string().as_str());
    assert!(headers.get(TRANSFER_ENCODING).is_none());
    let (status, headers, body) = h.call(Method::GET, "/invocations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(TRANSFER_ENCODING).unwrap(), "chunked");
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(request_ids(&value), ids);
    h.stop().await;
}
