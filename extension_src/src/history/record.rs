//! One invocation's record, kept compact: the store holds up to a million of them, and every byte
//! is the function's memory.
//!
//! The two long strings every record carries have a fixed shape on Lambda: the request id is a
//! UUID (36 characters, kept as 16 bytes) and the trace header is X-Ray's
//! `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>` (~75 characters, kept as 25 bytes).
//! Anything else is kept as text, so every value reads back exactly as it came in. Fields that
//! are set rarely (init duration, error type, the Runtime API proxy's fields) live in one
//! optional boxed `Extra`.

use std::fmt;
use std::sync::Arc;

use crate::time::Timestamp;

/// The longest values a record keeps, for every source that fills one (INVOKE, telemetry, the
/// proxy), so a value one source accepts is never refused by another. Lambda's are far shorter: a
/// request id is a 36-byte UUID, an ARN under 200 bytes, an X-Ray header 74 (more with lineage).
pub const MAX_REQUEST_ID_BYTES: usize = 256;
pub const MAX_ERROR_TYPE_BYTES: usize = 256;
pub const MAX_ARN_BYTES: usize = 2048;
pub const MAX_TRACE_ID_BYTES: usize = 2048;

/// Which sources reported the start of an attempt (see `Store::begin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The Extensions API's INVOKE event.
    Invoke = 1,
    /// The Runtime API proxy: the runtime took the event.
    Runtime = 2,
    /// The Telemetry API's `platform.start` (Lambda Managed Instances).
    Telemetry = 4,
}

/// How an invocation ended, from the Telemetry API (`platform.runtimeDone`, `platform.report`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    Error,
    Failure,
    Timeout,
}

impl Status {
    /// The documented values only; anything else is not a status.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "error" => Some(Self::Error),
            "failure" => Some(Self::Failure),
            "timeout" => Some(Self::Timeout),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Failure => "failure",
            Self::Timeout => "timeout",
        }
    }
}

/// How the runtime answered, as seen by the Runtime API proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
}

impl Outcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// A request id: 16 bytes when it is a lowercase UUID (always, on Lambda), text otherwise.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl RequestId {
    #[must_use]
    pub fn new(s: &str) -> Self {
        parse_uuid(s).map_or_else(|| Self::Text(s.into()), Self::Uuid)
    }

    /// Whether this id is the string `s`, without formatting it.
    #[must_use]
    pub fn is(&self, s: &str) -> bool {
        match self {
            Self::Uuid(bytes) => parse_uuid(s).as_ref() == Some(bytes),
            Self::Text(text) => &**text == s,
        }
    }

    /// Heap bytes this id holds beyond the record.
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Uuid(_) => 0,
            Self::Text(text) => text.len(),
        }
    }
}

impl RequestId {
    /// The text of a UUID id, without formatting machinery (the local API writes one per record).
    #[must_use]
    pub fn uuid_ascii(&self) -> Option<[u8; 36]> {
        match self {
            Self::Uuid(bytes) => Some(uuid_text(bytes)),
            Self::Text(_) => None,
        }
    }
}

fn uuid_text(bytes: &[u8; 16]) -> [u8; 36] {
    let mut out = [0u8; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        at = put_hex(&mut out, at, *byte);
    }
    out
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uuid(bytes) => f.write_str(ascii(&uuid_text(bytes))),
            Self::Text(text) => f.write_str(text),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `byte` as two lowercase hex digits at `at`; returns the next position.
fn put_hex(out: &mut [u8], at: usize, byte: u8) -> usize {
    out[at] = HEX[usize::from(byte >> 4)];
    out[at + 1] = HEX[usize::from(byte & 0xf)];
    at + 2
}

fn put_all(out: &mut [u8], mut at: usize, bytes: &[u8]) -> usize {
    for &b in bytes {
        at = put_hex(out, at, b);
    }
    at
}

/// The buffers above hold ASCII only.
fn ascii(out: &[u8]) -> &str {
    std::str::from_utf8(out).unwrap_or_default()
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A lowercase `8-4-4-4-12` UUID as 16 bytes (uppercase stays text, so it reads back as given).
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut hex = b.iter().filter(|&&c| c != b'-');
    for byte in &mut out {
        *byte = (lower_hex(*hex.next()?)? << 4) | lower_hex(*hex.next()?)?;
    }
    Some(out)
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_bytes<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (lower_hex(s[2 * i])? << 4) | lower_hex(s[2 * i + 1])?;
    }
    Some(out)
}

/// An X-Ray trace header in its usual shape, as bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct XrayTrace {
    epoch: [u8; 4],
    id: [u8; 12],
    parent: [u8; 8],
    sampled: bool,
}

/// The trace header of an invocation, exactly as Lambda gave it.
#[derive(Clone, PartialEq, Eq)]
pub enum TraceId {
    Xray(XrayTrace),
    Text(Box<str>),
}

impl TraceId {
    #[must_use]
    pub fn new(s: &str) -> Self {
        Self::parse_xray(s).map_or_else(|| Self::Text(s.into()), Self::Xray)
    }

    // Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1 (74 bytes)
    fn parse_xray(s: &str) -> Option<XrayTrace> {
        let b = s.as_bytes();
        if b.len() != 74 || !b.starts_with(b"Root=1-") || b[15] != b'-' || &b[40..48] != b";Parent=" || &b[64..73] != b";Sampled=" {
            return None;
        }
        let sampled = match b[73] {
            b'0' => false,
            b'1' => true,
            _ => return None,
        };
        Some(XrayTrace {
            epoch: hex_bytes(&b[7..15])?,
            id: hex_bytes(&b[16..40])?,
            parent: hex_bytes(&b[48..64])?,
            sampled,
        })
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Xray(_) => 0,
            Self::Text(text) => text.len(),
        }
    }
}

impl TraceId {
    /// The text of an X-Ray header kept as bytes, without formatting machinery.
    #[must_use]
    pub fn xray_ascii(&self) -> Option<[u8; 74]> {
        match self {
            Self::Xray(x) => Some(xray_text(x)),
            Self::Text(_) => None,
        }
    }
}

fn xray_text(x: &XrayTrace) -> [u8; 74] {
    let mut out = *b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
    put_all(&mut out, 7, &x.epoch);
    put_all(&mut out, 16, &x.id);
    put_all(&mut out, 48, &x.parent);
    out[73] = if x.sampled { b'1' } else { b'0' };
    out
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xray(x) => f.write_str(ascii(&xray_text(x))),
            Self::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Fields most records never get.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extra {
    /// From the cold start's `platform.report`.
    pub init_duration_ms: f64,
    pub error_type: Option<Box<str>>,
    /// From the Runtime API proxy: the runtime took the event, and posted its answer.
    pub runtime_received_at: Timestamp,
    pub runtime_responded_at: Timestamp,
    pub response_bytes: u64,
}

/// What the extension knows about one attempt of one invocation. A field that is not known is
/// zero or `None` and is omitted from JSON: never invented.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// 1 for the environment's first invocation.
    pub sequence: u64,
    /// When the attempt began (`invocatedAt`, the seed's name).
    pub invocated_at: Timestamp,
    pub deadline_ms: i64,
    /// From the Telemetry API.
    pub duration_ms: f64,
    pub billed_duration_ms: u32,
    pub max_memory_used_mb: u32,
    pub request_id: RequestId,
    pub trace_id: Option<TraceId>,
    /// Shared by the records of an environment (the store keeps one copy).
    pub invoked_function_arn: Option<Arc<str>>,
    pub extra: Option<Box<Extra>>,
    pub status: Option<Status>,
    pub outcome: Option<Outcome>,
    pub cold_start: bool,
    /// Its `platform.report` is in: nothing more will come for it (the export writes it then).
    pub reported: bool,
    /// The `Source`s that reported this attempt's start, as bits.
    pub(crate) begun_by: u8,
}

impl Record {
    #[must_use]
    pub fn new(request_id: &str) -> Self {
        Self {
            sequence: 0,
            invocated_at: Timestamp(0),
            deadline_ms: 0,
            duration_ms: 0.0,
            billed_duration_ms: 0,
            max_memory_used_mb: 0,
            request_id: RequestId::new(request_id),
            trace_id: None,
            invoked_function_arn: None,
            extra: None,
            status: None,
            outcome: None,
            cold_start: false,
            reported: false,
            begun_by: 0,
        }
    }

    /// The rarely-set fields, created on first write.
    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    #[must_use]
    pub fn init_duration_ms(&self) -> f64 {
        self.extra.as_ref().map_or(0.0, |e| e.init_duration_ms)
    }

    #[must_use]
    pub fn error_type(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.error_type.as_deref())
    }

    pub fn set_trace_id(&mut self, trace: &str) {
        self.trace_id = (!trace.is_empty()).then(|| TraceId::new(trace));
    }

    pub fn set_error_type(&mut self, error_type: &str) {
        if !error_type.is_empty() {
            self.extra_mut().error_type = Some(error_type.into());
        }
    }

    /// Heap bytes this record holds beyond its own struct (the shared ARN is not counted).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        let extra = self
            .extra
            .as_ref()
            .map_or(0, |e| size_of::<Extra>() + e.error_type.as_ref().map_or(0, |t| t.len()));
        self.request_id.heap_bytes() + self.trace_id.as_ref().map_or(0, TraceId::heap_bytes) + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_shaped_ids_are_compact_and_read_back_exactly() {
        let id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
        let rid = RequestId::new(id);
        assert!(matches!(rid, RequestId::Uuid(_)));
        assert_eq!(rid.to_string(), id);
        assert!(rid.is(id));
        assert!(!rid.is("8476a536-e9f4-11e8-9739-2dfe598c3fce"));

        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let t = TraceId::new(trace);
        assert!(matches!(t, TraceId::Xray(_)));
        assert_eq!(t.to_string(), trace);
        let unsampled = trace.replace("Sampled=1", "Sampled=0");
        assert_eq!(TraceId::new(&unsampled).to_string(), unsampled);
    }

    #[test]
    fn other_shapes_stay_text_and_read_back_exactly() {
        for id in [
            "8476A536-E9F4-11E8-9739-2DFE598C3FCD",
            "not-a-uuid",
            "",
            "8476a536-e9f4-11e8-9739-2dfe598c3fc",
            "8476a536+e9f4-11e8-9739-2dfe598c3fcd",
            "é476a536-e9f4-11e8-9739-2dfe598c3f",
        ] {
            let rid = RequestId::new(id);
            assert!(matches!(rid, RequestId::Text(_)), "{id}");
            assert_eq!(rid.to_string(), id);
            assert!(rid.is(id));
        }
        for trace in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1",
            "Root=1-5759E988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=2",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled?1",
            "x",
        ] {
            let t = TraceId::new(trace);
            assert!(matches!(t, TraceId::Text(_)), "{trace}");
            assert_eq!(t.to_string(), trace);
        }
    }

    #[test]
    fn a_record_is_small() {
        // The budget behind the ≤ 200 bytes per record target (docs/performance.md).
        assert!(size_of::<Record>() <= 128, "Record is {} bytes", size_of::<Record>());
    }

    #[test]
    fn status_is_the_documented_enum_only() {
        for s in ["success", "error", "failure", "timeout"] {
            assert_eq!(Status::parse(s).map(Status::as_str), Some(s));
        }
        for s in ["", "Success", "ok", "timeout ", "error\0"] {
            assert_eq!(Status::parse(s), None, "{s:?}");
        }
    }
}
