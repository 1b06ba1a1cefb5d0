#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::history::{Source, Status};
use crate::log::Level;
use crate::s3::client::Endpoint;
use crate::s3::credentials::{Provider, Source as CredentialSource};
use crate::s3::sigv4::Credentials;
use crate::time::Timestamp;

/// What the fake S3 stored: (path, body) per accepted PUT, and when.
pub(crate) type Stored = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
pub(crate) type StoredAt = Arc<Mutex<Vec<std::time::Instant>>>;

/// A fake S3: answers each PUT with the next status of `statuses` (200 once they run out).
async fn fake_s3(statuses: Vec<u16>) -> (Endpoint, Stored) {
    let (endpoint, stored, _) = fake_s3_timed(statuses).await;
    (endpoint, stored)
}

/// As `fake_s3`, with the instant of each accepted PUT.
pub(crate) async fn fake_s3_timed(statuses: Vec<u16>) -> (Endpoint, Stored, StoredAt) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let stored: Stored = Arc::default();
    let stored_at: StoredAt = Arc::default();
    let (kept, kept_at) = (Arc::clone(&stored), Arc::clone(&stored_at));
    let statuses = Arc::new(Mutex::new(statuses.into_iter()));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (kept, kept_at, statuses) = (Arc::clone(&kept), Arc::clone(&kept_at), Arc::clone(&statuses));
            tokio::spawn(serve(stream, kept, kept_at, statuses));
        }
    });
    (endpoint, stored, stored_at)
}

async fn serve(mut stream: TcpStream, stored: Stored, stored_at: StoredAt, statuses: Arc<Mutex<std::vec::IntoIter<u16>>>) {
    while let Some(got) = crate::s3::fake::read_request(&mut stream).await {
        let (head, body) = (got.head, got.body);
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        let status = statuses.lock().unwrap().next().unwrap_or(200);
        if status == 200 {
            stored.lock().unwrap().push((path, body));
            stored_at.lock().unwrap().push(std::time::Instant::now());
        }
        let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn bucket(endpoint: Endpoint) -> Bucket {
    let credentials = Provider::new(CredentialSource::Environment(Credentials {
        access_key_id: "AK".into(),
        secret_access_key: "SK".into(),
        session_token: None,
    }));
    Bucket::new(&endpoint, "us-east-1", "b", credentials, None).unwrap()
}

/// A clock the test moves: starts at 2026-11-29T19:05:00Z.
fn clock() -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(1_795_979_100_000_000_000));
    let read = Arc::clone(&now);
    (Arc::new(move || Timestamp(read.load(Ordering::SeqCst))), now)
}

fn settings(background: bool, max_invocations: usize) -> Settings {
    Settings {
        limits: Limits {
            max_invocations,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        },
        prefix: "p/".into(),
        function_name: "fn".into(),
        environment_id: "env".into(),
        background,
        telemetry: true,
        logs: None,
        start_line: br#"{"type":"environment","event":"start"}"#.to_vec(),
    }
}

fn invoke(store: &Store, id: &str, reported: bool) {
    store.begin(id, Source::Invoke, |_, _| {});
    if reported {
        report(store, id);
    }
}

/// What `platform.report` brings.
fn report(store: &Store, id: &str) {
    store.update(id, 0, |r| {
        r.status = Some(Status::Success);
        r.duration_ms = 1.5;
        r.reported = true;
    });
}

/// The lines of every stored object, in the order stored, and the objects' keys.
fn read_back(stored: &Stored) -> (Vec<String>, Vec<serde_json::Value>) {
    let stored = stored.lock().unwrap();
    let keys = stored.iter().map(|(path, _)| path.clone()).collect();
    let mut lines = Vec::new();
    for (_, body) in stored.iter() {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
        lines.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
    }
    (keys, lines)
}

/// The request ids of the invocation lines (environment lines have none).
fn ids(lines: &[serde_json::Value]) -> Vec<String> {
    invocations(lines)
        .iter()
        .map(|l| l["record"]["awsRequestId"].as_str().unwrap().to_owned())
        .collect()
}

fn invocations(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    lines.iter().filter(|l| l["type"] == "invocation").cloned().collect()
}

#[tokio::test]
async fn in_the_background_due_batches_go_out_and_shutdown_sends_the_rest_marked_incomplete() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(true, 2), clock, log);
    for id in ["a", "b", "c"] {
        invoke(&store, id, true);
    }
    invoke(&store, "d", false);
    // "a" and "b" make a due batch; the exporter finds them within its interval and uploads.
    for _ in 0..50 {
        if !stored.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (keys, lines) = read_back(&stored);
    assert_eq!(keys, ["/b/p/function%3Dfn/date%3D2026-11-29/hour%3D19/env-000001.ndjson.gz"]);
    assert_eq!(ids(&lines), ["a", "b"]);
    assert_eq!(
        lines[0],
        serde_json::json!({"type": "environment", "event": "start"}),
        "the environment's first line leads"
    );
    let first = invocations(&lines);
    assert!(first.iter().all(|l| l["complete"] == true));
    assert_eq!(first[0]["record"]["status"], "success");

    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (keys, lines) = read_back(&stored);
    assert_eq!(keys.len(), 2);
    assert!(keys[1].ends_with("/env-000002.ndjson.gz"), "{keys:?}");
    assert_eq!(ids(&lines), ["a", "b", "c", "d"], "every record exactly once");
    let all = invocations(&lines);
    assert_eq!(
        (all[2]["complete"].clone(), all[3]["complete"].clone()),
        (true.into(), false.into())
    );
    let end = lines.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["event"].as_str(), end["reason"].as_str()),
        (Some("environment"), Some("shutdown"), Some("spindown")),
        "the environment's last line ends the last object"
    );
    assert_eq!((end["served"].as_u64(), end["environmentId"].as_str()), (Some(4), Some("env")));
    assert_eq!(
        (stats.batches, stats.invocations, stats.dropped_batches, stats.dropped_invocations),
        (2, 4, 0, 0)
    );
}

#[tokio::test]
async fn on_demand_it_uploads_only_at_shutdown() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(false, 1), clock, log);
    invoke(&store, "a", true);
    invoke(&store, "b", true);
    tokio::time::sleep(COLLECT_INTERVAL * 2).await;
    assert!(stored.lock().unwrap().is_empty(), "nothing while the environment serves");
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (keys, lines) = read_back(&stored);
    assert_eq!((keys.len(), ids(&lines)), (2, vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(stats.batches, 2);
}

#[tokio::test]
async fn without_telemetry_a_record_is_finished_once_a_newer_one_exists() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let settings = Settings {
        telemetry: false,
        ..settings(false, 100)
    };
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings, clock, log);
    invoke(&store, "a", false);
    invoke(&store, "b", false);
    exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    assert_eq!(ids(&lines), ["a", "b"]);
    let all = invocations(&lines);
    assert_eq!(
        (all[0]["complete"].clone(), all[1]["complete"].clone()),
        (true.into(), false.into())
    );
}

#[tokio::test]
async fn a_failed_upload_is_retried_and_a_refused_one_dropped_and_counted() {
    // 500 then 200 for the first batch; 403 for the second.
    let (endpoint, stored) = fake_s3(vec![500, 200, 403]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, lines) = Logger::capture(Level::Warn);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(false, 1), clock, log);
    invoke(&store, "a", true);
    invoke(&store, "b", true);
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(3), "spindown").await;
    let (_, got) = read_back(&stored);
    assert_eq!(ids(&got), ["a"]);
    assert_eq!((stats.batches, stats.retries), (1, 1));
    assert_eq!((stats.dropped_batches, stats.dropped_invocations), (1, 1));
    let log = lines.lock().unwrap().clone();
    assert!(log.contains("status 500") && log.contains("status 403"), "{log}");
}

#[tokio::test]
async fn an_unreachable_s3_costs_no_more_than_the_deadline_and_every_loss_is_counted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(false, 1), clock, log);
    for id in ["a", "b", "c"] {
        invoke(&store, id, true);
    }
    let started = Instant::now();
    let stats = exporter.shutdown(started + Duration::from_millis(300), "spindown").await;
    assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(stats.batches, 0);
    assert_eq!(stats.dropped_invocations, 3);
}

#[tokio::test]
async fn records_evicted_before_they_were_written_are_counted() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(2, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(false, 100), clock, log);
    for id in ["a", "b", "c", "d", "e"] {
        invoke(&store, id, false); // never reported: nothing written before SHUTDOWN
    }
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    assert_eq!(ids(&lines), ["d", "e"]);
    assert_eq!(stats.evicted, 3);
}

#[tokio::test]
async fn a_record_whose_report_never_comes_is_written_incomplete_once_far_behind() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(2000, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    // A batch is due once all are written: it goes out only if "lost" is written before SHUTDOWN.
    let due = usize::try_from(MAX_BEHIND).unwrap() + 1;
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(true, due), clock, log);
    invoke(&store, "lost", false);
    for n in 0..MAX_BEHIND {
        invoke(&store, &format!("r{n}"), true);
    }
    for _ in 0..100 {
        if !stored.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored.lock().unwrap().len(), 1, "written and sent before SHUTDOWN");
    exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    let all = invocations(&lines);
    assert_eq!(all.len() as u64, MAX_BEHIND + 1);
    assert_eq!(
        (all[0]["record"]["awsRequestId"].as_str(), all[0]["complete"].as_bool()),
        (Some("lost"), Some(false))
    );
}

#[tokio::test]
async fn an_upload_hanging_at_shutdown_is_given_up_at_the_deadline_and_its_records_counted() {
    // An S3 that takes the request and never answers: the upload begun before SHUTDOWN hangs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, lines) = Logger::capture(Level::Warn);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(true, 1), clock, log);
    for id in ["a", "b", "c"] {
        invoke(&store, id, true);
    }
    tokio::time::sleep(COLLECT_INTERVAL * 2).await; // the background upload of "a" is under way
    let started = Instant::now();
    let stats = exporter.shutdown(started + Duration::from_millis(300), "spindown").await;
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!((stats.batches, stats.invocations), (0, 0));
    assert_eq!(stats.dropped_invocations, 3, "every record counted: {stats:?}");
    // The upload under way was cut at the shutdown's deadline by the task itself, which then
    // counted each batch: "a"'s, "b"'s and "c"'s (sealed as they filled) and the one that holds
    // the environment's last line, none of them with time left to send; no retry was counted.
    assert_eq!((stats.dropped_batches, stats.retries), (4, 0), "{stats:?}");
    // ... by the task itself (a forced stop would have cut it off before it could say so).
    let log = lines.lock().unwrap().clone();
    assert!(log.contains("S3 export: upload failed") && log.contains("retry=false"), "{log}");
}

#[tokio::test]
async fn a_window_upload_that_runs_out_of_time_waits_for_the_next_window_and_is_not_dropped() {
    // An S3 that holds the first PUT unanswered and stores the next.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let stored: Stored = Arc::default();
    let kept = Arc::clone(&stored);
    tokio::spawn(async move {
        let (mut held, _) = listener.accept().await.unwrap();
        let _ = crate::s3::fake::read_request(&mut held).await;
        let (stream, _) = listener.accept().await.unwrap();
        serve(stream, kept, Arc::default(), Arc::new(Mutex::new(Vec::new().into_iter()))).await;
        drop(held);
    });
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings(false, 1), clock, log);
    invoke(&store, "a", true);
    invoke(&store, "b", false);
    assert!(exporter.prepare().await, "a's batch is due");
    // The window's upload hangs until the window's budget is spent.
    exporter.upload_window().await;
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    assert_eq!(ids(&lines), ["a", "b"], "a's batch went at SHUTDOWN, with b's");
    assert_eq!(
        (stats.retries, stats.dropped_batches, stats.dropped_invocations),
        (1, 0, 0),
        "{stats:?}"
    );
}

// ---- log events ----

const A: &str = "0a000000-0000-4000-8000-00000000000a";
const B: &str = "0b000000-0000-4000-8000-00000000000b";
/// 2026-11-29T19:05:00Z, the test clock's start.
const T0: i64 = 1_795_979_100_000_000_000;
const MS: i64 = 1_000_000;

fn logs(max_bytes: usize) -> Arc<LogBuffer> {
    Arc::new(LogBuffer::new(
        crate::config::LogStreams::parse("platform,function,extension").unwrap(),
        max_bytes,
    ))
}

/// A function event at `at`, its record as given (JSON).
fn event(at: i64, kind: &str, record: &str) -> String {
    let time = Timestamp(at).to_string();
    format!(r#"{{"time":"{time}","type":"{kind}","record":{record}}}"#)
}

fn push(buffer: &LogBuffer, events: &[String]) {
    buffer.push_batch(format!("[{}]", events.join(",")).as_bytes());
}

/// The `record` of each event an invocation's line carries.
fn carried(line: &serde_json::Value) -> Vec<serde_json::Value> {
    line["logs"].as_array().unwrap().iter().map(|e| e["record"].clone()).collect()
}

fn log_lines(lines: &[serde_json::Value]) -> Vec<(serde_json::Value, serde_json::Value)> {
    lines
        .iter()
        .filter(|l| l["type"] == "log")
        .map(|l| (l["requestId"].clone(), l["event"]["record"].clone()))
        .collect()
}

#[tokio::test]
async fn on_demand_each_line_carries_its_logs_by_request_id_or_by_its_span() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, now) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let buffer = logs(1 << 20);
    let settings = Settings {
        logs: Some(Arc::clone(&buffer)),
        ..settings(false, 100)
    };
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings, clock, log);
    // Before any invocation: the init phase's output.
    push(&buffer, &[event(T0 - 1000 * MS, "function", r#""init says hi""#)]);
    invoke(&store, A, false);
    push(
        &buffer,
        &[
            event(
                T0 + 2 * MS,
                "function",
                &format!(r#"{{"level":"INFO","requestId":"{A}","message":"json"}}"#),
            ),
            event(T0 + 5 * MS, "function", r#""print in A""#),
            // The init's report, posted late: it names no invocation, so it is the environment's.
            event(
                T0 + 5 * MS,
                "platform.initReport",
                r#"{"initializationType":"on-demand","phase":"init","status":"success"}"#,
            ),
            event(T0 + 6 * MS, "extension", r#""an extension in A""#),
            event(
                T0 + 7 * MS,
                "platform.report",
                &format!(r#"{{"requestId":"{A}","status":"success"}}"#),
            ),
        ],
    );
    now.store(T0 + 1000 * MS, Ordering::SeqCst);
    invoke(&store, B, false);
    push(
        &buffer,
        &[
            event(
                T0 + 1001 * MS,
                "function",
                &format!(r#""[INFO]\t2026-11-29T19:05:01.001Z\t{B}\ttext in B""#),
            ),
            event(T0 + 1002 * MS, "function", r#""print in B""#),
        ],
    );
    report(&store, A);
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    let all = invocations(&lines);
    assert_eq!(ids(&lines), [A, B]);
    assert_eq!(
        carried(&all[0]),
        [
            serde_json::json!({"level":"INFO","requestId":A,"message":"json"}),
            "print in A".into(),
            "an extension in A".into(),
            serde_json::json!({"requestId":A,"status":"success"}),
        ]
    );
    assert_eq!(all[1]["complete"], false);
    assert_eq!(
        carried(&all[1]),
        [
            format!("[INFO]\t2026-11-29T19:05:01.001Z\t{B}\ttext in B").into(),
            serde_json::Value::from("print in B")
        ]
    );
    assert_eq!(
        log_lines(&lines),
        [
            (serde_json::Value::Null, "init says hi".into()),
            (
                serde_json::Value::Null,
                serde_json::json!({"initializationType":"on-demand","phase":"init","status":"success"})
            )
        ]
    );
    assert_eq!((stats.log_events, stats.dropped_log_events), (8, 0));
}

#[tokio::test]
async fn on_managed_instances_a_line_without_a_request_id_and_a_late_one_are_lines_of_their_own() {
    let (endpoint, stored) = fake_s3(vec![]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let buffer = logs(1 << 20);
    let settings = Settings {
        logs: Some(Arc::clone(&buffer)),
        ..settings(true, 1)
    };
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings, clock, log);
    invoke(&store, A, false);
    invoke(&store, B, false);
    // Concurrent invocations: a print cannot be told apart, however its time falls.
    push(
        &buffer,
        &[
            event(T0 + MS, "function", &format!(r#"{{"requestId":"{A}","message":"a"}}"#)),
            event(T0 + MS, "function", r#""print""#),
        ],
    );
    report(&store, A);
    for _ in 0..50 {
        if !stored.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A's line is out; a line of A's that comes now is written on its own, with A's id.
    push(
        &buffer,
        &[event(
            T0 + 9 * MS,
            "function",
            &format!(r#"{{"requestId":"{A}","message":"late"}}"#),
        )],
    );
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    let all = invocations(&lines);
    assert_eq!(ids(&lines), [A, B]);
    assert_eq!(carried(&all[0]), [serde_json::json!({"requestId":A,"message":"a"})]);
    assert_eq!(carried(&all[1]), Vec::<serde_json::Value>::new());
    assert_eq!(
        log_lines(&lines),
        [
            (serde_json::Value::Null, "print".into()),
            (A.into(), serde_json::json!({"requestId":A,"message":"late"}))
        ]
    );
    assert_eq!((stats.log_events, stats.dropped_log_events), (3, 0));
}

#[tokio::test]
async fn log_events_beyond_the_buffer_or_in_a_refused_batch_are_counted_as_dropped() {
    let (endpoint, stored) = fake_s3(vec![403]).await;
    let (clock, _) = clock();
    let store = Arc::new(Store::new(100, Arc::clone(&clock)));
    let (log, _) = Logger::capture(Level::Error);
    let one = event(T0 + MS, "function", &format!(r#"{{"requestId":"{A}","message":"x"}}"#));
    // Room for two events.
    let buffer = logs(2 * (one.len() + 64));
    let settings = Settings {
        logs: Some(Arc::clone(&buffer)),
        ..settings(false, 1)
    };
    let exporter = Exporter::start(Arc::clone(&store), bucket(endpoint), settings, clock, log);
    invoke(&store, A, true);
    push(&buffer, &[one.clone(), one.clone(), one.clone(), one]);
    invoke(&store, B, true);
    // A's batch (two events) is refused; B's (none) is stored.
    let stats = exporter.shutdown(Instant::now() + Duration::from_secs(2), "spindown").await;
    let (_, lines) = read_back(&stored);
    assert_eq!(ids(&lines), [B]);
    assert_eq!((stats.log_events, stats.dropped_log_events), (0, 4));
}
