#![allow(clippy::unwrap_used)]

use super::*;

const ID: &str = "6f1c4a1e-8a7b-4c1d-9e2f-0123456789ab";

fn all() -> LogStreams {
    LogStreams {
        platform: true,
        function: true,
        extension: true,
    }
}

fn id_of(record: &str) -> Option<RequestId> {
    let raw: &RawValue = serde_json::from_str(record).unwrap();
    request_id_of(raw)
}

#[test]
fn the_request_id_is_found_in_each_shape_the_runtimes_write() {
    let want = Some(RequestId::new(ID));
    // JSON log format on Lambda: the record is an object.
    assert_eq!(
        id_of(&format!(r#"{{"timestamp":"t","level":"INFO","message":"m","requestId":"{ID}"}}"#)),
        want
    );
    // Java's runtime client.
    assert_eq!(id_of(&format!(r#"{{"message":"m","AWSRequestId":"{ID}"}}"#)), want);
    // The emulator relays a JSON line as a string.
    let line = format!(r#"{{"level":"INFO","requestId":"{ID}"}}"#);
    assert_eq!(id_of(&serde_json::to_string(&line).unwrap()), want);
    // Text format: Python, then Node.js.
    assert_eq!(id_of(&format!(r#""[INFO]\t2026-11-29T19:05:00.123Z\t{ID}\thello""#)), want);
    assert_eq!(id_of(&format!(r#""2026-11-29T19:05:00.123Z\t{ID}\tINFO\thello""#)), want);
}

#[test]
fn a_record_without_a_request_id_names_none() {
    for record in [
        r#""hello from print""#,
        r#""a\tb\tc\t6f1c4a1e-8a7b-4c1d-9e2f-0123456789ab""#, // fourth field: a message, not the prefix
        r#"{"message":"no id"}"#,
        r#"{"requestId":""}"#,
        r#"{"requestId":5}"#,
        "5",
        "null",
        r#""{not json""#,
    ] {
        assert_eq!(id_of(record), None, "{record}");
    }
    let long = format!(r#"{{"requestId":"{}"}}"#, "x".repeat(MAX_REQUEST_ID_BYTES + 1));
    assert_eq!(id_of(&long), None);
}

#[test]
fn only_the_streams_asked_for_are_kept_as_sent_with_time_and_id() {
    let batch = format!(
        r#"[{{"time":"2026-11-29T19:05:00.123Z","type":"function","record":"[INFO]\t2026-11-29T19:05:00.123Z\t{ID}\thi"}},
            {{"time":"2026-11-29T19:05:00.124Z","type":"extension","record":"ext line"}},
            {{"time":"2026-11-29T19:05:00.125Z","type":"platform.report","record":{{"requestId":"{ID}","status":"success"}}}},
            {{"type":"function"}}, 7, "x", {{"time":1,"type":"function","record":"bad time"}}]"#
    );
    let only_function = LogBuffer::new(
        LogStreams {
            function: true,
            ..LogStreams::default()
        },
        1 << 20,
    );
    only_function.push_batch(batch.as_bytes());
    let kept = only_function.take_all();
    // The first function event and the one with no record; not the one whose time is not a
    // string (no emulator nor Lambda writes that: the event is not one).
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0].time, Timestamp::parse_rfc3339("2026-11-29T19:05:00.123Z").unwrap());
    assert_eq!(kept[0].request_id, Some(RequestId::new(ID)));
    let json: serde_json::Value = serde_json::from_slice(&kept[0].json).unwrap();
    assert_eq!(json["record"], format!("[INFO]\t2026-11-29T19:05:00.123Z\t{ID}\thi"));
    assert_eq!((kept[1].request_id.clone(), kept[1].time), (None, Timestamp(0)));

    let every = LogBuffer::new(all(), 1 << 20);
    every.push_batch(batch.as_bytes());
    let kinds: Vec<String> = every
        .take_all()
        .iter()
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(&e.json).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["function", "extension", "platform.report", "function"]);
}

#[test]
fn line_breaks_between_tokens_do_not_reach_the_ndjson() {
    let buffer = LogBuffer::new(all(), 1 << 20);
    buffer.push_batch(b"[{\n\"type\": \"function\",\r\n\"record\": \"a\\nb\"\n}]");
    let kept = buffer.take_all();
    assert!(!kept[0].json.contains(&b'\n') && !kept[0].json.contains(&b'\r'));
    let json: serde_json::Value = serde_json::from_slice(&kept[0].json).unwrap();
    assert_eq!(json["record"], "a\nb", "the escaped break inside the string is kept");
}

#[test]
fn events_beyond_the_bound_are_dropped_and_counted_and_put_back_ones_come_first() {
    let event = r#"{"type":"function","record":"0123456789"}"#;
    let cost = event.len() + ENTRY_OVERHEAD;
    let buffer = LogBuffer::new(all(), 3 * cost);
    let batch = format!("[{event},{event},{event},{event},{event}]");
    buffer.push_batch(batch.as_bytes());
    assert_eq!(buffer.dropped(), 2);
    let mut taken = buffer.take_all();
    assert_eq!(taken.len(), 3);
    // Room again: one new event, then two put back ahead of it.
    buffer.push_batch(br#"[{"type":"function","record":"new"}]"#);
    taken.truncate(2);
    buffer.put_back(taken);
    let order: Vec<String> = buffer
        .take_all()
        .iter()
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(&e.json).unwrap()["record"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(order, ["0123456789", "0123456789", "new"]);
    assert_eq!(buffer.dropped(), 2);
}

#[test]
fn a_body_that_is_not_an_array_keeps_nothing() {
    let buffer = LogBuffer::new(all(), 1 << 20);
    for body in [&b"{}"[..], b"[", b"", b"[{\"type\":\"function\"}"] {
        buffer.push_batch(body);
    }
    assert!(buffer.take_all().is_empty());
}
