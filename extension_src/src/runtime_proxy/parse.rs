//! The pure parts of the proxy: which Runtime API request a path is, which headers pass a hop,
//! and what an upstream answer or a runtime's error says, each value checked before it is kept.
//! Everything here reads untrusted input and is driven by the fuzz targets.

use std::borrow::Cow;

use hyper::Method;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const PATH_NEXT: &str = "/2018-06-01/runtime/invocation/next";
const PATH_INVOCATION: &str = "/2018-06-01/runtime/invocation/";

pub const HEADER_REQUEST_ID: &str = "lambda-runtime-aws-request-id";
pub const HEADER_DEADLINE: &str = "lambda-runtime-deadline-ms";
pub const HEADER_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
pub const HEADER_TRACE_ID: &str = "lambda-runtime-trace-id";
pub const HEADER_ERROR_TYPE: &str = "lambda-runtime-function-error-type";

/// Bounds on what the proxy stores from headers and bodies: the record's own.
pub use crate::history::{MAX_ARN_BYTES as MAX_FUNCTION_ARN_BYTES, MAX_ERROR_TYPE_BYTES, MAX_REQUEST_ID_BYTES, MAX_TRACE_ID_BYTES};
/// 9999-12-31T23:59:59.999Z: the local API writes years 1970-9999 only.
pub const MAX_DEADLINE_MS: i64 = 253_402_300_799_999;

/// What a runtime's request is, for the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeRequest<'a> {
    /// `GET .../invocation/next`: the runtime asks for its next event.
    Next,
    /// `POST .../invocation/{id}/response`.
    Response(Cow<'a, str>),
    /// `POST .../invocation/{id}/error`.
    Error(Cow<'a, str>),
    /// Anything else: forwarded, not recorded.
    Other,
}

impl RuntimeRequest<'_> {
    fn into_owned(self) -> RuntimeRequest<'static> {
        match self {
            Self::Next => RuntimeRequest::Next,
            Self::Response(id) => RuntimeRequest::Response(Cow::Owned(id.into_owned())),
            Self::Error(id) => RuntimeRequest::Error(Cow::Owned(id.into_owned())),
            Self::Other => RuntimeRequest::Other,
        }
    }
}

/// Classifies a request by its method and path (without the query), read as Lambda reads it:
/// percent-escapes decoded. A request id that is empty, longer than `MAX_REQUEST_ID_BYTES` or
/// holds control characters makes the request `Other`: forwarded unchanged, nothing recorded.
#[must_use]
pub fn classify<'a>(method: &Method, path: &'a str) -> RuntimeRequest<'a> {
    if !path.contains('%') {
        return classify_decoded(method, path);
    }
    match crate::percent::decode(path, false) {
        Ok(decoded) => classify_decoded(method, &decoded).into_owned(),
        Err(_) => RuntimeRequest::Other,
    }
}

fn classify_decoded<'a>(method: &Method, path: &'a str) -> RuntimeRequest<'a> {
    if path == PATH_NEXT && method == Method::GET {
        return RuntimeRequest::Next;
    }
    if method != Method::POST {
        return RuntimeRequest::Other;
    }
    let Some((id, action)) = path.strip_prefix(PATH_INVOCATION).and_then(|rest| rest.split_once('/')) else {
        return RuntimeRequest::Other;
    };
    if valid_text(id, MAX_REQUEST_ID_BYTES).is_none() {
        return RuntimeRequest::Other;
    }
    match action {
        "response" => RuntimeRequest::Response(Cow::Borrowed(id)),
        "error" => RuntimeRequest::Error(Cow::Borrowed(id)),
        _ => RuntimeRequest::Other,
    }
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), never forwarded.
/// `Trailer` is not among them: it announces the trailers, which pass end to end.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers of a message about to be forwarded: the fixed ones and those
/// its `Connection` header names. `TE: trailers` is kept (as Go's reverse proxy does): it tells
/// the next hop the sender accepts trailers. A message that came chunked loses its
/// `Content-Length` too, so the next hop frames it by what it is, never by a stale length.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let accepts_trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case("trailers")));
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(tokens)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if accepts_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// What Lambda's answer to `/next` says about the event, each field validated; a field that
/// fails is `None` and simply not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextEvent<'a> {
    pub request_id: &'a str,
    pub deadline_ms: Option<i64>,
    pub function_arn: Option<&'a str>,
    pub trace_id: Option<&'a str>,
}

/// Reads the event's fields from the headers of Lambda's answer to `/next`; `None` when there is
/// no valid request id (nothing to record then).
#[must_use]
pub fn next_event(headers: &HeaderMap) -> Option<NextEvent<'_>> {
    let field = |name: &str, max: usize| headers.get(name).and_then(|v| header_text(v, max));
    Some(NextEvent {
        request_id: field(HEADER_REQUEST_ID, MAX_REQUEST_ID_BYTES)?,
        deadline_ms: headers.get(HEADER_DEADLINE).and_then(|v| deadline_ms(v.as_bytes())),
        function_arn: field(HEADER_FUNCTION_ARN, MAX_FUNCTION_ARN_BYTES),
        trace_id: field(HEADER_TRACE_ID, MAX_TRACE_ID_BYTES),
    })
}

/// Milliseconds since the epoch, decimal digits only, from 1 to `MAX_DEADLINE_MS`.
#[must_use]
pub fn deadline_ms(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 15 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(v).ok()?.parse::<i64>().ok()?;
    (1..=MAX_DEADLINE_MS).contains(&n).then_some(n)
}

/// A header's value as text fit to store: UTF-8, 1 to `max` bytes, no control characters.
#[must_use]
pub fn header_text(value: &HeaderValue, max: usize) -> Option<&str> {
    valid_text(std::str::from_utf8(value.as_bytes()).ok()?, max)
}

fn valid_text(s: &str, max: usize) -> Option<&str> {
    (!s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)).then_some(s)
}

/// The `errorType` of a runtime's error body (`{"errorType": "...", "errorMessage": ...}`), when
/// the body is that JSON and the type is fit to store.
#[must_use]
pub fn error_type_from_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    parsed.error_type.filter(|t| valid_text(t, MAX_ERROR_TYPE_BYTES).is_some())
}
