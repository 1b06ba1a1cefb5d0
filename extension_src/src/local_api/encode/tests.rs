#![allow(clippy::unwrap_used)]

use serde::Serialize;

use super::*;
use crate::history::{Outcome, Status};

/// The record as the API documents it, encoded by serde_json: the reference `write_record` must
/// equal byte for byte.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReferenceRecord {
    aws_request_id: String,
    invocated_at: String,
    sequence: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoked_function_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    cold_start: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    billed_duration_ms: Option<u32>,
    #[serde(rename = "maxMemoryUsedMB", skip_serializing_if = "Option::is_none")]
    max_memory_used_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    init_duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_received_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_responded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_bytes: Option<u64>,
}

fn known<T: PartialEq + Default>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

fn known_float(v: f64) -> Option<f64> {
    (v != 0.0 && v.is_finite()).then_some(v)
}

fn known_time(t: Timestamp) -> Option<String> {
    (!t.is_zero()).then(|| t.to_string())
}

pub(crate) fn reference(r: &Record) -> ReferenceRecord {
    let extra = r.extra.as_deref().cloned().unwrap_or_default();
    ReferenceRecord {
        aws_request_id: r.request_id.to_string(),
        invocated_at: r.invocated_at.to_string(),
        sequence: r.sequence,
        deadline_ms: known(r.deadline_ms),
        invoked_function_arn: r.invoked_function_arn.as_deref().filter(|a| !a.is_empty()).map(str::to_owned),
        trace_id: r.trace_id.as_ref().map(ToString::to_string),
        cold_start: r.cold_start,
        status: r.status.map(Status::as_str),
        duration_ms: known_float(r.duration_ms),
        billed_duration_ms: known(r.billed_duration_ms),
        max_memory_used_mb: known(r.max_memory_used_mb),
        init_duration_ms: known_float(extra.init_duration_ms),
        error_type: extra.error_type.as_deref().filter(|t| !t.is_empty()).map(str::to_owned),
        runtime_received_at: known_time(extra.runtime_received_at),
        runtime_responded_at: known_time(extra.runtime_responded_at),
        outcome: r.outcome.map(Outcome::as_str),
        response_bytes: known(extra.response_bytes),
    }
}

/// A small deterministic generator: the cases are the same on every run, and many.
pub(crate) struct Gen(u64);

impl Gen {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn pick<'a, T: ?Sized>(&mut self, from: &[&'a T]) -> &'a T {
        from[self.below(from.len())]
    }

    /// Text made of pieces that need escaping or are multi-byte.
    pub(crate) fn odd_text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "req-", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{8}", "\u{c}", "\u{1f}", "\u{7f}", "\u{2028}", "\u{2029}", "é",
            "😀", "<html>&", "/", " ", "\u{fffd}", "日本", "'",
        ];
        (0..1 + self.below(12)).map(|_| self.pick(PIECES)).collect()
    }

    fn float(&mut self) -> f64 {
        const FLOATS: &[f64] = &[
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-9,
            1e-7,
            1e-6,
            0.1,
            1.0,
            12.345,
            100.0,
            180.25,
            1e15,
            1e16,
            1e21,
            1e22,
            5e-324,
            f64::MAX,
            -3.5,
        ];
        if self.below(3) == 0 {
            f64::from_bits(self.next())
        } else {
            FLOATS[self.below(FLOATS.len())]
        }
    }

    fn time(&mut self) -> Timestamp {
        match self.below(4) {
            0 => Timestamp(0),
            1 => Timestamp(1_700_000_000_000_000_000),
            2 => Timestamp(1_764_400_000_123_456_789),
            _ => Timestamp(i64::try_from(self.next() >> 1).unwrap()),
        }
    }

    pub(crate) fn record(&mut self, sequence: u64) -> Record {
        let id = match self.below(3) {
            0 => format!("{:08x}-e9f4-11e8-9739-{:012x}", self.next() as u32, self.next() & 0xffff_ffff_ffff),
            1 => format!("8476A536-E9F4-11E8-9739-{:012X}", self.next() & 0xffff_ffff_ffff),
            _ => self.odd_text(),
        };
        let mut r = Record::new(&id);
        r.sequence = sequence;
        r.invocated_at = self.time();
        r.cold_start = sequence == 1;
        if self.below(2) == 0 {
            r.deadline_ms = i64::try_from(self.next() >> 1).unwrap() * if self.below(2) == 0 { 1 } else { -1 };
            r.invoked_function_arn = Some(Arc::from(if self.below(2) == 0 {
                "arn:aws:lambda:us-east-1:1:function:f".to_owned()
            } else {
                self.odd_text()
            }));
            match self.below(3) {
                0 => r.set_trace_id("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
                1 => r.set_trace_id(&self.odd_text()),
                _ => {}
            }
        }
        if self.below(2) == 0 {
            r.status = [
                None,
                Some(Status::Success),
                Some(Status::Error),
                Some(Status::Failure),
                Some(Status::Timeout),
            ][self.below(5)];
            r.duration_ms = self.float();
            r.billed_duration_ms = [0, 1, 13, u32::MAX][self.below(4)];
            r.max_memory_used_mb = [0, 64, 10240, u32::MAX][self.below(4)];
        }
        if self.below(2) == 0 {
            let extra = r.extra_mut();
            extra.init_duration_ms = self.float();
            extra.runtime_received_at = self.time();
            extra.runtime_responded_at = self.time();
            extra.response_bytes = [0, 6_291_456, u64::MAX][self.below(3)];
            let error_type = if self.below(2) == 0 { String::new() } else { self.odd_text() };
            r.set_error_type(&error_type);
            r.outcome = [None, Some(Outcome::Success), Some(Outcome::Error)][self.below(3)];
        }
        r
    }
}

fn encoded(r: &Record) -> String {
    let mut out = Vec::new();
    write_record(&mut out, r);
    String::from_utf8(out).unwrap()
}

#[test]
fn write_record_equals_serde_json_of_the_reference_over_generated_records() {
    let mut generate = Gen::new(0x5eed);
    for sequence in 1..=20_000 {
        let r = generate.record(sequence);
        let want = serde_json::to_string(&reference(&r)).unwrap();
        assert_eq!(encoded(&r), want, "{r:?}");
    }
}

#[test]
fn seed_shape_and_field_order() {
    let mut r = Record::new("r1");
    r.sequence = 1;
    r.cold_start = true;
    r.invocated_at = Timestamp(1_795_424_400_000_000_000);
    r.deadline_ms = 1_700_000_000_000;
    r.invoked_function_arn = Some(Arc::from("arn:x"));
    r.set_trace_id("Root=1");
    assert_eq!(
        encoded(&r),
        r#"{"awsRequestId":"r1","invocatedAt":"2026-11-23T09:00:00Z","sequence":1,"deadlineMs":1700000000000,"invokedFunctionArn":"arn:x","traceId":"Root=1","coldStart":true}"#
    );
    r.status = Some(Status::Error);
    r.duration_ms = 12.345;
    r.billed_duration_ms = 13;
    r.max_memory_used_mb = 64;
    r.extra_mut().init_duration_ms = 150.5;
    r.set_error_type("Runtime.Unknown");
    r.extra_mut().runtime_received_at = Timestamp(1);
    r.extra_mut().runtime_responded_at = Timestamp(2_000_000);
    r.outcome = Some(Outcome::Success);
    r.extra_mut().response_bytes = 6_291_456;
    let text = encoded(&r);
    let tail = &text[text.find(",\"coldStart\"").unwrap()..];
    assert_eq!(
        tail,
        r#","coldStart":true,"status":"error","durationMs":12.345,"billedDurationMs":13,"maxMemoryUsedMB":64,"initDurationMs":150.5,"errorType":"Runtime.Unknown","runtimeReceivedAt":"1970-01-01T00:00:00.000000001Z","runtimeRespondedAt":"1970-01-01T00:00:00.002Z","outcome":"success","responseBytes":6291456}"#
    );
}

#[test]
fn non_finite_and_zero_floats_are_omitted_not_invalid_json() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0] {
        let mut r = Record::new("x");
        r.duration_ms = value;
        r.extra_mut().init_duration_ms = value;
        let text = encoded(&r);
        assert!(!text.contains("durationMs") && !text.contains("initDurationMs"), "{text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
    }
}

#[test]
fn pages_join_into_one_document() {
    let store = Arc::new(Store::new(1000, crate::history::fixed_clock(1)));
    let total = 2 * PAGE_RECORDS + 3;
    for n in 0..total {
        store.begin(&format!("id-{n}\"\u{2028}"), crate::history::Source::Invoke, |_, _| {});
    }
    let (window, counts) = store.window(crate::history::Query::default());
    let tail = ListTail {
        environment_id: "env",
        served: counts.served,
        retained: counts.retained,
        dropped: counts.dropped,
        cursor: window.up_to,
        waited_for: Some(("w", false)),
    };
    let mut body = ListBody::new(Arc::clone(&store), window, &tail, PagePool::default());
    let mut pages = Vec::new();
    while let Some(page) = body.next_page() {
        pages.push(page);
    }
    assert_eq!(pages.len(), 3, "a page per {PAGE_RECORDS} records, the tail with the last");
    assert!(body.next_page().is_none());
    let document: serde_json::Value = serde_json::from_slice(&pages.concat()).unwrap();
    assert_eq!(document["invocations"].as_array().unwrap().len(), total);
    assert_eq!(document["waitedFor"], serde_json::json!({"requestId": "w", "found": false}));

    // An empty window is one frame.
    let (empty, _) = store.window(crate::history::Query { after: 10_000, limit: 0 });
    let mut body = ListBody::new(store, empty, &tail, PagePool::default());
    let page = body.next_page().unwrap();
    assert!(page.starts_with(b"{\"invocations\":[],\"environmentId\":\"env\""));
    assert!(body.next_page().is_none());
}

#[test]
fn written_pages_are_kept_for_the_next_response_within_bounds() {
    let pool = PagePool::default();
    // Hyper drops each page once written: its buffer goes back to the pool, emptied.
    for _ in 0..MAX_SPARE_PAGES + 2 {
        drop(Page {
            bytes: b"written".to_vec(),
            pool: pool.clone(),
        });
    }
    assert_eq!(pool.spares(), MAX_SPARE_PAGES, "no more than MAX_SPARE_PAGES kept");
    // A page larger than MAX_SPARE_BYTES is freed, not kept.
    let big = PagePool::default();
    drop(Page {
        bytes: Vec::with_capacity(MAX_SPARE_BYTES + 1),
        pool: big.clone(),
    });
    assert_eq!(big.spares(), 0);

    // The next response fills a kept buffer: no new allocation, same bytes as a fresh one.
    let store = Arc::new(Store::new(10, crate::history::fixed_clock(1)));
    store.begin("a", crate::history::Source::Invoke, |_, _| {});
    let (window, counts) = store.window(crate::history::Query::default());
    let tail = ListTail {
        environment_id: "env",
        served: counts.served,
        retained: counts.retained,
        dropped: counts.dropped,
        cursor: window.up_to,
        waited_for: None,
    };
    let fresh = ListBody::new(Arc::clone(&store), window, &tail, PagePool::default())
        .next_page()
        .unwrap();
    let reused = ListBody::new(store, window, &tail, pool.clone()).next_page().unwrap();
    assert_eq!(pool.spares(), MAX_SPARE_PAGES - 1);
    assert_eq!(reused, fresh);
}
