//! A batch as Lambda posts it (a JSON array of events), parsed in place and validated.
//!
//! The body is parsed without a tree: strings are borrowed from it (copied only when they hold
//! escapes), fields the history does not keep are skipped unread, and a field of the wrong JSON
//! type spoils only its own event, never the batch. An event is handed on only when every value
//! it carries is one Lambda documents: a `status` from the enum, numbers finite, non-negative and
//! within Lambda's limits, strings bounded in length. Anything else is `Item::Invalid`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::history::Status;

/// Longest request id, error type, runtime version (and its ARN) or init type kept: the record's
/// bound (function ARNs and traces take the record's own, longer bounds).
pub const MAX_TEXT_BYTES: usize = crate::history::MAX_REQUEST_ID_BYTES;
use crate::history::{MAX_ARN_BYTES, MAX_TRACE_ID_BYTES as MAX_TRACE_BYTES};
/// Longest duration accepted, in milliseconds: an invocation lasts at most 15 minutes, and so does
/// an init with provisioned concurrency or SnapStart; the rest is margin (the billed duration may
/// include an on-demand init).
pub const MAX_DURATION_MS: f64 = 1_000_000.0;
/// Most memory accepted, in MB: Lambda's limit is 10,240 MB; environments on Managed Instances
/// may be larger, so the bound only keeps out what no environment has.
pub const MAX_MEMORY_MB: f64 = 65_536.0;

/// The body is not a JSON array (malformed JSON, another value, or a number JSON parsers cannot
/// represent, such as `1e400`); nothing of it was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("want a JSON array of telemetry events")
    }
}

impl std::error::Error for Malformed {}

/// What one batch held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events of a known type whose values are all valid.
    pub events: u64,
    /// Events of a type the extension does not know (and `null` elements).
    pub ignored: u64,
    /// Elements that are not an event object, events whose record has the wrong shape or no
    /// request id, and events with a value outside what Lambda documents.
    pub invalid: u64,
}

/// One element of a batch.
#[derive(Debug, PartialEq)]
pub enum Item<'a> {
    Event(Event<'a>),
    Ignored,
    Invalid,
}

/// A valid event the history uses. Empty strings and zero numbers mean "not given".
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    Init(InitEvent<'a>),
    Invoke(InvokeEvent<'a>),
    /// A known type the history keeps nothing of (restore phases, extension and subscription
    /// states, dropped logs).
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitPhase {
    Start,
    RuntimeDone,
    Report,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokePhase {
    Start,
    RuntimeDone,
    Report,
}

/// `platform.initStart`, `platform.initRuntimeDone`, `platform.initReport`.
#[derive(Debug, PartialEq)]
pub struct InitEvent<'a> {
    pub phase: InitPhase,
    pub init_type: &'a str,
    pub runtime_version: &'a str,
    pub runtime_version_arn: &'a str,
    pub status: Option<Status>,
    pub duration_ms: f64,
}

/// `platform.start`, `platform.runtimeDone`, `platform.report`.
#[derive(Debug, PartialEq)]
pub struct InvokeEvent<'a> {
    pub phase: InvokePhase,
    /// Never empty.
    pub request_id: &'a str,
    /// The event's `time`, unparsed: only `platform.start` on Managed Instances reads it.
    pub time: &'a str,
    pub function_arn: &'a str,
    pub trace: &'a str,
    pub status: Option<Status>,
    pub error_type: &'a str,
    pub duration_ms: f64,
    pub billed_duration_ms: u32,
    pub max_memory_used_mb: u32,
    pub init_duration_ms: f64,
}

/// Parses and validates `body` without applying anything: what a fuzz target drives, and the
/// first of the applier's two passes.
pub fn parse_batch(body: &[u8]) -> Result<BatchOutcome, Malformed> {
    for_each_event(body, |_| {})
}

/// Calls `f` on each element of the batch in order, and counts them. On `Err`, `f` may have seen
/// a prefix of the batch: callers that must apply all or nothing run `parse_batch` first (the
/// parse is deterministic, so a body that passes it passes here).
pub fn for_each_event(body: &[u8], mut f: impl FnMut(Item<'_>)) -> Result<BatchOutcome, Malformed> {
    let mut outcome = BatchOutcome::default();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    Batch {
        f: &mut f,
        outcome: &mut outcome,
    }
    .deserialize(&mut deserializer)
    .map_err(|_| Malformed)?;
    deserializer.end().map_err(|_| Malformed)?;
    Ok(outcome)
}

struct Batch<'f, F> {
    f: &'f mut F,
    outcome: &'f mut BatchOutcome,
}

impl<'de, F: FnMut(Item<'_>)> DeserializeSeed<'de> for Batch<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Item<'_>)> Visitor<'de> for Batch<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of telemetry events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<Field<RawEvent<'de>>>()? {
            let item = classify(&element);
            match item {
                Item::Event(_) => self.outcome.events += 1,
                Item::Ignored => self.outcome.ignored += 1,
                Item::Invalid => self.outcome.invalid += 1,
            }
            (self.f)(item);
        }
        Ok(())
    }
}

fn classify<'a>(element: &'a Field<RawEvent<'a>>) -> Item<'a> {
    let event = match element {
        Field::Valid(event) => event,
        // As encoding/json read it: a null element is an event of no type.
        Field::Null | Field::Absent => return Item::Ignored,
        Field::Wrong => return Item::Invalid,
    };
    let time = match &event.time {
        Field::Valid(time) => time.as_ref(),
        Field::Absent | Field::Null => "",
        Field::Wrong => return Item::Invalid,
    };
    let kind = match event.kind {
        Field::Valid(kind) => kind,
        Field::Absent | Field::Null => EventType::Unknown,
        Field::Wrong => return Item::Invalid,
    };
    let record = match kind {
        EventType::Unknown => return Item::Ignored,
        EventType::Other => return Item::Event(Event::Other),
        EventType::Init(_) | EventType::Invoke(_) => match &event.record {
            Field::Valid(record) => record,
            Field::Null => &EMPTY_RECORD,
            Field::Absent | Field::Wrong => return Item::Invalid,
        },
    };
    let event = match kind {
        EventType::Init(phase) => validate_init(phase, record).map(Event::Init),
        EventType::Invoke(phase) => validate_invoke(phase, time, record).map(Event::Invoke),
        EventType::Other | EventType::Unknown => None,
    };
    event.map_or(Item::Invalid, Item::Event)
}

// Every field of the record's shape is checked, used by this phase or not: a record Lambda did
// not write is not trusted in part.
fn validate_init<'a>(phase: InitPhase, record: &'a RawRecord<'a>) -> Option<InitEvent<'a>> {
    text(&record.error_type, MAX_TEXT_BYTES)?;
    let metrics = object(&record.metrics, &NO_METRICS)?;
    Some(InitEvent {
        phase,
        init_type: text(&record.initialization_type, MAX_TEXT_BYTES)?,
        runtime_version: text(&record.runtime_version, MAX_TEXT_BYTES)?,
        runtime_version_arn: text(&record.runtime_version_arn, MAX_TEXT_BYTES)?,
        status: status(&record.status)?,
        duration_ms: number(&metrics.duration_ms, MAX_DURATION_MS)?,
    })
}

fn validate_invoke<'a>(phase: InvokePhase, time: &'a str, record: &'a RawRecord<'a>) -> Option<InvokeEvent<'a>> {
    let request_id = text(&record.request_id, MAX_TEXT_BYTES)?;
    if request_id.is_empty() {
        return None;
    }
    let tracing = object(&record.tracing, &NO_TRACING)?;
    let metrics = object(&record.metrics, &NO_METRICS)?;
    Some(InvokeEvent {
        phase,
        request_id,
        time,
        function_arn: text(&record.function_arn, MAX_ARN_BYTES)?,
        trace: text(&tracing.value, MAX_TRACE_BYTES)?,
        status: status(&record.status)?,
        error_type: text(&record.error_type, MAX_TEXT_BYTES)?,
        duration_ms: number(&metrics.duration_ms, MAX_DURATION_MS)?,
        billed_duration_ms: whole(&metrics.billed_duration_ms, MAX_DURATION_MS)?,
        max_memory_used_mb: whole(&metrics.max_memory_used_mb, MAX_MEMORY_MB)?,
        init_duration_ms: number(&metrics.init_duration_ms, MAX_DURATION_MS)?,
    })
}

fn text<'a>(field: &'a Field<Cow<'a, str>>, max: usize) -> Option<&'a str> {
    match field {
        Field::Absent | Field::Null => Some(""),
        Field::Valid(s) if s.len() <= max => Some(s),
        Field::Valid(_) | Field::Wrong => None,
    }
}

fn status(field: &Field<Cow<'_, str>>) -> Option<Option<Status>> {
    match text(field, MAX_TEXT_BYTES)? {
        "" => Some(None),
        s => Status::parse(s).map(Some),
    }
}

fn number(field: &Field<f64>, max: f64) -> Option<f64> {
    match *field {
        Field::Absent | Field::Null => Some(0.0),
        Field::Valid(x) if x.is_finite() && (0.0..=max).contains(&x) => Some(x),
        Field::Valid(_) | Field::Wrong => None,
    }
}

/// A count Lambda writes as an integer: a fraction means someone else wrote it.
fn whole(field: &Field<f64>, max: f64) -> Option<u32> {
    let x = number(field, max)?;
    // In range (at most `max`, far below u32::MAX) and integral: the cast is exact.
    (x.fract() == 0.0).then_some(x as u32)
}

fn object<'a, T>(field: &'a Field<T>, absent: &'a T) -> Option<&'a T> {
    match field {
        Field::Valid(value) => Some(value),
        Field::Absent | Field::Null => Some(absent),
        Field::Wrong => None,
    }
}

/// A value as found in the body. `Wrong` is a value of another JSON type (or a string too long
/// to be anything the extension keeps): it was read past, not kept.
#[derive(Debug, Default)]
enum Field<T> {
    #[default]
    Absent,
    Null,
    Valid(T),
    Wrong,
}

/// What a field accepts; every other JSON value makes the field `Wrong`.
trait Shape<'de>: Sized {
    fn from_borrowed_str(s: &'de str) -> Option<Self> {
        Self::from_str(s)
    }

    fn from_str(_: &str) -> Option<Self> {
        None
    }

    fn from_number(_: f64) -> Option<Self> {
        None
    }

    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de, T: Shape<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<T>(PhantomData<T>);

fn found<T>(value: Option<T>) -> Field<T> {
    value.map_or(Field::Wrong, Field::Valid)
}

impl<'de, T: Shape<'de>> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field<T>, E> {
        Ok(Field::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Field<T>, E> {
        Ok(Field::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field<T>, E> {
        Ok(Field::Wrong)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field<T>, E> {
        Ok(found(T::from_number(v as f64)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field<T>, E> {
        Ok(found(T::from_number(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field<T>, E> {
        Ok(found(T::from_number(v)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<T>, E> {
        Ok(found(T::from_borrowed_str(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<T>, E> {
        Ok(found(T::from_str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Wrong)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<T>, A::Error> {
        T::from_map(map).map(found)
    }
}

impl<'de> Shape<'de> for Cow<'de, str> {
    fn from_borrowed_str(s: &'de str) -> Option<Self> {
        (s.len() <= MAX_TRACE_BYTES).then_some(Cow::Borrowed(s))
    }

    // A string with escapes: the one case that copies.
    fn from_str(s: &str) -> Option<Self> {
        (s.len() <= MAX_TRACE_BYTES).then(|| Cow::Owned(s.to_owned()))
    }
}

impl Shape<'_> for f64 {
    fn from_number(x: f64) -> Option<Self> {
        Some(x)
    }
}

#[derive(Clone, Copy, Debug)]
enum EventType {
    Init(InitPhase),
    Invoke(InvokePhase),
    Other,
    Unknown,
}

impl Shape<'_> for EventType {
    fn from_str(s: &str) -> Option<Self> {
        Some(match s {
            "platform.initStart" => Self::Init(InitPhase::Start),
            "platform.initRuntimeDone" => Self::Init(InitPhase::RuntimeDone),
            "platform.initReport" => Self::Init(InitPhase::Report),
            "platform.start" => Self::Invoke(InvokePhase::Start),
            "platform.runtimeDone" => Self::Invoke(InvokePhase::RuntimeDone),
            "platform.report" => Self::Invoke(InvokePhase::Report),
            "platform.restoreStart"
            | "platform.restoreRuntimeDone"
            | "platform.restoreReport"
            | "platform.extension"
            | "platform.telemetrySubscription"
            | "platform.logsDropped" => Self::Other,
            _ => Self::Unknown,
        })
    }
}

#[derive(Debug, Default)]
struct RawEvent<'a> {
    time: Field<Cow<'a, str>>,
    kind: Field<EventType>,
    record: Field<RawRecord<'a>>,
}

/// The fields of every record type the history reads; a type's record leaves the others absent.
#[derive(Debug, Default)]
struct RawRecord<'a> {
    initialization_type: Field<Cow<'a, str>>,
    runtime_version: Field<Cow<'a, str>>,
    runtime_version_arn: Field<Cow<'a, str>>,
    status: Field<Cow<'a, str>>,
    error_type: Field<Cow<'a, str>>,
    request_id: Field<Cow<'a, str>>,
    function_arn: Field<Cow<'a, str>>,
    tracing: Field<RawTracing<'a>>,
    metrics: Field<RawMetrics>,
}

const EMPTY_RECORD: RawRecord<'static> = RawRecord {
    initialization_type: Field::Absent,
    runtime_version: Field::Absent,
    runtime_version_arn: Field::Absent,
    status: Field::Absent,
    error_type: Field::Absent,
    request_id: Field::Absent,
    function_arn: Field::Absent,
    tracing: Field::Absent,
    metrics: Field::Absent,
};

#[derive(Debug)]
struct RawTracing<'a> {
    value: Field<Cow<'a, str>>,
}

const NO_TRACING: RawTracing<'static> = RawTracing { value: Field::Absent };

#[derive(Debug)]
struct RawMetrics {
    duration_ms: Field<f64>,
    billed_duration_ms: Field<f64>,
    max_memory_used_mb: Field<f64>,
    init_duration_ms: Field<f64>,
}

const NO_METRICS: RawMetrics = RawMetrics {
    duration_ms: Field::Absent,
    billed_duration_ms: Field::Absent,
    max_memory_used_mb: Field::Absent,
    init_duration_ms: Field::Absent,
};

// A repeated key replaces the earlier value, as encoding/json did.
impl<'de> Shape<'de> for RawEvent<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut event = Self::default();
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::Time => event.time = map.next_value()?,
                Name::Type => event.kind = map.next_value()?,
                Name::Record => event.record = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok(Some(event))
    }
}

impl<'de> Shape<'de> for RawRecord<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut record = Self::default();
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::InitializationType => record.initialization_type = map.next_value()?,
                Name::RuntimeVersion => record.runtime_version = map.next_value()?,
                Name::RuntimeVersionArn => record.runtime_version_arn = map.next_value()?,
                Name::Status => record.status = map.next_value()?,
                Name::ErrorType => record.error_type = map.next_value()?,
                Name::RequestId => record.request_id = map.next_value()?,
                Name::FunctionArn => record.function_arn = map.next_value()?,
                Name::Tracing => record.tracing = map.next_value()?,
                Name::Metrics => record.metrics = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok(Some(record))
    }
}

impl<'de> Shape<'de> for RawTracing<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut tracing = NO_TRACING;
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::Value => tracing.value = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok(Some(tracing))
    }
}

impl<'de> Shape<'de> for RawMetrics {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut metrics = NO_METRICS;
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::DurationMs => metrics.duration_ms = map.next_value()?,
                Name::BilledDurationMs => metrics.billed_duration_ms = map.next_value()?,
                Name::MaxMemoryUsedMb => metrics.max_memory_used_mb = map.next_value()?,
                Name::InitDurationMs => metrics.init_duration_ms = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok(Some(metrics))
    }
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// The object keys the history reads, at any level; matching them copies nothing.
#[derive(Clone, Copy)]
enum Name {
    Time,
    Type,
    Record,
    InitializationType,
    RuntimeVersion,
    RuntimeVersionArn,
    Status,
    ErrorType,
    RequestId,
    FunctionArn,
    Tracing,
    Value,
    Metrics,
    DurationMs,
    BilledDurationMs,
    MaxMemoryUsedMb,
    InitDurationMs,
    Other,
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(NameVisitor)
    }
}

struct NameVisitor;

impl Visitor<'_> for NameVisitor {
    type Value = Name;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Name, E> {
        Ok(match key {
            "time" => Name::Time,
            "type" => Name::Type,
            "record" => Name::Record,
            "initializationType" => Name::InitializationType,
            "runtimeVersion" => Name::RuntimeVersion,
            "runtimeVersionArn" => Name::RuntimeVersionArn,
            "status" => Name::Status,
            "errorType" => Name::ErrorType,
            "requestId" => Name::RequestId,
            "functionArn" => Name::FunctionArn,
            "tracing" => Name::Tracing,
            "value" => Name::Value,
            "metrics" => Name::Metrics,
            "durationMs" => Name::DurationMs,
            "billedDurationMs" => Name::BilledDurationMs,
            "maxMemoryUsedMB" => Name::MaxMemoryUsedMb,
            "initDurationMs" => Name::InitDurationMs,
            _ => Name::Other,
        })
    }
}
