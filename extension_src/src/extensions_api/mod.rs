//! A client of the Lambda Extensions API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>): register, the
//! `/event/next` long poll, and the init and exit error reports.
//!
//! Register and `/event/next` share one kept connection, so an invocation costs no TCP handshake.
//! Everything read from the API is bounded (answers at 1 MiB) and validated before the lifecycle
//! sees it.

mod event;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http_client::{self, Answer, Connection};

pub use event::{Event, MAX_ARN_BYTES, MAX_REQUEST_ID_BYTES, MAX_TRACE_ID_BYTES, parse_event};

/// A lifecycle event an extension can register for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Invoke,
    Shutdown,
}

/// What Lambda says about the function at registration. A value that fails validation (too long,
/// control characters) is empty, as if Lambda had not sent it: the caller keeps what the
/// environment variables said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
}

const HEADER_NAME: &str = "Lambda-Extension-Name";
const HEADER_IDENTIFIER: &str = "Lambda-Extension-Identifier";
const HEADER_ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
const HEADER_FEATURE: &str = "Lambda-Extension-Accept-Feature";
const CONTENT_TYPE_JSON: (&str, &str) = ("Content-Type", "application/json");

const REGISTER_PATH: &str = "/2020-01-01/extension/register";
const NEXT_EVENT_PATH: &str = "/2020-01-01/extension/event/next";
const INIT_ERROR_PATH: &str = "/2020-01-01/extension/init/error";
const EXIT_ERROR_PATH: &str = "/2020-01-01/extension/exit/error";

/// Bounds what the client reads from the API: events are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Registration is answered at once; Lambda fails an init that takes 10 s anyway.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// An error report is the last thing the extension says: it must not hold up the exit.
const REPORT_TIMEOUT: Duration = Duration::from_secs(1);
/// Lambda's own bound on an extension identifier is far lower; this one only keeps a hostile
/// header out of every later request.
/// Pauses between registration attempts that found the API not listening (360 ms at most in all).
const REGISTER_CONNECT_RETRIES: [Duration; 3] = [Duration::from_millis(10), Duration::from_millis(50), Duration::from_millis(300)];
const MAX_IDENTIFIER_BYTES: usize = 256;
/// Error messages sent to Lambda are cut here: the function's log shows them, whole stack traces
/// do not belong there.
const MAX_REPORT_MESSAGE_BYTES: usize = 4096;

// Lambda's documented limits (function name 64 characters, version 1,024, handler 128), kept
// generous: the point is to refuse what cannot be a real value, not to second-guess Lambda.
const MAX_FUNCTION_NAME_BYTES: usize = 256;
const MAX_FUNCTION_VERSION_BYTES: usize = 1024;
const MAX_HANDLER_BYTES: usize = 1024;

/// Why a call to the Extensions API failed.
#[derive(Debug)]
pub struct Error {
    operation: &'static str,
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Transport(http_client::Error),
    /// A non-2xx answer, with what its body said (`errorType`, `errorMessage`, or the raw text).
    Status {
        status: StatusCode,
        detail: String,
    },
    Decode(String),
    NoIdentifier,
}

impl Error {
    fn is_refused_connection(&self) -> bool {
        matches!(&self.kind, ErrorKind::Transport(http_client::Error::Connect(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    /// The HTTP status of a non-2xx answer.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.operation)?;
        match &self.kind {
            ErrorKind::Transport(e) => write!(f, "{e}"),
            ErrorKind::Status { status, detail } if detail.is_empty() => write!(f, "status {}", status.as_u16()),
            ErrorKind::Status { status, detail } => write!(f, "status {}: {detail}", status.as_u16()),
            ErrorKind::Decode(e) => write!(f, "decode response: {e}"),
            ErrorKind::NoIdentifier => write!(f, "response has no valid {HEADER_IDENTIFIER} header"),
        }
    }
}

impl std::error::Error for Error {}

/// A client of the Extensions API at one `host:port` (`AWS_LAMBDA_RUNTIME_API`).
pub struct Client {
    address: String,
    connection: Connection,
    id: String,
}

impl Client {
    #[must_use]
    pub fn new(runtime_api: &str) -> Self {
        Self {
            address: runtime_api.to_owned(),
            connection: Connection::new(runtime_api),
            id: String::new(),
        }
    }

    /// Opens the connection the registration will use, so that `register` writes its request
    /// before anything else runs (the request leaves while the caller prepares what it needs next).
    /// A failure here is left for `register` to meet, and retry.
    pub async fn connect(&mut self) {
        let _ = self.connection.open().await;
    }

    /// Registers the extension as `name` (which Lambda requires to be its file name) for `events`.
    pub async fn register(&mut self, name: &str, events: &[EventType]) -> Result<Registration, Error> {
        const OPERATION: &str = "register extension";
        #[derive(Serialize)]
        struct Body<'a> {
            events: &'a [EventType],
        }
        // Strings and unit variants cannot fail to serialize.
        let body = serde_json::to_vec(&Body { events }).unwrap_or_default();
        // The Go extension asked for the account id; kept so Lambda answers the same way.
        let headers = [(HEADER_NAME, name), (HEADER_FEATURE, "accountId"), CONTENT_TYPE_JSON];
        let body = Bytes::from(body);
        let mut pauses = REGISTER_CONNECT_RETRIES.iter();
        let answer = loop {
            let sent = call(
                &mut self.connection,
                OPERATION,
                Method::POST,
                REGISTER_PATH,
                &headers,
                body.clone(),
                Some(REGISTER_TIMEOUT),
            )
            .await;
            match (sent, pauses.next()) {
                // An API not yet listening (seen once in hundreds of emulator starts): a failed
                // registration fails the whole init, so a refused connection is worth a few retries.
                (Err(e), Some(pause)) if e.is_refused_connection() => tokio::time::sleep(*pause).await,
                (sent, _) => break sent?,
            }
        };
        let registration = parse_registration(&answer.body).map_err(|e| Error {
            operation: OPERATION,
            kind: ErrorKind::Decode(e),
        })?;
        let id = answer
            .header(HEADER_IDENTIFIER)
            .filter(|id| !id.is_empty() && id.len() <= MAX_IDENTIFIER_BYTES)
            .ok_or(Error {
                operation: OPERATION,
                kind: ErrorKind::NoIdentifier,
            })?;
        id.clone_into(&mut self.id);
        Ok(registration)
    }

    /// The kept connection to Lambda's local APIs (the Telemetry API answers at the same
    /// address): the one subscription during init reuses it instead of opening another.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// The identifier Lambda assigned at registration (empty before).
    #[must_use]
    pub fn extension_id(&self) -> &str {
        &self.id
    }

    /// Waits for the next event, as long as Lambda holds the request (the environment may be
    /// frozen in between).
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        const OPERATION: &str = "next event";
        let with_id = [(HEADER_IDENTIFIER, self.id.as_str())];
        let headers: &[(&str, &str)] = if self.id.is_empty() { &[] } else { &with_id };
        let answer = match queued_answer(&mut self.connection).await {
            Some(answer) => checked(OPERATION, answer)?,
            None => {
                call(
                    &mut self.connection,
                    OPERATION,
                    Method::GET,
                    NEXT_EVENT_PATH,
                    headers,
                    Bytes::new(),
                    None,
                )
                .await?
            }
        };
        parse_event(&answer.body).map_err(|e| Error {
            operation: OPERATION,
            kind: ErrorKind::Decode(e),
        })
    }

    /// Writes `/event/next` right behind the next request sent on this client's connection (the
    /// telemetry subscription, at init): the extension asks for its first event without waiting
    /// for that answer, and Lambda, which answers a connection's requests in order, still takes
    /// the subscription first. `next_event` then reads the answer instead of asking again.
    pub fn queue_next_event(&mut self) {
        let with_id = [(HEADER_IDENTIFIER, self.id.as_str())];
        let headers: &[(&str, &str)] = if self.id.is_empty() { &[] } else { &with_id };
        // A path and an identifier already checked: nothing here can fail to encode.
        let _ = self.connection.queue(&Method::GET, NEXT_EVENT_PATH, headers, &[]);
    }

    /// Whether a queued `/event/next` was written and `next_event` will read its answer.
    #[must_use]
    pub fn next_event_queued(&self) -> bool {
        self.connection.has_pending()
    }

    /// Reports a failure during init; Lambda then fails the init phase. `error_type` must look
    /// like `Extension.<Reason>`.
    pub async fn init_error(&mut self, error_type: &str, message: &str) -> Result<(), Error> {
        self.report_error("report /init/error", INIT_ERROR_PATH, error_type, message).await
    }

    /// Reports a failure before the extension exits.
    pub async fn exit_error(&mut self, error_type: &str, message: &str) -> Result<(), Error> {
        self.report_error("report /exit/error", EXIT_ERROR_PATH, error_type, message).await
    }

    async fn report_error(&mut self, operation: &'static str, path: &str, error_type: &str, message: &str) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "errorType")]
            error_type: &'a str,
            #[serde(rename = "errorMessage")]
            error_message: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            error_type,
            error_message: truncate(message, MAX_REPORT_MESSAGE_BYTES),
        })
        .unwrap_or_default();
        let all = [
            (HEADER_ERROR_TYPE, error_type),
            CONTENT_TYPE_JSON,
            (HEADER_IDENTIFIER, self.id.as_str()),
        ];
        let headers = if self.id.is_empty() { &all[..2] } else { &all[..] };
        // A connection of its own: the report usually follows a failure of the kept one, and must
        // not depend on its state.
        let mut connection = Connection::new(&self.address);
        call(
            &mut connection,
            operation,
            Method::POST,
            path,
            headers,
            body.into(),
            Some(REPORT_TIMEOUT),
        )
        .await?;
        Ok(())
    }
}

/// Sends one request and turns a non-2xx answer into an error.
async fn call(
    connection: &mut Connection,
    operation: &'static str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Option<Duration>,
) -> Result<Answer, Error> {
    let answer = connection.send(method, path, headers, body, MAX_ANSWER_BYTES, timeout).await;
    checked(operation, answer)
}

/// The answer to a queued request (`/event/next`), when one was written; `None` when there is
/// none, or when the connection closed before it came (the server answers in order, so it never
/// took that request): the caller asks again.
async fn queued_answer(connection: &mut Connection) -> Option<Result<Answer, http_client::Error>> {
    if !connection.has_pending() {
        return None;
    }
    match connection.receive(MAX_ANSWER_BYTES, None).await {
        Err(http_client::Error::Io(e)) if http_client::is_closed(&e) => None,
        answer => Some(answer),
    }
}

/// `answer` as the result of `operation`: a transport error, or a non-2xx status with what its
/// body said, is an error.
fn checked(operation: &'static str, answer: Result<Answer, http_client::Error>) -> Result<Answer, Error> {
    let answer = answer.map_err(|e| Error {
        operation,
        kind: ErrorKind::Transport(e),
    })?;
    if !answer.status.is_success() {
        return Err(Error {
            operation,
            kind: ErrorKind::Status {
                status: answer.status,
                detail: error_detail(&answer.body),
            },
        });
    }
    Ok(answer)
}

/// Longest piece of an error body quoted in an error message.
const MAX_DETAIL_BYTES: usize = 512;

/// What an error answer says: `errorType: errorMessage` when it is Lambda's JSON error, else its
/// text, bounded and with control characters replaced (it ends up in a log line).
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct LambdaError<'a> {
        #[serde(rename = "errorType", borrow, default)]
        error_type: Option<std::borrow::Cow<'a, str>>,
        #[serde(rename = "errorMessage", borrow, default)]
        error_message: Option<std::borrow::Cow<'a, str>>,
    }
    let text = match serde_json::from_slice::<LambdaError<'_>>(body) {
        Ok(LambdaError {
            error_type: Some(t),
            error_message: Some(m),
        }) if !m.is_empty() => format!("{t}: {m}"),
        Ok(LambdaError { error_type: Some(t), .. }) => t.into_owned(),
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    };
    truncate(&text, MAX_DETAIL_BYTES)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Decodes a registration answer; a member of the wrong type counts as absent, as a too long one
/// does: only a body that is not a JSON object fails registration.
fn parse_registration(body: &[u8]) -> Result<Registration, String> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(rename = "functionName", borrow, default)]
        function_name: event::Member<'a>,
        #[serde(rename = "functionVersion", borrow, default)]
        function_version: event::Member<'a>,
        #[serde(borrow, default)]
        handler: event::Member<'a>,
    }
    // serde's derive also takes a struct from a JSON array; Lambda's answer is an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err("not a JSON object".to_owned());
    }
    let raw: Raw<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let valid = |member: event::Member<'_>, max: usize| {
        member
            .text()
            .filter(|v| event::is_clean(v, max))
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default()
    };
    Ok(Registration {
        function_name: valid(raw.function_name, MAX_FUNCTION_NAME_BYTES),
        function_version: valid(raw.function_version, MAX_FUNCTION_VERSION_BYTES),
        handler: valid(raw.handler, MAX_HANDLER_BYTES),
    })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}
