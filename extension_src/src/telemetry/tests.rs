#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::events::{MAX_DURATION_MS, MAX_TEXT_BYTES};
use super::listener::{ReadError, bind_with, listen_address, read_body};
use super::*;
use crate::history::{InitInfo, MAX_PENDING_IDS, Record, Source, Status, Store, fixed_clock};
use crate::http_client::Connection;
use crate::log::{Level, Logger};
use crate::serve::{Limits, Server, full};
use crate::time::Timestamp;

// Batches shaped like the published event schema; tests/local/test_telemetry.py validates every
// one against testdata/telemetry-event.schema.json.
fn fixture(name: &str) -> &'static [u8] {
    match name {
        "success.json" => include_bytes!("testdata/success.json"),
        "error.json" => include_bytes!("testdata/error.json"),
        "timeout.json" => include_bytes!("testdata/timeout.json"),
        "init_error.json" => include_bytes!("testdata/init_error.json"),
        "managed_instances.json" => include_bytes!("testdata/managed_instances.json"),
        _ => panic!("no fixture {name}"),
    }
}

fn events(name: &str) -> Vec<Value> {
    serde_json::from_slice(fixture(name)).unwrap()
}

fn batch(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(events).unwrap()
}

const ID_SUCCESS: &str = "6f7f0961-0000-4000-8000-000000000001";
const ID_ERROR: &str = "6f7f0961-0000-4000-8000-000000000002";
const ID_TIMEOUT: &str = "6f7f0961-0000-4000-8000-000000000003";

fn new_store() -> Arc<Store> {
    Arc::new(Store::new(100, fixed_clock(1_700_000_000_000_000_000)))
}

fn invoke(store: &Store, id: &str) {
    store.begin(id, Source::Invoke, |_, _| {}); // the INVOKE event
}

/// A store with INVOKE-created records for `ids`, and an applier on it (standard Lambda).
fn standard(ids: &[&str]) -> (Arc<Store>, Applier) {
    let store = new_store();
    for id in ids {
        invoke(&store, id);
    }
    (Arc::clone(&store), Applier::new(store, false, None))
}

fn managed() -> (Arc<Store>, Applier) {
    let store = new_store();
    (Arc::clone(&store), Applier::new(store, true, None))
}

fn outcome(events: u64, ignored: u64, invalid: u64) -> BatchOutcome {
    BatchOutcome { events, ignored, invalid }
}

fn at(time: &str) -> Timestamp {
    Timestamp::parse_rfc3339(time).unwrap()
}

// ---- merging (the Go tests' cases) ----

#[test]
fn enrichment_from_schema_shaped_fixtures() {
    struct Want {
        status: Status,
        error_type: Option<&'static str>,
        duration: f64,
        billed: u32,
        memory: u32,
        init: f64,
        trace: Option<&'static str>,
    }
    for (name, id, want) in [
        (
            "success.json",
            ID_SUCCESS,
            Want {
                status: Status::Success,
                error_type: None,
                duration: 40.12,
                billed: 41,
                memory: 31,
                init: 180.25,
                trace: Some("Root=1-6741a8f2-000000000000000000000001;Parent=53995c3f42cd8ad8;Sampled=0"),
            },
        ),
        (
            "error.json",
            ID_ERROR,
            Want {
                status: Status::Error,
                error_type: Some("Runtime.HandlerError"),
                duration: 12.04,
                billed: 13,
                memory: 32,
                init: 0.0,
                trace: None,
            },
        ),
        (
            "timeout.json",
            ID_TIMEOUT,
            Want {
                status: Status::Timeout,
                error_type: Some("Sandbox.Timedout"),
                duration: 3000.5,
                billed: 3000,
                memory: 40,
                init: 0.0,
                trace: None,
            },
        ),
    ] {
        let (store, applier) = standard(&[id]);
        let got = applier.apply_batch(fixture(name)).unwrap();
        assert_eq!((got.ignored, got.invalid), (0, 0), "{name}");
        let r = store.get(id).unwrap();
        assert_eq!(r.status, Some(want.status), "{name}");
        assert_eq!(r.error_type(), want.error_type, "{name}");
        assert_eq!(
            (r.duration_ms, r.billed_duration_ms, r.max_memory_used_mb, r.init_duration_ms()),
            (want.duration, want.billed, want.memory, want.init),
            "{name}"
        );
        assert_eq!(r.trace_id.map(|t| t.to_string()).as_deref(), want.trace, "{name}");
    }
}

#[test]
fn init_events_fill_the_environment() {
    for (name, want) in [
        (
            "success.json",
            InitInfo {
                init_type: "on-demand".into(),
                init_duration_ms: 180.25,
                init_status: "success".into(),
                runtime_version: "provided:al2023.v100".into(),
                runtime_version_arn: "arn:aws:lambda:eu-west-1::runtime:5e8de6bd50d624376ae13237e86c698fc23138eacd8186371c6930c98779d08f"
                    .into(),
            },
        ),
        (
            "init_error.json",
            InitInfo {
                init_type: "provisioned-concurrency".into(),
                init_duration_ms: 251.0,
                init_status: "error".into(),
                runtime_version: "python:3.13.v20".into(),
                runtime_version_arn: "arn:aws:lambda:eu-west-1::runtime:0000000000000000000000000000000000000000000000000000000000000000"
                    .into(),
            },
        ),
        (
            "managed_instances.json",
            InitInfo {
                init_type: "lambda-managed-instances".into(),
                init_duration_ms: 71.2,
                init_status: "success".into(),
                runtime_version: String::new(),
                runtime_version_arn: String::new(),
            },
        ),
    ] {
        let (store, applier) = standard(&[]);
        applier.apply_batch(fixture(name)).unwrap();
        assert_eq!(store.init(), want, "{name}");
    }
}

#[test]
fn init_report_is_authoritative_over_init_runtime_done() {
    let (store, applier) = standard(&[]);
    let report = json!({"type": "platform.initReport", "record": {"initializationType": "on-demand", "status": "error", "metrics": {"durationMs": 5}}});
    let done = json!({"type": "platform.initRuntimeDone", "record": {"initializationType": "on-demand", "status": "success"}});
    applier.apply_batch(&batch(&[report, done])).unwrap();
    assert_eq!(store.init().init_status, "error");
}

/// A small deterministic generator: the permutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn comparable(mut r: Record) -> Record {
    r.invocated_at = Timestamp(0);
    r.sequence = 0;
    r.cold_start = false;
    r
}

/// The same events in many orders, split into two batches, each event possibly twice, some before
/// the INVOKE record exists: the result is the one of the events in order.
#[test]
fn order_and_duplicates_do_not_matter() {
    let ids = [ID_SUCCESS, ID_ERROR, ID_TIMEOUT];
    let all: Vec<Value> = ["success.json", "error.json", "timeout.json"]
        .into_iter()
        .flat_map(events)
        .collect();
    let (reference, applier) = standard(&ids);
    applier.apply_batch(&batch(&all)).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for permutation in 0..200 {
        let mut evs = all.clone();
        for _ in 0..rng.below(all.len()) {
            evs.push(all[rng.below(all.len())].clone()); // duplicates
        }
        rng.shuffle(&mut evs);
        let (store, applier) = standard(&[]);
        let split = rng.below(evs.len() + 1);
        applier.apply_batch(&batch(&evs[..split])).unwrap(); // may overtake INVOKE
        for id in ids {
            invoke(&store, id);
        }
        applier.apply_batch(&batch(&evs[split..])).unwrap();
        for id in ids {
            assert_eq!(
                comparable(store.get(id).unwrap()),
                comparable(reference.get(id).unwrap()),
                "permutation {permutation}: {id}"
            );
        }
        let counts = store.counts();
        assert_eq!((counts.served, counts.pending_updates), (3, 0), "permutation {permutation}");
    }
}

#[test]
fn managed_instances_build_records_from_platform_start() {
    let (store, applier) = managed();
    let evs = events("managed_instances.json");
    // The report of b arrives in an earlier batch than its start: held, then applied.
    applier.apply_batch(&batch(&evs[7..8])).unwrap();
    let rest: Vec<Value> = evs[..7].iter().chain(&evs[8..]).cloned().collect();
    assert_eq!(applier.apply_batch(&batch(&rest)).unwrap(), outcome(8, 0, 0));
    applier.apply_batch(&batch(&evs[5..6])).unwrap(); // a duplicate start creates nothing
    let records = store.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(store.counts().served, 2);
    let (a, b) = (&records[0], &records[1]);
    assert_eq!(a.request_id.to_string(), "6f7f0961-0000-4000-8000-00000000000a");
    assert_eq!(
        (a.status, a.error_type(), a.duration_ms),
        (Some(Status::Error), Some("Runtime.HandlerError"), 2.75)
    );
    assert_eq!(
        a.invoked_function_arn.as_deref(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:function")
    );
    assert_eq!(a.invocated_at, at("2026-11-23T10:04:01Z"));
    assert_eq!((b.status, b.duration_ms), (Some(Status::Success), 1.5));
}

fn start(id: &str, time: &str) -> Value {
    json!({"time": time, "type": "platform.start", "record": {"requestId": id, "version": "$LATEST"}})
}

fn report(id: &str, time: &str, status: &str, duration: f64) -> Value {
    json!({"time": time, "type": "platform.report", "record": {"requestId": id, "status": status, "metrics": {"durationMs": duration}}})
}

// Lambda retries a failed asynchronous invocation with the same request id: on Managed Instances
// the retry's platform.start (after the attempt before it ended) is a new record, and later events
// of that id go to it.
#[test]
fn managed_instances_retry_is_a_new_record() {
    let (store, applier) = managed();
    let id = "6f7f0961-0000-4000-8000-00000000000a";
    for b in [
        vec![start(id, "2026-11-23T10:04:01.000Z")],
        vec![
            start(id, "2026-11-23T10:04:01.000Z"),
            report(id, "2026-11-23T10:04:01.500Z", "error", 500.0),
        ],
        vec![
            start(id, "2026-11-23T10:05:01.000Z"),
            report(id, "2026-11-23T10:05:01.010Z", "success", 1.25),
        ],
    ] {
        applier.apply_batch(&batch(&b)).unwrap();
    }
    let records = store.records();
    assert_eq!(records.len(), 2, "the first attempt once and the retry: {records:?}");
    let (first, retry) = (&records[0], &records[1]);
    assert_eq!((first.status, first.duration_ms), (Some(Status::Error), 500.0));
    assert_eq!((retry.status, retry.duration_ms), (Some(Status::Success), 1.25));
    assert_eq!(retry.invocated_at, at("2026-11-23T10:05:01Z"));
}

// Hardening: anyone in the sandbox can post starts; one for a request id that is running (or a
// redelivery of a start the bounded memory has forgotten) never makes a second record.
#[test]
fn managed_instances_start_for_a_running_request_id_creates_nothing() {
    let (store, applier) = managed();
    let id = "6f7f0961-0000-4000-8000-00000000000a";
    applier.apply_batch(&batch(&[start(id, "2026-11-23T10:04:01.000Z")])).unwrap();
    applier.apply_batch(&batch(&[start(id, "2026-11-23T10:04:02.000Z")])).unwrap();
    applier.apply_batch(&batch(&[start(id, "yesterday")])).unwrap();
    assert_eq!(store.counts().served, 1);
    assert_eq!(store.get(id).unwrap().invocated_at, at("2026-11-23T10:04:01Z"));

    // Finished, then thousands of other starts push it out of the memory of recent events; its
    // start delivered again is still the same attempt.
    let store = Arc::new(Store::new(5000, fixed_clock(1)));
    let applier = Applier::new(Arc::clone(&store), true, None);
    applier
        .apply_batch(&batch(&[
            start(id, "2026-11-23T10:04:01.000Z"),
            report(id, "2026-11-23T10:04:03.000Z", "success", 2.0),
        ]))
        .unwrap();
    let others: Vec<Value> = (0..3000)
        .map(|n| start(&format!("other-{n}"), "2026-11-23T10:04:04.000Z"))
        .collect();
    applier.apply_batch(&batch(&others)).unwrap();
    applier.apply_batch(&batch(&[start(id, "2026-11-23T10:04:01.000Z")])).unwrap();
    assert_eq!(store.counts().served, 3001);
    assert_eq!(store.records().iter().filter(|r| r.request_id.is(id)).count(), 1);
}

#[test]
fn standard_mode_does_not_create_records_from_telemetry() {
    let (store, applier) = standard(&[]);
    applier.apply_batch(fixture("success.json")).unwrap();
    let counts = store.counts();
    assert_eq!(
        (counts.served, counts.pending_updates),
        (0, 1),
        "the updates are held for the INVOKE record"
    );
}

type ReportSink = Option<Box<dyn Fn(f64) + Send + Sync>>;

fn recording() -> (Arc<Mutex<Vec<f64>>>, ReportSink) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    (seen, Some(Box::new(move |d| kept.lock().unwrap().push(d))))
}

#[test]
fn on_report_receives_each_invocations_first_report_once() {
    // Standard Lambda: the report carries the billed duration.
    let (seen, on_report) = recording();
    let store = new_store();
    invoke(&store, ID_SUCCESS);
    let applier = Applier::new(Arc::clone(&store), false, on_report);
    applier.apply_batch(fixture("success.json")).unwrap();
    applier.apply_batch(fixture("success.json")).unwrap();
    assert_eq!(*seen.lock().unwrap(), [40.12]);

    // Managed Instances: reports without a billed duration, one of them before its start.
    let (seen, on_report) = recording();
    let store = new_store();
    let applier = Applier::new(Arc::clone(&store), true, on_report);
    let evs = events("managed_instances.json");
    applier.apply_batch(&batch(&evs[7..8])).unwrap();
    applier.apply_batch(fixture("managed_instances.json")).unwrap();
    applier.apply_batch(fixture("managed_instances.json")).unwrap();
    assert_eq!(*seen.lock().unwrap(), [1.5, 2.75]);
}

// ---- validation (hardening) ----

fn report_with(record: Value) -> Vec<u8> {
    batch(&[json!({"time": "2026-11-23T10:00:00Z", "type": "platform.report", "record": record})])
}

#[test]
fn values_outside_what_lambda_documents_are_counted_and_not_stored() {
    let long = "x".repeat(MAX_TEXT_BYTES + 1);
    for (case, record) in [
        ("status not in the enum", json!({"requestId": ID_SUCCESS, "status": "meh"})),
        ("status in another case", json!({"requestId": ID_SUCCESS, "status": "Success"})),
        ("negative duration", json!({"requestId": ID_SUCCESS, "metrics": {"durationMs": -1}})),
        ("huge duration", json!({"requestId": ID_SUCCESS, "metrics": {"durationMs": 1e308}})),
        (
            "duration past 15 minutes and margin",
            json!({"requestId": ID_SUCCESS, "metrics": {"durationMs": 2e6}}),
        ),
        (
            "duration as a string",
            json!({"requestId": ID_SUCCESS, "metrics": {"durationMs": "40"}}),
        ),
        (
            "fractional billed duration",
            json!({"requestId": ID_SUCCESS, "metrics": {"billedDurationMs": 1.5}}),
        ),
        (
            "billed duration past u32",
            json!({"requestId": ID_SUCCESS, "metrics": {"billedDurationMs": 5e9}}),
        ),
        (
            "negative billed duration",
            json!({"requestId": ID_SUCCESS, "metrics": {"billedDurationMs": -1}}),
        ),
        (
            "memory no environment has",
            json!({"requestId": ID_SUCCESS, "metrics": {"maxMemoryUsedMB": 1e6}}),
        ),
        (
            "negative memory",
            json!({"requestId": ID_SUCCESS, "metrics": {"maxMemoryUsedMB": -128}}),
        ),
        (
            "negative init duration",
            json!({"requestId": ID_SUCCESS, "metrics": {"initDurationMs": -0.5}}),
        ),
        (
            "long error type",
            json!({"requestId": ID_SUCCESS, "status": "error", "errorType": long}),
        ),
        (
            "long request id",
            json!({"requestId": format!("{ID_SUCCESS}{long}"), "status": "error"}),
        ),
        ("metrics not an object", json!({"requestId": ID_SUCCESS, "metrics": [1]})),
        ("tracing not an object", json!({"requestId": ID_SUCCESS, "tracing": "Root=1"})),
    ] {
        let (store, applier) = standard(&[ID_SUCCESS]);
        assert_eq!(applier.apply_batch(&report_with(record)).unwrap(), outcome(0, 0, 1), "{case}");
        let untouched = standard(&[ID_SUCCESS]).0.get(ID_SUCCESS).unwrap();
        assert_eq!(store.get(ID_SUCCESS).unwrap(), untouched, "{case}: stored something");
        assert_eq!(store.counts().pending_updates, 0, "{case}");
    }
}

#[test]
fn values_at_lambdas_limits_are_stored() {
    let (store, applier) = standard(&[ID_SUCCESS]);
    let error_type = "E".repeat(MAX_TEXT_BYTES);
    let record = json!({"requestId": ID_SUCCESS, "status": "failure", "errorType": error_type,
        "metrics": {"durationMs": 900000.0, "billedDurationMs": 900000, "maxMemoryUsedMB": 10240, "initDurationMs": 0}});
    assert_eq!(applier.apply_batch(&report_with(record)).unwrap(), outcome(1, 0, 0));
    let r = store.get(ID_SUCCESS).unwrap();
    assert_eq!((r.status, r.error_type()), (Some(Status::Failure), Some(error_type.as_str())));
    assert_eq!(
        (r.duration_ms, r.billed_duration_ms, r.max_memory_used_mb),
        (900_000.0, 900_000, 10_240)
    );

    let (store, applier) = standard(&[ID_SUCCESS]);
    let record = json!({"requestId": ID_SUCCESS, "metrics": {"durationMs": MAX_DURATION_MS}});
    assert_eq!(applier.apply_batch(&report_with(record)).unwrap(), outcome(1, 0, 0));
    assert_eq!(store.get(ID_SUCCESS).unwrap().duration_ms, MAX_DURATION_MS);
}

#[test]
fn start_and_init_values_are_validated_too() {
    let long = "x".repeat(MAX_TEXT_BYTES + 1);
    let start_with = |record: Value| batch(&[json!({"time": "2026-11-23T10:00:00Z", "type": "platform.start", "record": record})]);
    for (case, body) in [
        (
            "long trace",
            start_with(
                json!({"requestId": ID_SUCCESS, "tracing": {"type": "X-Amzn-Trace-Id", "value": "R".repeat(crate::history::MAX_TRACE_ID_BYTES + 1)}}),
            ),
        ),
        (
            "long function ARN",
            start_with(json!({"requestId": ID_SUCCESS, "functionArn": "a".repeat(crate::history::MAX_ARN_BYTES + 1)})),
        ),
        ("request id not a string", start_with(json!({"requestId": 7}))),
    ] {
        let (store, applier) = standard(&[ID_SUCCESS]);
        assert_eq!(applier.apply_batch(&body).unwrap(), outcome(0, 0, 1), "{case}");
        let r = store.get(ID_SUCCESS).unwrap();
        assert!(r.trace_id.is_none() && r.invoked_function_arn.is_none(), "{case}");
    }
    let init_with = |kind: &str, record: Value| batch(&[json!({"type": kind, "record": record})]);
    for (case, body) in [
        (
            "long runtime version",
            init_with(
                "platform.initStart",
                json!({"initializationType": "on-demand", "runtimeVersion": long}),
            ),
        ),
        (
            "long runtime version ARN",
            init_with("platform.initStart", json!({"runtimeVersionArn": long})),
        ),
        (
            "long init type",
            init_with("platform.initStart", json!({"initializationType": long})),
        ),
        (
            "init status not in the enum",
            init_with("platform.initReport", json!({"status": "ok"})),
        ),
        (
            "huge init duration",
            init_with(
                "platform.initReport",
                json!({"status": "success", "metrics": {"durationMs": 1e308}}),
            ),
        ),
        (
            "negative init duration",
            init_with("platform.initReport", json!({"status": "success", "metrics": {"durationMs": -3}})),
        ),
    ] {
        let (store, applier) = standard(&[]);
        assert_eq!(applier.apply_batch(&body).unwrap(), outcome(0, 0, 1), "{case}");
        assert_eq!(store.init(), InitInfo::default(), "{case}");
    }
}

#[test]
fn parsing_reads_batches_as_encoding_json_did() {
    let ok = |body: &str| parse_batch(body.as_bytes());
    for (case, body, want) in [
        ("empty batch", "[]", outcome(0, 0, 0)),
        (
            "unknown type",
            r#"[{"time":"2026-11-23T10:00:00Z","type":"platform.future","record":{"x":1}}]"#,
            outcome(0, 1, 0),
        ),
        (
            "function log line",
            r#"[{"time":"2026-11-23T10:00:00Z","type":"function","record":"hello"}]"#,
            outcome(0, 1, 0),
        ),
        ("no type", r#"[{"record":{"requestId":"r"}}]"#, outcome(0, 1, 0)),
        (
            "record of the wrong shape",
            r#"[{"type":"platform.report","record":"oops"},{"type":"platform.report","record":{"requestId":7}}]"#,
            outcome(0, 0, 2),
        ),
        (
            "no request id",
            r#"[{"type":"platform.report","record":{"status":"success"}}]"#,
            outcome(0, 0, 1),
        ),
        (
            "no record",
            r#"[{"type":"platform.report"},{"type":"platform.initStart"}]"#,
            outcome(0, 0, 2),
        ),
        (
            "null record of an init event",
            r#"[{"type":"platform.initStart","record":null}]"#,
            outcome(1, 0, 0),
        ),
        (
            "null record of a start",
            r#"[{"type":"platform.start","record":null}]"#,
            outcome(0, 0, 1),
        ),
        ("element not an object", r#"[1, "two", null, [3], true]"#, outcome(0, 1, 4)),
        ("type not a string", r#"[{"type":5,"record":{"requestId":"r"}}]"#, outcome(0, 0, 1)),
        (
            "time not a string",
            r#"[{"time":5,"type":"platform.start","record":{"requestId":"r"}}]"#,
            outcome(0, 0, 1),
        ),
        (
            "bad time is harmless",
            r#"[{"time":"yesterday","type":"platform.start","record":{"requestId":"r"}}]"#,
            outcome(1, 0, 0),
        ),
        (
            "known types the history does not keep",
            r#"[{"type":"platform.logsDropped","record":{}},{"type":"platform.extension"}]"#,
            outcome(2, 0, 0),
        ),
        (
            "unknown fields at every level",
            r#"[{"x":[{"y":{}}],"type":"platform.report","record":{"requestId":"r","spans":[{"name":"a"}],"metrics":{"producedBytes":1,"durationMs":1}}}]"#,
            outcome(1, 0, 0),
        ),
        (
            "values of any type in unknown fields",
            r#"[{"type":"platform.report","record":{"requestId":"r","version":1e400}}]"#,
            outcome(1, 0, 0),
        ),
    ] {
        assert_eq!(ok(body), Ok(want), "{case}");
    }
    for (case, body) in [
        ("malformed JSON", r#"[{"time":"#),
        ("not an array", r#"{"type":"platform.start"}"#),
        ("empty body", ""),
        ("trailing bytes", "[] x"),
        ("a string", r#""[]""#),
        (
            "a number out of range where a number is read",
            r#"[{"type":"platform.report","record":{"requestId":"r","metrics":{"durationMs":1e400}}}]"#,
        ),
        ("invalid UTF-8", "[\"\u{0}\"]"),
    ] {
        let body = if case == "invalid UTF-8" {
            b"[\"\xff\"]".as_slice()
        } else {
            body.as_bytes()
        };
        assert_eq!(parse_batch(body), Err(Malformed), "{case}");
    }
}

#[test]
fn escapes_repeated_keys_and_nesting_are_handled() {
    // Escaped strings are read as their text; a repeated key keeps the last value.
    let body = r#"[{"type":"platform.rep\u006frt","type":"platform.report","record":{"requestId":"r","requestId":"6f7f0961-0000-4000-8000-00000000000\u0031","st\u0061tus":"err\u006fr"}}]"#;
    let mut seen = Vec::new();
    for_each_event(body.as_bytes(), |item| {
        if let Item::Event(Event::Invoke(e)) = item {
            seen.push((e.request_id.to_owned(), e.status));
        }
    })
    .unwrap();
    assert_eq!(seen, [(ID_SUCCESS.to_owned(), Some(Status::Error))]);

    // Deep nesting where nothing is read is skipped without recursion; where a value is read,
    // serde_json's depth limit answers (no stack overflow either way).
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let unknown = format!(r#"[{{"type":"platform.report","record":{{"requestId":"r","spans":{deep}}}}}]"#);
    assert_eq!(parse_batch(unknown.as_bytes()), Ok(outcome(1, 0, 0)));
    let read = format!(r#"[{{"type":"platform.report","record":{{"requestId":{deep}}}}}]"#);
    assert_eq!(parse_batch(read.as_bytes()), Ok(outcome(0, 0, 1)));
    let top = format!("[{deep}]");
    assert_eq!(parse_batch(top.as_bytes()), Ok(outcome(0, 0, 1)));
    let objects = "{\"a\":".repeat(1000) + "1" + &"}".repeat(1000);
    assert!(parse_batch(format!("[{objects}]").as_bytes()).is_ok());
}

#[test]
fn a_malformed_batch_applies_nothing() {
    let valid = report(ID_SUCCESS, "2026-11-23T10:00:00Z", "success", 5.0).to_string();
    for body in [
        format!("[{valid},"),
        format!("[{valid}, {{\"type\":\"platform.report\",\"record\":{{\"requestId\":\"r\",\"metrics\":{{\"durationMs\":1e400}}}}}}]"),
    ] {
        let (store, applier) = standard(&[ID_SUCCESS]);
        assert_eq!(applier.apply_batch(body.as_bytes()), Err(Malformed), "{body}");
        assert_eq!(store.get(ID_SUCCESS).unwrap().status, None, "{body}");
    }
}

// The store bounds held updates in bytes; that works only if each update declares what it holds.
#[test]
fn held_updates_declare_the_bytes_they_hold() {
    let (store, applier) = standard(&[]);
    let error_type = "E".repeat(MAX_TEXT_BYTES);
    // 1,024 unknown ids with 16 updates each stay within the count bounds: only bytes can drop.
    for n in 0..MAX_PENDING_IDS {
        let id = format!("00000000-0000-4000-8000-{n:012x}");
        let reports: Vec<Value> = (0..16)
            .map(|k| {
                json!({"time": format!("2026-11-23T10:00:{k:02}Z"), "type": "platform.report",
                "record": {"requestId": id, "status": "error", "errorType": error_type}})
            })
            .collect();
        applier.apply_batch(&batch(&reports)).unwrap();
    }
    let counts = store.counts();
    assert!(
        counts.pending_updates_dropped > 0,
        "held {counts:?} without reaching the byte bound"
    );
    assert!(counts.pending_updates < MAX_PENDING_IDS as u64, "{counts:?}");
}

// ---- the listener ----

fn quiet() -> Logger {
    Logger::capture(Level::Error).0
}

async fn listening(applier: Applier, max_body: usize) -> (TelemetryListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (TelemetryListener::start(listener, applier, max_body, quiet()), address)
}

async fn send(conn: &mut Connection, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, String) {
    let answer = conn
        .send(method, path, &[], Bytes::from(body), 1 << 16, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    (answer.status, String::from_utf8_lossy(&answer.body).into_owned())
}

fn stats(batches: u64, events: u64, ignored: u64, invalid: u64, rejected_batches: u64) -> Stats {
    Stats {
        batches,
        events,
        ignored,
        invalid,
        rejected_batches,
    }
}

#[tokio::test]
async fn the_listener_never_breaks_on_bad_input() {
    for (case, method, body, max_body, status, want) in [
        (
            "malformed JSON",
            Method::POST,
            br#"[{"time":"#.to_vec(),
            4096,
            400,
            stats(0, 0, 0, 0, 1),
        ),
        (
            "not an array",
            Method::POST,
            br#"{"type":"platform.start"}"#.to_vec(),
            4096,
            400,
            stats(0, 0, 0, 0, 1),
        ),
        ("empty body", Method::POST, Vec::new(), 4096, 400, stats(0, 0, 0, 0, 1)),
        (
            "too large",
            Method::POST,
            [b"[".as_slice(), &[b' '; 6000], b"]"].concat(),
            4096,
            413,
            stats(0, 0, 0, 0, 1),
        ),
        ("wrong method", Method::GET, Vec::new(), 4096, 405, stats(0, 0, 0, 0, 1)),
        ("empty batch", Method::POST, b"[]".to_vec(), 4096, 200, stats(1, 0, 0, 0, 0)),
        (
            "unknown type",
            Method::POST,
            br#"[{"type":"platform.future","record":{"x":1}}]"#.to_vec(),
            4096,
            200,
            stats(1, 0, 1, 0, 0),
        ),
        (
            "element not an object",
            Method::POST,
            br#"[1, "two", null]"#.to_vec(),
            4096,
            200,
            stats(1, 0, 1, 2, 0),
        ),
        (
            "an invalid value",
            Method::POST,
            report_with(json!({"requestId": "r", "status": "meh"})),
            4096,
            200,
            stats(1, 0, 0, 1, 0),
        ),
        (
            "at the limit",
            Method::POST,
            [b"[".as_slice(), &[b' '; 4094], b"]"].concat(),
            4096,
            200,
            stats(1, 0, 0, 0, 0),
        ),
    ] {
        let (store, applier) = standard(&["r"]);
        let (listener, address) = listening(applier, max_body).await;
        let mut conn = Connection::new(&address);
        let (got, answer) = send(&mut conn, method, "/", body).await;
        assert_eq!(got.as_u16(), status, "{case}: {answer}");
        if status >= 400 {
            let error: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(error["errorType"], "InvalidRequest", "{case}");
        }
        assert_eq!(listener.stats(), want, "{case}");
        // ... and it keeps serving.
        let mut conn = Connection::new(&address);
        let (got, _) = send(
            &mut conn,
            Method::POST,
            "/",
            report_with(json!({"requestId": "r", "status": "success"})),
        )
        .await;
        assert_eq!(got, StatusCode::OK, "{case}: after");
        assert_eq!(store.get("r").unwrap().status, Some(Status::Success), "{case}");
        assert_eq!(
            listener
                .shutdown(tokio::time::Instant::now() + Duration::from_secs(1))
                .await
                .batches,
            want.batches + 1
        );
    }
}

#[tokio::test]
async fn the_listener_accepts_any_path_and_reports_its_stats_at_shutdown() {
    let (store, applier) = standard(&[ID_ERROR]);
    let (listener, address) = listening(applier, body_limit(262_144)).await;
    let mut conn = Connection::new(&address);
    for path in ["/", "/telemetry", "/x/y"] {
        let (status, _) = send(&mut conn, Method::POST, path, fixture("error.json").to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    assert_eq!(store.get(ID_ERROR).unwrap().status, Some(Status::Error));
    let final_stats = listener.shutdown(tokio::time::Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(final_stats, stats(3, 9, 0, 0, 0));
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn the_body_bound_holds_while_reading() {
    // Declared far beyond the limit: refused without reading.
    let declared = http_body_util::Full::new(Bytes::from(vec![b' '; 500_000]));
    assert_eq!(read_body(declared, 4096).await, Err(ReadError::TooLarge));
    // Undeclared (streamed): counted as it arrives, and the reading stops soon past the bound.
    let endless = Chunks(Arc::new(AtomicUsize::new(1000)));
    assert_eq!(read_body(endless.clone(), 4096).await, Err(ReadError::TooLarge));
    let left = endless.0.load(Ordering::Relaxed);
    assert!(left > 900, "read {} chunks of 1,000 bytes for a 4,096-byte bound", 1000 - left);
    assert_eq!(
        read_body(Chunks(Arc::new(AtomicUsize::new(4))), 4096).await.map(|b| b.len()),
        Ok(4000)
    );
    let small = http_body_util::Full::new(Bytes::from_static(b"[]"));
    assert_eq!(read_body(small, 4096).await, Ok(b"[]".to_vec()));
    assert_eq!(body_limit(262_144), 262_144 + 65_536);
}

/// A body of chunks of 1,000 bytes (as many as the counter says), its length not declared.
#[derive(Clone)]
struct Chunks(Arc<AtomicUsize>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(vec![b' '; 1000])))))
    }
}

// ---- the subscription ----

type Seen = Arc<Mutex<Vec<(String, String, String, Value)>>>;

/// A Telemetry API that answers every request with `status` and `body`, and keeps what it got
/// (method, path, extension id, body).
async fn fake_api(status: u16, body: &'static str) -> (Server, String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let kept = Arc::clone(&seen);
    let server = Server::start(
        listener,
        Limits::default(),
        quiet(),
        move |request: hyper::Request<hyper::body::Incoming>| {
            let kept = Arc::clone(&kept);
            async move {
                let method = request.method().to_string();
                let path = request.uri().path().to_owned();
                let id = request
                    .headers()
                    .get("Lambda-Extension-Identifier")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let bytes = request.into_body().collect().await.unwrap().to_bytes();
                kept.lock()
                    .unwrap()
                    .push((method, path, id, serde_json::from_slice(&bytes).unwrap_or(Value::Null)));
                let mut response = Response::new(full(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response
            }
        },
    );
    (server, address, seen)
}

const BUFFERING: Buffering = Buffering {
    max_items: 1000,
    max_bytes: 262_144,
    timeout_ms: 25,
};

#[tokio::test]
async fn subscribe_reads_the_answer_from_its_body() {
    for (case, status, body, want) in [
        ("Lambda accepts", 200, r#""OK""#, Ok(Subscription::Subscribed)),
        ("Lambda accepts, empty body", 200, "", Ok(Subscription::Subscribed)),
        (
            "RIE standard mode",
            202,
            r#"{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}"#,
            Ok(Subscription::NotSupported),
        ),
        (
            "validation error",
            400,
            r#"{"errorType":"ValidationError","errorMessage":"bad buffering"}"#,
            Err("status 400"),
        ),
        ("not registered", 403, r#"{"errorType":"Extension.Forbidden"}"#, Err("status 403")),
        (
            "2xx with another error",
            202,
            r#"{"errorType":"Telemetry.Other","errorMessage":"x"}"#,
            Err("Telemetry.Other"),
        ),
        ("server error with no body", 500, "", Err("status 500")),
    ] {
        let (server, address, seen) = fake_api(status, body).await;
        let got = subscribe(
            &mut crate::http_client::Connection::new(&address),
            "ext-1",
            &SubscribeBody::new(DESTINATION_HOST, 4243, &BUFFERING, &["platform"]),
            Duration::from_secs(5),
        )
        .await;
        match (&got, want) {
            (Ok(got), Ok(want)) => assert_eq!(*got, want, "{case}"),
            (Err(e), Err(part)) => assert!(e.starts_with("subscribe to telemetry: ") && e.contains(part), "{case}: {e}"),
            _ => panic!("{case}: {got:?}, want {want:?}"),
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{case}");
        let (method, path, id, request) = &seen[0];
        assert_eq!(
            (method.as_str(), path.as_str(), id.as_str()),
            ("PUT", "/2022-07-01/telemetry", "ext-1"),
            "{case}"
        );
        assert_eq!(
            *request,
            json!({"schemaVersion": "2025-01-29", "types": ["platform"],
                "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
                "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243"}}),
            "{case}"
        );
        server.shutdown(tokio::time::Instant::now() + Duration::from_secs(1)).await;
    }
    assert_eq!(
        (Subscription::Subscribed.as_str(), Subscription::NotSupported.as_str()),
        ("on", "unsupported")
    );
}

#[tokio::test]
async fn subscribe_asks_for_the_log_streams_it_is_given() {
    let (server, address, seen) = fake_api(200, r#""OK""#).await;
    let got = subscribe(
        &mut crate::http_client::Connection::new(&address),
        "ext-1",
        &SubscribeBody::new(DESTINATION_HOST, 4243, &BUFFERING, &["platform", "function", "extension"]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got, Ok(Subscription::Subscribed));
    let request = seen.lock().unwrap()[0].3.clone();
    assert_eq!(request["types"], json!(["platform", "function", "extension"]));
    server.shutdown(tokio::time::Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test]
async fn subscribe_reports_an_api_it_cannot_reach() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = subscribe(
        &mut crate::http_client::Connection::new(&address),
        "ext-1",
        &SubscribeBody::new(DESTINATION_HOST, 4243, &BUFFERING, &["platform"]),
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("subscribe to telemetry: connect"), "{err}");

    // A server that never answers: the timeout bounds the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let err = subscribe(
        &mut crate::http_client::Connection::new(&address),
        "ext-1",
        &SubscribeBody::new(DESTINATION_HOST, 4243, &BUFFERING, &["platform"]),
        Duration::from_millis(50),
    )
    .await
    .unwrap_err();
    assert!(err.contains("no answer within 50 ms"), "{err}");
}

// ---- where the listener binds ----

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn the_listener_binds_the_sandbox_address_only_when_it_is_local() {
    for (case, resolved, want) in [
        ("resolves to loopback (inside Lambda)", vec![addr("127.0.0.1:0")], "127.0.0.1:0"),
        ("resolves to a link-local address", vec![addr("169.254.100.1:0")], "169.254.100.1:0"),
        (
            "IPv4 preferred among several",
            vec![addr("[::1]:0"), addr("127.0.0.2:0")],
            "127.0.0.2:0",
        ),
        ("IPv6 loopback alone", vec![addr("[::1]:0")], "[::1]:0"),
        ("does not resolve (RIE)", vec![], "127.0.0.1:0"),
        ("resolves to a public address", vec![addr("203.0.113.7:0")], "127.0.0.1:0"),
        (
            "resolves to the unspecified address",
            vec![addr("0.0.0.0:0"), addr("[::]:0")],
            "127.0.0.1:0",
        ),
        (
            "a private network address",
            vec![addr("10.0.0.5:0"), addr("192.168.1.1:0")],
            "127.0.0.1:0",
        ),
    ] {
        assert_eq!(listen_address(&resolved), addr(want), "{case}");
    }
}

#[tokio::test]
async fn bind_falls_back_to_loopback_quickly() {
    type Case = (&'static str, std::io::Result<Vec<SocketAddr>>, Option<Duration>, &'static str);
    let cases: Vec<Case> = vec![
        ("resolves", Ok(vec![addr("127.0.0.2:0")]), None, "127.0.0.2"),
        ("does not resolve", Err(std::io::Error::other("no such host")), None, "127.0.0.1"),
        (
            "slow resolver is cut short",
            Ok(vec![addr("127.0.0.2:0")]),
            Some(Duration::from_secs(30)),
            "127.0.0.1",
        ),
    ];
    for (case, answer, delay, want) in cases {
        let started = std::time::Instant::now();
        let (listener, host) = bind_with(0, move |name| async move {
            assert_eq!(name, "sandbox.localdomain");
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            answer
        })
        .await
        .unwrap();
        assert_eq!(host, "sandbox.localdomain", "{case}");
        assert_eq!(listener.local_addr().unwrap().ip().to_string(), want, "{case}");
        assert_ne!(listener.local_addr().unwrap().port(), 0, "{case}");
        assert!(started.elapsed() < Duration::from_secs(1), "{case}: took {:?}", started.elapsed());
    }
}

#[test]
fn the_sandbox_address_comes_from_the_hosts_file() {
    let hosts = "127.0.0.1 localhost\n# 10.0.0.1 sandbox.localdomain\n169.254.100.1  Sandbox.LocalDomain sandbox # lambda\nbad sandbox.localdomain\n::1 ip6-localhost\n";
    assert_eq!(
        super::listener::hosts_lookup(hosts, "sandbox.localdomain"),
        [addr("169.254.100.1:0")]
    );
    assert_eq!(super::listener::hosts_lookup(hosts, "elsewhere"), []);
    assert_eq!(super::listener::hosts_lookup("", "sandbox.localdomain"), []);
}

// The real bind, on the current-thread runtime the binary uses: quick, loopback or link-local.
#[tokio::test(flavor = "current_thread")]
async fn bind_reads_the_hosts_file_on_a_current_thread_runtime() {
    let started = std::time::Instant::now();
    let (listener, host) = bind(0).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(host, DESTINATION_HOST);
    let ip = listener.local_addr().unwrap().ip();
    let local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    };
    assert!(local, "bound {ip}");
}

#[test]
fn only_a_report_marks_a_record_reported() {
    let (store, applier) = managed();
    let id = "6f7f0961-0000-4000-8000-0000000000aa";
    let done = json!({"time": "2026-11-23T10:00:01Z", "type": "platform.runtimeDone", "record": {"requestId": id, "status": "success", "metrics": {"durationMs": 1.0}}});
    applier.apply_batch(&batch(&[start(id, "2026-11-23T10:00:00Z"), done])).unwrap();
    assert!(!store.get(id).unwrap().reported, "runtimeDone is not the report");
    applier
        .apply_batch(&batch(&[report(id, "2026-11-23T10:00:02Z", "success", 1.0)]))
        .unwrap();
    assert!(store.get(id).unwrap().reported);
}
