#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::*;
use crate::time::Timestamp;

/// 2026-11-23T10:00:00Z.
const AT: Timestamp = Timestamp(1_795_428_000_000_000_000);

/// An emitter whose lines are kept, and the lines.
fn capture(namespace: &str, clock: Clock) -> (Emitter, Arc<Mutex<String>>) {
    let out = Arc::new(Mutex::new(String::new()));
    let kept = Arc::clone(&out);
    let sink: Sink = Arc::new(move |line: &str| kept.lock().unwrap().push_str(line));
    (Emitter::new(namespace.to_owned(), sink, clock), out)
}

fn fixed(at: Timestamp) -> Clock {
    Arc::new(move || at)
}

fn lines(out: &Mutex<String>) -> Vec<Value> {
    let text = out.lock().unwrap().clone();
    assert!(text.is_empty() || text.ends_with('\n'), "{text}");
    text.lines().map(check_emf).collect()
}

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks one line against the EMF specification's rules (those of
/// tests/local/fixtures/emf.schema.json and those it cannot express) and returns it parsed.
fn check_emf(line: &str) -> Value {
    assert!(line.starts_with("{\""), "the local tests find EMF lines by their start: {line}");
    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let aws = &doc["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some_and(|t| t >= 0), "Timestamp: {line}");
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert!(!directives.is_empty(), "{line}");
    for directive in directives {
        let keys: Vec<&str> = directive.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(keys.iter().all(|k| ["Namespace", "Dimensions", "Metrics"].contains(k)), "{line}");
        let namespace = directive["Namespace"].as_str().unwrap();
        assert!((1..=255).contains(&namespace.len()) && !namespace.starts_with("AWS/"), "{line}");
        assert!(
            namespace.chars().all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c)),
            "{line}"
        );
        for set in directive["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30, "{line}");
            for name in set {
                let name = name.as_str().unwrap();
                assert!((1..=255).contains(&name.len()), "{line}");
                assert!(
                    doc[name].as_str().is_some_and(|v| !v.is_empty()),
                    "dimension {name} has no string value: {line}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!((1..=100).contains(&metrics.len()), "{line}");
        for metric in metrics {
            assert!(
                metric
                    .as_object()
                    .unwrap()
                    .keys()
                    .all(|k| ["Name", "Unit", "StorageResolution"].contains(&k.as_str()))
            );
            let name = metric["Name"].as_str().unwrap();
            assert!((1..=255).contains(&name.len()), "{line}");
            assert!(UNITS.contains(&metric["Unit"].as_str().unwrap()), "{line}");
            match &doc[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(
                        (1..=MAX_VALUES_PER_LINE).contains(&values.len()),
                        "{name} has {} values",
                        values.len()
                    );
                    assert!(values.iter().all(Value::is_number), "{line}");
                }
                _ => panic!("metric {name} has no numeric value: {line}"),
            }
        }
    }
    doc
}

fn names(doc: &Value) -> Vec<&str> {
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect()
}

fn dims(name: &str, version: &str) -> Dimensions {
    Dimensions {
        function_name: name.into(),
        function_version: version.into(),
        ..Dimensions::default()
    }
}

#[test]
fn started_and_stopped_lines_are_valid_emf() {
    let with_version = Dimensions {
        function_name: "demo".into(),
        function_version: "7".into(),
        environment_id: "e1".into(),
        init_type: "on-demand".into(),
    };
    let both = serde_json::json!([["FunctionName"], ["FunctionName", "FunctionVersion"]]);
    let one = serde_json::json!([["FunctionName"]]);
    for (env, want_dimensions) in [(with_version, both), (dims("demo", ""), one)] {
        let (emitter, out) = capture("Team/History", fixed(AT));
        emitter.started(&env);
        emitter.stopped(&env, 1500.0, 42, "spindown");
        let lines = lines(&out);
        let [started, stopped] = &lines[..] else { panic!("{lines:?}") };
        for doc in [started, stopped] {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(doc["_aws"]["Timestamp"], 1_795_428_000_000i64);
            assert_eq!(directive["Namespace"], "Team/History");
            assert_eq!(directive["Dimensions"], want_dimensions);
            assert_eq!(doc["FunctionName"], "demo");
            // Properties are there when known, absent (not empty) when not.
            assert_eq!(doc.get("EnvironmentId").is_some(), !env.environment_id.is_empty());
            assert_eq!(doc.get("InitType").is_some(), !env.init_type.is_empty());
            assert_eq!(doc.get("FunctionVersion").is_some(), !env.function_version.is_empty());
        }
        assert_eq!(names(started), ["EnvironmentStarted"]);
        assert_eq!(started["EnvironmentStarted"], 1);
        assert!(started.get("ShutdownReason").is_none());
        assert_eq!(names(stopped), ["EnvironmentStopped", "EnvironmentLifetime", "InvocationsServed"]);
        assert_eq!(stopped["EnvironmentStopped"], 1);
        assert_eq!(stopped["EnvironmentLifetime"], 1500.0);
        assert_eq!(stopped["InvocationsServed"], 42);
        assert_eq!(stopped["ShutdownReason"], "spindown");
    }
}

#[test]
fn a_full_line_matches_the_go_extensions_output_member_for_member() {
    let (emitter, out) = capture("InvocationHistory", fixed(AT));
    let env = Dimensions {
        function_name: "demo".into(),
        function_version: "7".into(),
        environment_id: "e1".into(),
        init_type: "on-demand".into(),
    };
    emitter.stopped(&env, 2.5, 3, "spindown");
    // What encoding/json wrote for the same line (its member order differs; JSON's meaning does not).
    let go: Value = serde_json::from_str(
        r#"{"EnvironmentId":"e1","EnvironmentLifetime":2.5,"EnvironmentStopped":1,"FunctionName":"demo","FunctionVersion":"7","InitType":"on-demand","InvocationsServed":3,"ShutdownReason":"spindown","_aws":{"Timestamp":1795428000000,"CloudWatchMetrics":[{"Namespace":"InvocationHistory","Dimensions":[["FunctionName"],["FunctionName","FunctionVersion"]],"Metrics":[{"Name":"EnvironmentStopped","Unit":"Count"},{"Name":"EnvironmentLifetime","Unit":"Milliseconds"},{"Name":"InvocationsServed","Unit":"Count"}]}]}}"#,
    )
    .unwrap();
    assert_eq!(lines(&out), [go]);
}

#[test]
fn durations_line_is_valid_emf_and_an_empty_batch_writes_nothing() {
    let (emitter, out) = capture("InvocationHistory", fixed(AT));
    emitter.durations(&dims("demo", "1"), &[1.5, 40.12, 3.0]);
    emitter.durations(&dims("demo", ""), &[]);
    let lines = lines(&out);
    assert_eq!(lines.len(), 1);
    let metric = &lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0];
    assert_eq!(
        (metric["Name"].as_str(), metric["Unit"].as_str()),
        (Some(INVOCATION_DURATION), Some("Milliseconds"))
    );
    assert_eq!(lines[0][INVOCATION_DURATION], serde_json::json!([1.5, 40.12, 3.0]));
}

#[test]
fn durations_beyond_a_line_go_out_in_lines_of_at_most_100_in_order() {
    let (emitter, out) = capture("InvocationHistory", fixed(AT));
    let values: Vec<f64> = (0..250).map(f64::from).collect();
    emitter.durations(&dims("demo", "1"), &values);
    let written: Vec<Vec<f64>> = lines(&out)
        .iter()
        .map(|doc| {
            doc[INVOCATION_DURATION]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(written.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
    assert_eq!(written.concat(), values);
}

#[test]
fn values_that_are_not_numbers_never_reach_a_line() {
    let (emitter, out) = capture("InvocationHistory", fixed(AT));
    emitter.durations(&dims("demo", "1"), &[f64::NAN, 2.0, f64::INFINITY]);
    emitter.durations(&dims("demo", "1"), &[f64::NAN]);
    emitter.stopped(&dims("demo", "1"), f64::NAN, 1, "");
    emitter.stopped(&dims("demo", "1"), -5.0, 1, "");
    let lines = lines(&out);
    assert_eq!(lines.len(), 3, "a batch of only NaN writes no line");
    assert_eq!(lines[0][INVOCATION_DURATION], serde_json::json!([2.0]));
    assert_eq!(lines[1]["EnvironmentLifetime"], 0.0);
    assert_eq!(lines[2]["EnvironmentLifetime"], 0.0);
}

#[test]
fn a_dimension_cloudwatch_would_refuse_is_left_out_not_written_empty() {
    let long = "v".repeat(1025);
    let cases = [
        (dims("demo", " "), serde_json::json!([["FunctionName"]])),
        (dims("demo", &long), serde_json::json!([["FunctionName"]])),
        (dims("", "7"), serde_json::json!([])),
        (dims("\t", ""), serde_json::json!([])),
    ];
    for (env, want) in cases {
        let (emitter, out) = capture("InvocationHistory", fixed(AT));
        emitter.started(&env);
        let line = &lines(&out)[0];
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], want, "{env:?}");
    }
}

#[test]
fn properties_from_outside_cannot_break_the_line() {
    let (emitter, out) = capture("InvocationHistory", fixed(AT));
    let env = Dimensions {
        environment_id: "e\"1".into(),
        ..dims("demo", "1")
    };
    emitter.stopped(&env, 1.0, 1, "spin\ndown\"}{");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["ShutdownReason"], "spin\ndown\"}{");
    assert_eq!(lines[0]["EnvironmentId"], "e\"1");
}

#[test]
fn a_clock_before_the_epoch_stamps_zero() {
    let (emitter, out) = capture("InvocationHistory", fixed(Timestamp(-5_000_000)));
    emitter.started(&dims("demo", ""));
    assert_eq!(lines(&out)[0]["_aws"]["Timestamp"], 0);
}

const MINUTE_NANOS: i64 = 60_000_000_000;

/// Whether `durations.full()` resolves without waiting.
async fn signalled(durations: &Durations) -> bool {
    tokio::time::timeout(Duration::from_millis(1), durations.full()).await.is_ok()
}

#[tokio::test(start_paused = true)]
async fn durations_are_batched_by_count_age_and_shutdown() {
    let t0 = AT;
    let d = Durations::new();
    for i in 0..99 {
        d.add(f64::from(i), t0);
    }
    assert!(!signalled(&d).await, "a signal before a line's worth waits");
    for i in 99..105 {
        d.add(f64::from(i), t0);
    }
    assert!(signalled(&d).await, "no signal with a full line waiting");
    let full = d.take(t0, false);
    assert_eq!(full.len(), MAX_VALUES_PER_LINE);
    assert_eq!(full[0], 0.0);
    assert!(
        d.take(Timestamp(t0.0 + MINUTE_NANOS / 2), false).is_empty(),
        "5 young values were taken"
    );
    assert_eq!(d.take(Timestamp(t0.0 + MINUTE_NANOS), false), [100.0, 101.0, 102.0, 103.0, 104.0]);
    d.add(7.0, t0);
    assert_eq!(d.take(t0, true), [7.0], "flush at shutdown");
    assert!(d.take(t0, true).is_empty());
}

#[test]
fn values_left_after_a_full_line_wait_from_the_take() {
    let d = Durations::new();
    for _ in 0..MAX_VALUES_PER_LINE + 1 {
        d.add(1.0, AT);
    }
    let later = Timestamp(AT.0 + MINUTE_NANOS);
    assert_eq!(d.take(later, false).len(), MAX_VALUES_PER_LINE);
    assert!(d.take(Timestamp(later.0 + MINUTE_NANOS - 1), false).is_empty());
    assert_eq!(d.take(Timestamp(later.0 + MINUTE_NANOS), false), [1.0]);
}

#[test]
fn durations_waiting_are_bounded_and_invalid_ones_counted() {
    let d = Durations::new();
    for _ in 0..MAX_PENDING_DURATIONS + 3 {
        d.add(1.0, AT);
    }
    assert_eq!(d.dropped(), 3);
    let d = Durations::new();
    for bad in [f64::NAN, f64::INFINITY, -1.0] {
        d.add(bad, AT);
    }
    assert_eq!(d.dropped(), 3);
    assert!(d.take(AT, true).is_empty());
}

/// A clock the test moves.
fn manual_clock() -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(AT.0));
    let read = Arc::clone(&now);
    (Arc::new(move || Timestamp(read.load(Ordering::SeqCst))), now)
}

fn values_per_line(out: &Mutex<String>) -> Vec<usize> {
    lines(out)
        .iter()
        .map(|doc| doc[INVOCATION_DURATION].as_array().unwrap().len())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_durations_task_writes_full_lines_at_once_old_ones_on_the_tick_and_the_rest_at_stop() {
    let (clock, now) = manual_clock();
    let (emitter, out) = capture("InvocationHistory", Arc::clone(&clock));
    let durations = Arc::new(Durations::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_durations(
        emitter,
        dims("demo", "1"),
        Arc::clone(&durations),
        Arc::clone(&clock),
        stop_rx,
    ));

    // A full line goes out at once, well before the first tick.
    for _ in 0..MAX_VALUES_PER_LINE {
        durations.add(1.0, clock());
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(values_per_line(&out), [100]);

    // Young values wait through a tick; once a minute old, the next tick writes them.
    for _ in 0..5 {
        durations.add(2.0, clock());
    }
    tokio::time::sleep(DURATIONS_TICK).await;
    assert_eq!(values_per_line(&out), [100]);
    now.fetch_add(MINUTE_NANOS, Ordering::SeqCst);
    tokio::time::sleep(DURATIONS_TICK).await;
    assert_eq!(values_per_line(&out), [100, 5]);

    // At stop, whatever waits goes out, however young.
    for _ in 0..3 {
        durations.add(3.0, clock());
    }
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(values_per_line(&out), [100, 5, 3]);
}

#[tokio::test(start_paused = true)]
async fn the_durations_task_flushes_when_its_stop_sender_is_dropped() {
    let (emitter, out) = capture("InvocationHistory", fixed(AT));
    let durations = Arc::new(Durations::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    durations.add(4.0, AT);
    let task = tokio::spawn(run_durations(
        emitter,
        dims("demo", "1"),
        Arc::clone(&durations),
        fixed(AT),
        stop_rx,
    ));
    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
    assert_eq!(values_per_line(&out), [1]);
}
