//! The subscription: one `PUT /2022-07-01/telemetry` for the platform stream, and the function's
//! and extensions' logs when the S3 export ships them.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};

use super::SCHEMA_VERSION;
use crate::http_client::Connection;

const SUBSCRIBE_PATH: &str = "/2022-07-01/telemetry";
const HEADER_IDENTIFIER: &str = "Lambda-Extension-Identifier";
/// What the RIE (and other local emulators) answer, with HTTP 202.
const ERROR_NOT_SUPPORTED: &str = "Telemetry.NotSupported";
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// An answer quoted in an error is cut here: it goes into a log line.
const MAX_QUOTED_BYTES: usize = 512;

/// How Lambda batches events before it posts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Buffering {
    pub max_items: u32,
    pub max_bytes: u32,
    pub timeout_ms: u32,
}

/// How the subscription went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Lambda will post batches to the listener.
    Subscribed,
    /// The API answered 2xx with errorType `Telemetry.NotSupported` (the RIE in its standard
    /// mode): records stay INVOKE-only.
    NotSupported,
}

impl Subscription {
    /// The value `/environment` shows in `features.telemetry`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribed => "on",
            Self::NotSupported => "unsupported",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeRequest<'a> {
    schema_version: &'a str,
    /// The platform stream always; `function` and `extension` only for the export (they would
    /// otherwise be posted to no purpose, and include the extension's own log lines).
    types: &'a [&'a str],
    buffering: &'a Buffering,
    destination: Destination,
}

#[derive(Serialize)]
struct Destination {
    protocol: &'static str,
    #[serde(rename = "URI")]
    uri: String,
}

#[derive(Default, Deserialize)]
struct ApiError<'a> {
    #[serde(rename = "errorType", default, borrow)]
    error_type: Cow<'a, str>,
    #[serde(rename = "errorMessage", default, borrow)]
    error_message: Cow<'a, str>,
}

/// A subscription to the streams `types`, posted to `http://{host}:{port}`, written before the
/// extension has its identifier: it is prepared while Lambda answers the registration, so the PUT
/// leaves as soon as the identifier is known.
pub struct SubscribeBody(Bytes);

impl SubscribeBody {
    #[must_use]
    pub fn new(host: &str, port: u16, buffering: &Buffering, types: &[&str]) -> Self {
        let request = SubscribeRequest {
            schema_version: SCHEMA_VERSION,
            types,
            buffering,
            destination: Destination {
                protocol: "HTTP",
                uri: format!("http://{host}:{port}"),
            },
        };
        // Strings and integers cannot fail to serialize.
        Self(serde_json::to_vec(&request).unwrap_or_default().into())
    }
}

/// Subscribes the extension registered as `extension_id` with `body`, over `connection` to the
/// Telemetry API. A 2xx answer whose body carries errorType `Telemetry.NotSupported` is
/// `NotSupported`, not an error: that is how emulators without a Telemetry API answer (with 202),
/// so the status alone says nothing.
pub async fn subscribe(
    connection: &mut Connection,
    extension_id: &str,
    body: &SubscribeBody,
    timeout: Duration,
) -> Result<Subscription, String> {
    let answer = connection
        .send(
            Method::PUT,
            SUBSCRIBE_PATH,
            &[(HEADER_IDENTIFIER, extension_id), ("Content-Type", "application/json")],
            body.0.clone(),
            MAX_ANSWER_BYTES,
            Some(timeout),
        )
        .await
        .map_err(|e| format!("subscribe to telemetry: {e}"))?;
    // "OK" (a JSON string) or an error object: either may come.
    let api_error: ApiError<'_> = serde_json::from_slice(&answer.body).unwrap_or_default();
    let status = answer.status.as_u16();
    if !answer.status.is_success() {
        return Err(format!("subscribe to telemetry: status {status}: {}", quote(&answer.body)));
    }
    if api_error.error_type == ERROR_NOT_SUPPORTED {
        return Ok(Subscription::NotSupported);
    }
    if !api_error.error_type.is_empty() {
        return Err(format!(
            "subscribe to telemetry: status {status}: {}: {}",
            cut(&api_error.error_type),
            cut(&api_error.error_message)
        ));
    }
    Ok(Subscription::Subscribed)
}

fn quote(body: &[u8]) -> String {
    cut(String::from_utf8_lossy(body).trim()).to_owned()
}

fn cut(s: &str) -> &str {
    &s[..s.floor_char_boundary(MAX_QUOTED_BYTES)]
}
