#![allow(clippy::unwrap_used)]
//! The lifecycle against a fake Extensions and Telemetry API: a real HTTP server on 127.0.0.1
//! that hands out queued events, and blocks `/event/next` when the queue is empty, as Lambda
//! does between invocations.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;
use crate::http_client::Connection;
use crate::serve::{self, Server};

#[derive(Default)]
struct FakeState {
    events: VecDeque<String>,
    /// When set, `/event/next` answers this status.
    next_status: Option<StatusCode>,
    registered: String,
    registered_events: String,
    subscription: String,
    /// The subscription's answer: status and body (default 200 "OK").
    telemetry_answer: Option<(StatusCode, &'static str)>,
    /// How long the subscription's answer takes.
    telemetry_delay: Option<Duration>,
    /// Posted to the subscription's destination once, at the first `/event/next`, as Lambda posts
    /// telemetry once init is done.
    telemetry_batch: Option<String>,
    exit_errors: Vec<String>,
    next_calls: u32,
    next_call_times: Vec<std::time::Instant>,
    /// At the first `/event/next`, whether something listens on this port (the telemetry listener).
    probe_port: Option<u16>,
    probe_listening: Option<bool>,
}

struct FakeLambda {
    state: Arc<Mutex<FakeState>>,
    address: String,
    _server: Server,
}

fn lock(state: &Mutex<FakeState>) -> std::sync::MutexGuard<'_, FakeState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeLambda {
    async fn start(events: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            ..FakeState::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let shared = Arc::clone(&state);
        let server = Server::start(
            listener,
            serve::Limits::default(),
            Logger::capture(crate::log::Level::Error).0,
            move |req| {
                let state = Arc::clone(&shared);
                async move { Self::handle(state, req).await }
            },
        );
        Self {
            state,
            address,
            _server: server,
        }
    }

    async fn handle(state: Arc<Mutex<FakeState>>, req: hyper::Request<hyper::body::Incoming>) -> Response<serve::Body> {
        let (parts, body) = req.into_parts();
        let body = String::from_utf8_lossy(&body.collect().await.map(|b| b.to_bytes()).unwrap_or_default()).into_owned();
        match (parts.method.as_str(), parts.uri.path()) {
            ("POST", "/2020-01-01/extension/register") => {
                let mut s = lock(&state);
                s.registered = body;
                s.registered_events = parts
                    .headers
                    .get("Lambda-Extension-Name")
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                let mut response = Response::new(serve::full(r#"{"functionName":"fn","functionVersion":"7","handler":"h"}"#));
                response
                    .headers_mut()
                    .insert("Lambda-Extension-Identifier", "id-1".parse().unwrap());
                response
            }
            ("PUT", "/2022-07-01/telemetry") => {
                let delay = lock(&state).telemetry_delay;
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let mut s = lock(&state);
                s.subscription = body;
                let (status, answer) = s.telemetry_answer.unwrap_or((StatusCode::OK, "\"OK\""));
                let mut response = Response::new(serve::full(answer));
                *response.status_mut() = status;
                response
            }
            ("GET", "/2020-01-01/extension/event/next") => {
                let probe = lock(&state).probe_port.take();
                if let Some(port) = probe {
                    let listening = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok();
                    lock(&state).probe_listening = Some(listening);
                }
                let batch = {
                    let mut s = lock(&state);
                    s.next_calls += 1;
                    s.next_call_times.push(std::time::Instant::now());
                    s.telemetry_batch.take().map(|b| (b, s.subscription.clone()))
                };
                if let Some((batch, subscription)) = batch {
                    post_telemetry(&subscription, batch).await;
                }
                let (status, event) = {
                    let mut s = lock(&state);
                    (s.next_status, s.events.pop_front())
                };
                if let Some(status) = status {
                    return serve::json_error(status, "Boom", "boom");
                }
                match event {
                    Some(event) => Response::new(serve::full(event)),
                    None => std::future::pending().await,
                }
            }
            ("POST", "/2020-01-01/extension/exit/error") => {
                let error_type = parts
                    .headers
                    .get("Lambda-Extension-Function-Error-Type")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                lock(&state).exit_errors.push(error_type.unwrap_or_default());
                Response::new(serve::full(r#"{"status":"OK"}"#))
            }
            _ => serve::json_error(StatusCode::NOT_FOUND, "NotFound", "no such path"),
        }
    }
}

/// Posts `batch` to the destination the subscription named, as Lambda does.
async fn post_telemetry(subscription: &str, batch: String) {
    let sub: serde_json::Value = serde_json::from_str(subscription).unwrap();
    let uri = sub["destination"]["URI"].as_str().unwrap().to_owned();
    let rest = uri.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = authority.rsplit_once(':').unwrap().1;
    let mut conn = Connection::new(&format!("127.0.0.1:{port}"));
    let answer = conn
        .send(
            Method::POST,
            &format!("/{path}"),
            &[("Content-Type", "application/json")],
            Bytes::from(batch),
            1 << 16,
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(answer.status.is_success(), "telemetry listener answered {}", answer.status);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Run {
    options: Options,
    lines: Arc<Mutex<String>>,
    metrics: Arc<Mutex<String>>,
    store: Arc<Store>,
}

fn options(fake: &FakeLambda, vars: &[(&str, &str)]) -> Run {
    let mut env: HashMap<String, String> = HashMap::from([
        ("AWS_LAMBDA_RUNTIME_API".to_owned(), fake.address.clone()),
        ("INVOCATION_HISTORY_EXTENSION_HTTP_PORT".to_owned(), free_port().to_string()),
    ]);
    env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let getenv = move |name: &str| env.get(name).cloned();
    let (config, warnings) = Config::from_env(&getenv);
    let (log, lines) = Logger::capture(config.log_level);
    let metrics = Arc::new(Mutex::new(String::new()));
    let kept = Arc::clone(&metrics);
    let clock = crate::time::system_clock();
    let store = Arc::new(Store::new(config.max_records, Arc::clone(&clock)));
    let options = Options {
        name: "invocation-history-extension",
        version: "test",
        config,
        warnings,
        log,
        store: Arc::clone(&store),
        getenv: Arc::new(getenv),
        started: Timestamp::now(),
        clock,
        metrics_sink: Arc::new(move |line: &str| kept.lock().unwrap_or_else(PoisonError::into_inner).push_str(line)),
        proxy_address_file: None,
    };
    Run {
        options,
        lines,
        metrics,
        store,
    }
}

fn text(lines: &Mutex<String>) -> String {
    lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn invoke(id: &str) -> String {
    format!(
        r#"{{"eventType":"INVOKE","deadlineMs":1700000000000,"requestId":"{id}","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn","tracing":{{"type":"X-Amzn-Trace-Id","value":"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}}}"#
    )
}

const SHUTDOWN: &str = r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":0}"#;

async fn never() {
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn records_every_invoke_and_exits_zero_on_shutdown() {
    let fake = FakeLambda::start(&[&invoke("a"), &invoke("b"), SHUTDOWN]).await;
    let run = options(&fake, &[]);
    let code = super::run(run.options, never()).await;
    assert_eq!(code, 0);
    let records = run.store.records();
    assert_eq!(records.iter().map(|r| r.request_id.to_string()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(records[0].deadline_ms, 1_700_000_000_000);
    assert!(records[0].trace_id.is_some() && records[0].invoked_function_arn.is_some());
    let log = text(&run.lines);
    assert!(log.contains("msg=ready"), "{log}");
    let shutdown = log.lines().find(|l| l.contains("msg=shutdown")).unwrap();
    assert!(
        shutdown.contains("reason=spindown") && shutdown.contains("invocationsServed=2"),
        "{shutdown}"
    );
    let registered = lock(&fake.state).registered.clone();
    assert!(registered.contains("INVOKE") && registered.contains("SHUTDOWN"), "{registered}");
}

#[tokio::test]
async fn configuration_warnings_are_logged_once() {
    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let run = options(&fake, &[("INVOCATION_HISTORY_EXTENSION_MAX_RECORDS", "0")]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let log = text(&run.lines);
    assert_eq!(
        log.matches("variable=INVOCATION_HISTORY_EXTENSION_MAX_RECORDS value=0").count(),
        1,
        "{log}"
    );
}

#[tokio::test]
async fn an_export_that_cannot_run_says_why_in_one_line_and_the_function_is_served() {
    // TLS roots that cannot be read; a region with no S3 endpoint; no region; no credentials.
    for (vars, reason) in [
        (
            vec![
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("SSL_CERT_FILE", "/no/such/ca.pem"),
            ],
            "variable=SSL_CERT_FILE reason=\"cannot read certificates from /no/such/ca.pem",
        ),
        (
            vec![
                ("AWS_REGION", "eu-west-1.example.com"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
            "variable=AWS_REGION reason=\"not a region name: eu-west-1.example.com\"",
        ),
        (
            vec![("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")],
            "AWS_REGION is not set",
        ),
        (
            vec![
                ("AWS_REGION", "eu-west-1"),
                ("INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT", "http://127.0.0.1:9"),
            ],
            "no credentials",
        ),
    ] {
        let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
        let mut vars = vars;
        vars.push(("INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET", "my-bucket"));
        let run = options(&fake, &vars);
        assert_eq!(super::run(run.options, never()).await, 0);
        let log = text(&run.lines);
        let off: Vec<&str> = log.lines().filter(|l| l.contains("S3 export off")).collect();
        assert_eq!(off.len(), 1, "{log}");
        assert!(off[0].contains("bucket=my-bucket") && off[0].contains(reason), "{reason}: {log}");
        assert!(!log.contains("exportBatches"), "no export counters when it is off: {log}");
        assert_eq!(run.store.records().len(), 1, "the function is served all the same");
    }
}

/// An export to `endpoint` that can run (region, credentials, bucket), and `more`.
fn export_vars<'a>(endpoint: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "a"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET", "my-bucket"),
        ("INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT", endpoint),
    ];
    vars.extend_from_slice(more);
    vars
}

#[tokio::test]
async fn an_unreachable_export_endpoint_costs_the_shutdown_budget_and_counts_what_it_drops() {
    let dead = free_port();
    let fake = FakeLambda::start(&[&invoke("a"), &invoke("b"), SHUTDOWN]).await;
    let run = options(&fake, &export_vars(&format!("http://127.0.0.1:{dead}"), &[]));
    let started = std::time::Instant::now();
    assert_eq!(super::run(run.options, never()).await, 0);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let log = text(&run.lines);
    let shutdown = log.lines().find(|l| l.contains("msg=shutdown")).unwrap();
    assert!(
        shutdown.contains("exportBatches=0") && shutdown.contains("exportDroppedInvocations=2"),
        "{shutdown}"
    );
}

#[tokio::test]
async fn on_demand_a_due_batch_goes_out_after_the_invocation_answered_and_before_the_next_event() {
    let (endpoint, stored, stored_at) = crate::export::exporter::tests::fake_s3_timed(vec![]).await;
    let fake = FakeLambda::start(&[&invoke("a"), &invoke("b"), SHUTDOWN]).await;
    // Telemetry says "a" answered and was reported; the fake posts it at the first /event/next.
    let a = |kind: &str| serde_json::json!({"time": "2026-11-29T19:05:00Z", "type": kind, "record": {"requestId": "a", "status": "success", "metrics": {"durationMs": 1.0}}});
    lock(&fake.state).telemetry_batch = Some(serde_json::to_string(&[a("platform.runtimeDone"), a("platform.report")]).unwrap());
    let endpoint = format!("http://{}:{}", endpoint.host, endpoint.port);
    let run = options(
        &fake,
        &export_vars(&endpoint, &[("INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS", "1")]),
    );
    assert_eq!(super::run(run.options, never()).await, 0);
    // "a"'s batch was uploaded in the window after INVOKE a, before the loop asked for "b";
    // "b" (never reported) went at SHUTDOWN, after the last /event/next.
    let times = lock(&fake.state).next_call_times.clone();
    let puts = stored_at.lock().unwrap().clone();
    assert_eq!(
        (times.len(), puts.len()),
        (3, 2),
        "{:?}",
        stored.lock().unwrap().iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
    assert!(
        times[0] < puts[0] && puts[0] < times[1],
        "a's batch between the first and second /event/next"
    );
    assert!(puts[1] > times[2], "b's at SHUTDOWN");
    let log = text(&run.lines);
    let shutdown = log.lines().find(|l| l.contains("msg=shutdown")).unwrap();
    assert!(
        shutdown.contains("exportBatches=2") && shutdown.contains("exportInvocations=2"),
        "{shutdown}"
    );
}

#[tokio::test]
async fn a_taken_port_still_runs_the_event_loop() {
    let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    let run = options(&fake, &[("INVOCATION_HISTORY_EXTENSION_HTTP_PORT", &port)]);
    assert_eq!(super::run(run.options, never()).await, 0);
    assert_eq!(run.store.counts().served, 1);
    let log = text(&run.lines);
    assert!(
        log.contains("local API not started") && log.contains(&format!("port={port}")) && log.contains("apiListening=false"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_ends_the_loop_with_exit_zero() {
    let fake = FakeLambda::start(&[]).await;
    let run = options(&fake, &[]);
    let (term, terminated) = oneshot::channel::<()>();
    let handle = tokio::spawn(super::run(run.options, async move {
        let _ = terminated.await;
    }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    term.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 0);
    assert!(text(&run.lines).contains("reason=SIGTERM"));
}

#[tokio::test]
async fn a_persistent_next_event_failure_is_reported() {
    let fake = FakeLambda::start(&[]).await;
    lock(&fake.state).next_status = Some(StatusCode::INTERNAL_SERVER_ERROR);
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 1);
    let s = lock(&fake.state);
    assert_eq!(s.exit_errors, ["Extension.EventLoopFailed"]);
    assert_eq!(s.next_calls, 4, "one call and three retries");
    drop(s);
    assert!(text(&run.lines).contains("reason=EventLoopFailed"));
}

#[tokio::test]
async fn outside_lambda_it_exits_with_a_clear_error() {
    let fake = FakeLambda::start(&[]).await;
    let mut run = options(&fake, &[]);
    run.options.config.runtime_api = String::new();
    assert_eq!(super::run(run.options, never()).await, 1);
    assert!(text(&run.lines).contains("cannot register: not running in Lambda"));
}

#[tokio::test]
async fn telemetry_enriches_invoke_records() {
    let fake = FakeLambda::start(&[&invoke("8476a536-e9f4-11e8-9739-2dfe598c3fcd"), SHUTDOWN]).await;
    lock(&fake.state).telemetry_batch = Some(
        r#"[{"time":"2026-11-23T09:05:46.214Z","type":"platform.report","record":{"requestId":"8476a536-e9f4-11e8-9739-2dfe598c3fcd","status":"success","metrics":{"durationMs":12.5,"billedDurationMs":13,"memorySizeMB":128,"maxMemoryUsedMB":40}}}]"#.to_owned(),
    );
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let r = run.store.get("8476a536-e9f4-11e8-9739-2dfe598c3fcd").unwrap();
    assert_eq!(
        (r.status, r.duration_ms, r.billed_duration_ms, r.max_memory_used_mb),
        (Some(crate::history::Status::Success), 12.5, 13, 40)
    );
    let sub = lock(&fake.state).subscription.clone();
    assert!(sub.contains("\"platform\"") && sub.contains("2025-01-29"), "{sub}");
    let log = text(&run.lines);
    assert!(log.contains("telemetry=on") && log.contains("telemetryEvents=1"), "{log}");
    assert!(
        text(&run.metrics).contains("InvocationDuration"),
        "the report's duration becomes a metric"
    );
}

#[tokio::test]
async fn managed_instances_register_for_shutdown_only_and_record_from_telemetry() {
    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let start = r#"{"time":"2026-11-23T09:05:46.214Z","type":"platform.start","record":{"requestId":"m-1","functionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn"}}"#;
    lock(&fake.state).telemetry_batch = Some(format!("[{start},{start}]"));
    let run = options(&fake, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let registered = lock(&fake.state).registered.clone();
    assert!(!registered.contains("INVOKE") && registered.contains("SHUTDOWN"), "{registered}");
    let records = run.store.records();
    assert_eq!(records.len(), 1, "a start delivered twice is one record");
    assert_eq!(records[0].invocated_at.to_string(), "2026-11-23T09:05:46.214Z");
}

#[tokio::test]
async fn telemetry_not_supported_degrades_to_invoke_only() {
    let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
    lock(&fake.state).telemetry_answer = Some((StatusCode::ACCEPTED, r#"{"errorType":"Telemetry.NotSupported"}"#));
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let log = text(&run.lines);
    let ready = log.lines().find(|l| l.contains("msg=ready")).unwrap();
    assert!(
        ready.contains("telemetry=unsupported") && ready.contains("telemetryNote="),
        "{ready}"
    );
    assert!(!log.contains("level=WARN"), "expected on the RIE: no warning: {log}");
    assert_eq!(run.store.counts().served, 1);
}

#[tokio::test]
async fn the_telemetry_listener_listens_only_while_subscribed() {
    for (answer, listening) in [
        (None, true),
        (Some((StatusCode::ACCEPTED, r#"{"errorType":"Telemetry.NotSupported"}"#)), false),
    ] {
        let fake = FakeLambda::start(&[SHUTDOWN]).await;
        let port = free_port();
        {
            let mut s = lock(&fake.state);
            s.telemetry_answer = answer;
            s.probe_port = Some(port);
        }
        let run = options(&fake, &[("INVOCATION_HISTORY_EXTENSION_TELEMETRY_PORT", &port.to_string())]);
        assert_eq!(super::run(run.options, never()).await, 0);
        assert_eq!(lock(&fake.state).probe_listening, Some(listening), "{answer:?}");
    }
}

#[tokio::test]
async fn telemetry_off_and_subscription_failures() {
    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let run = options(&fake, &[("INVOCATION_HISTORY_EXTENSION_TELEMETRY", "off")]);
    assert_eq!(super::run(run.options, never()).await, 0);
    assert!(lock(&fake.state).subscription.is_empty(), "no subscription when off");
    assert!(text(&run.lines).contains("telemetry=off"));

    // An error answer, and an answer after the subscription was given up: the extension runs
    // without telemetry and still gets its first event (`extensions_api` tests that it comes from
    // the `/event/next` written behind the `PUT`, which a server may hold even after the wait).
    for (answer, delay) in [
        (Some((StatusCode::INTERNAL_SERVER_ERROR, r#"{"errorType":"Boom"}"#)), None),
        (None, Some(components::SUBSCRIBE_TIMEOUT + Duration::from_millis(300))),
    ] {
        let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
        {
            let mut s = lock(&fake.state);
            s.telemetry_answer = answer;
            s.telemetry_delay = delay;
        }
        let run = options(&fake, &[]);
        assert_eq!(super::run(run.options, never()).await, 0);
        let log = text(&run.lines);
        assert!(
            log.contains("telemetry subscription failed") && log.contains("telemetry=failed"),
            "{log}"
        );
        assert_eq!(run.store.records().len(), 1, "{log}");
        assert_eq!(lock(&fake.state).next_calls, 2, "INVOKE, then SHUTDOWN");
    }
}

#[tokio::test]
async fn metrics_lines_and_their_off_switch() {
    let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let metrics = text(&run.metrics);
    assert!(
        metrics.contains("EnvironmentStarted") && metrics.contains("EnvironmentStopped"),
        "{metrics}"
    );
    assert!(metrics.contains("\"ShutdownReason\":\"spindown\""), "{metrics}");

    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let run = options(&fake, &[("INVOCATION_HISTORY_EXTENSION_METRICS", "off")]);
    assert_eq!(super::run(run.options, never()).await, 0);
    assert_eq!(text(&run.metrics), "");
}

#[tokio::test]
async fn the_proxy_address_is_published_only_when_the_proxy_listens() {
    let dir = std::env::temp_dir().join(format!("ih-proxy-{}", free_port()));
    let file = dir.join("runtime-proxy-address");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&file, "stale").unwrap();

    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let proxy_port = free_port().to_string();
    let mut run = options(
        &fake,
        &[
            ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY", "on"),
            ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT", &proxy_port),
        ],
    );
    run.options.proxy_address_file = Some(file.clone());
    assert_eq!(super::run(run.options, never()).await, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("127.0.0.1:{proxy_port}"));
    assert!(text(&run.lines).contains("runtimeProxy=on"));

    // An upstream that cannot be reached: the proxy is not published, the stale file is gone.
    std::fs::write(&file, "stale").unwrap();
    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let unreachable = format!("127.0.0.1:{}", free_port());
    let mut run = options(
        &fake,
        &[
            ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY", "on"),
            ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM", &unreachable),
        ],
    );
    run.options.proxy_address_file = Some(file.clone());
    assert_eq!(super::run(run.options, never()).await, 0);
    assert!(!file.exists());
    assert!(text(&run.lines).contains("runtimeProxy=failed"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_invoke_without_a_valid_request_id_is_counted_not_recorded() {
    let fake = FakeLambda::start(&[&invoke(""), &invoke("a"), SHUTDOWN]).await;
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 0);
    assert_eq!(run.store.records().len(), 1);
    let log = text(&run.lines);
    let shutdown = log.lines().find(|l| l.contains("msg=shutdown")).unwrap();
    assert!(
        shutdown.contains("invocationsServed=1") && shutdown.contains("invalidInvokes=1"),
        "{shutdown}"
    );
}

#[tokio::test]
async fn the_summary_line_carries_the_counters_of_every_part_that_is_on() {
    // Telemetry on but not supported here: its counters are there, at zero.
    let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
    lock(&fake.state).telemetry_answer = Some((StatusCode::ACCEPTED, r#"{"errorType":"Telemetry.NotSupported"}"#));
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let log = text(&run.lines);
    let shutdown = log.lines().find(|l| l.contains("msg=shutdown")).unwrap();
    for key in [
        "telemetryBatches=0",
        "telemetryEvents=0",
        "telemetryIgnored=0",
        "telemetryInvalid=0",
        "telemetryRejected=0",
        "pendingUpdatesDropped=0",
        "durationMetricsDropped=0",
    ] {
        assert!(shutdown.contains(key), "{key} missing: {shutdown}");
    }
    // Telemetry off: none of them.
    let fake = FakeLambda::start(&[SHUTDOWN]).await;
    let run = options(&fake, &[("INVOCATION_HISTORY_EXTENSION_TELEMETRY", "off")]);
    assert_eq!(super::run(run.options, never()).await, 0);
    assert!(!text(&run.lines).contains("telemetryBatches"));
}

#[test]
fn environment_ids_are_32_lowercase_hex_digits_and_differ() {
    let (a, b) = (new_environment_id(), new_environment_id());
    for id in [&a, &b] {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{id}");
    }
    assert_ne!(a, b);
}

#[tokio::test]
async fn the_first_next_event_goes_with_the_subscription_and_start_up_does_not_wait_for_its_answer() {
    // Lambda answers the subscription late (it starts the runtime at that moment); the extension
    // has asked for its first event in the same write, so its start-up does not include the wait,
    // and the event that comes is read from that request, not asked for again.
    let fake = FakeLambda::start(&[&invoke("a"), SHUTDOWN]).await;
    lock(&fake.state).telemetry_delay = Some(Duration::from_millis(300));
    let run = options(&fake, &[]);
    assert_eq!(super::run(run.options, never()).await, 0);
    let log = text(&run.lines);
    let ready = log.lines().find(|l| l.contains("msg=ready")).unwrap();
    let startup: f64 = ready
        .split("startupMs=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(startup < 300.0, "{ready}");
    assert!(ready.contains("telemetry=on"), "{ready}");
    assert_eq!(run.store.records().len(), 1);
    assert_eq!(lock(&fake.state).next_calls, 2, "INVOKE, then SHUTDOWN");
}
