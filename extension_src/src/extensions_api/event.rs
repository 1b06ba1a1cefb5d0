//! Decoding of `/event/next` answers.
//!
//! The body comes from outside the process, so every value is checked before the lifecycle sees
//! it. A field that fails (wrong JSON type, too long, control characters) is emptied rather than
//! failing the event: an INVOKE with a bad trace id is still an invocation the function is
//! running, and an error here would make the event loop retry and, repeated, give up. Only a body
//! that is not a JSON object is an error.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub use crate::history::{MAX_ARN_BYTES, MAX_REQUEST_ID_BYTES, MAX_TRACE_ID_BYTES};
/// Lambda's shutdown reasons are single words (`spindown`, `timeout`, `failure`).
const MAX_SHUTDOWN_REASON_BYTES: usize = 64;
/// An unknown event type is only logged; a longer one is cut.
const MAX_EVENT_TYPE_BYTES: usize = 64;

/// One event from `/event/next`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A field that failed validation is empty (`deadline_ms` 0): the invocation still happened.
    Invoke {
        request_id: String,
        deadline_ms: i64,
        invoked_function_arn: String,
        trace_id: String,
    },
    /// `reason` is empty when Lambda gave none (or an invalid one).
    Shutdown { reason: String, deadline_ms: i64 },
    /// An event type this extension does not know (bounded in length; empty when absent).
    Unknown(String),
}

/// Decodes one `/event/next` answer. Errors only when `body` is not a JSON object.
pub fn parse_event(body: &[u8]) -> Result<Event, String> {
    let raw: RawEvent<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let text = |v: Option<Cow<'_, str>>, max: usize| v.filter(|s| is_clean(s, max)).map(Cow::into_owned).unwrap_or_default();
    // A negative deadline cannot be real; 0 is what the records take for "not known".
    let deadline_ms = raw.deadline_ms.filter(|&ms| ms >= 0).unwrap_or(0);
    Ok(match raw.event_type.as_deref() {
        Some("INVOKE") => Event::Invoke {
            request_id: text(raw.request_id, MAX_REQUEST_ID_BYTES),
            deadline_ms,
            invoked_function_arn: text(raw.invoked_function_arn, MAX_ARN_BYTES),
            trace_id: text(raw.trace_value, MAX_TRACE_ID_BYTES),
        },
        Some("SHUTDOWN") => Event::Shutdown {
            reason: text(raw.shutdown_reason, MAX_SHUTDOWN_REASON_BYTES),
            deadline_ms,
        },
        Some(other) => Event::Unknown(
            super::truncate(other, MAX_EVENT_TYPE_BYTES)
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
        ),
        None => Event::Unknown(String::new()),
    })
}

/// Non-empty, at most `max` bytes, no control characters (they would forge lines wherever the
/// value is logged).
pub(super) fn is_clean(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// The fields of an event, each as found; unknown members are skipped and, as Go's decoder did,
/// a repeated member's last value wins.
#[derive(Default)]
struct RawEvent<'a> {
    event_type: Option<Cow<'a, str>>,
    deadline_ms: Option<i64>,
    request_id: Option<Cow<'a, str>>,
    invoked_function_arn: Option<Cow<'a, str>>,
    trace_value: Option<Cow<'a, str>>,
    shutdown_reason: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EventVisitor<'a> {
            type Value = RawEvent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut event = RawEvent::default();
                while let Some(key) = map.next_key::<Key>()? {
                    if key == Key::Other {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let member: Member<'a> = map.next_value()?;
                    match key {
                        Key::EventType => event.event_type = member.text(),
                        Key::DeadlineMs => event.deadline_ms = member.integer(),
                        Key::RequestId => event.request_id = member.text(),
                        Key::InvokedFunctionArn => event.invoked_function_arn = member.text(),
                        Key::Tracing => event.trace_value = member.object_value(),
                        Key::ShutdownReason => event.shutdown_reason = member.text(),
                        Key::Value | Key::Other => {}
                    }
                }
                Ok(event)
            }
        }
        deserializer.deserialize_map(EventVisitor(PhantomData))
    }
}

/// The member names read; matched without allocating.
#[derive(PartialEq, Eq)]
enum Key {
    EventType,
    DeadlineMs,
    RequestId,
    InvokedFunctionArn,
    Tracing,
    ShutdownReason,
    /// `tracing.value`.
    Value,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "eventType" => Key::EventType,
                    "deadlineMs" => Key::DeadlineMs,
                    "requestId" => Key::RequestId,
                    "invokedFunctionArn" => Key::InvokedFunctionArn,
                    "tracing" => Key::Tracing,
                    "shutdownReason" => Key::ShutdownReason,
                    "value" => Key::Value,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// One member's value, whatever its JSON type: the caller takes the shape it expects and treats
/// any other as absent. Strings are borrowed from the body unless they have escapes.
#[derive(Default)]
pub(super) enum Member<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    /// An object, with its `value` member when that is a string (the shape of `tracing`).
    Object(Option<Cow<'a, str>>),
    #[default]
    Other,
}

impl<'a> Member<'a> {
    pub(super) fn text(self) -> Option<Cow<'a, str>> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    fn integer(self) -> Option<i64> {
        match self {
            Self::Integer(n) => Some(n),
            _ => None,
        }
    }

    fn object_value(self) -> Option<Cow<'a, str>> {
        match self {
            Self::Object(value) => value,
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MemberVisitor<'a> {
            type Value = Member<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Member::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Member::Other, Member::Integer))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<Key>()? {
                    if key == Key::Value {
                        value = map.next_value::<Member<'a>>()?.text();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Member::Object(value))
            }
        }
        deserializer.deserialize_any(MemberVisitor(PhantomData))
    }
}
