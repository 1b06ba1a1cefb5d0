//! The function-facing HTTP API on the loopback interface: the retained records, one record, and
//! the environment. The contract (paths, parameters, shapes) is docs/api/openapi.yaml; every
//! error is JSON in the AWS style `{"errorType": "...", "errorMessage": "..."}`.

mod encode;
mod query;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Serialize, Serializer};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub use encode::{PAGE_RECORDS, write_record};
pub use query::{DEFAULT_WAIT, ListParams, MAX_REQUEST_ID_BYTES, parse_list_query, parse_record_query, parse_request_id_path};

use crate::history::{Counts, Store};
use crate::log::Logger;
use crate::serve::{self, Body, Server, full, json_error};
use crate::time::Timestamp;
use encode::{ListBody, ListTail, PagePool};
use query::echo;

/// Callers parked in a request-id wait at once; the next is refused (429) rather than queued.
pub const MAX_WAITERS: usize = 64;

/// The listener's bounds: twice `MAX_WAITERS` connections, so parked waiters leave room for
/// readers and a waiter beyond the bound gets the documented 429 rather than a 503.
const SERVER_LIMITS: serve::Limits = serve::Limits {
    max_connections: 2 * MAX_WAITERS,
    header_timeout: Duration::from_secs(5),
    max_header_bytes: 16 << 10,
};

/// Who this execution environment is, as `GET /environment` shows it (with the store's init
/// information and counters added at each request). Empty strings and zeros are omitted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Environment {
    /// Random, chosen by the extension at start (Lambda exposes none).
    pub environment_id: String,
    pub function_name: String,
    pub function_version: String,
    pub memory_mb: u32,
    pub region: String,
    /// From `AWS_LAMBDA_INITIALIZATION_TYPE`; when empty, the telemetry's init type is shown.
    pub init_type: String,
    pub init_started_at: Timestamp,
    /// Lambda Managed Instances: no INVOKE events, several invocations at once.
    pub managed_instances: bool,
    pub extension_version: String,
    pub features: Features,
    pub limits: Limits,
}

/// Which optional features are on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// "on" (subscribed), "off" (switched off), "unsupported" (the Telemetry API answered
    /// NotSupported) or "failed" (the listener or the subscription failed).
    pub telemetry: &'static str,
    pub runtime_proxy: bool,
    pub s3_export: bool,
    pub request_id_wait: bool,
}

/// The S3 export's counters, when the export is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportCounts {
    /// Objects written, their compressed bytes and the invocation lines in them.
    pub batches: u64,
    pub bytes: u64,
    pub invocations: u64,
    /// Uploads tried again after a failure.
    pub retries: u64,
    /// Sealed batches waiting for an upload, and their compressed bytes.
    pub queued_batches: u64,
    pub queued_bytes: u64,
    /// Batches given up (refused, out of attempts, the queue full, the deadline passed) and the
    /// invocation lines in them.
    pub dropped_batches: u64,
    pub dropped_invocations: u64,
    /// Records the store evicted before they were written.
    pub evicted: u64,
    /// Log events in the objects written; log events given up (the log buffer full, or in a
    /// batch given up).
    pub log_events: u64,
    pub dropped_log_events: u64,
}

/// Reads the export's counters when `/environment` is asked.
pub type ExportCountsReader = Arc<dyn Fn() -> ExportCounts + Send + Sync>;

/// The bounds in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_records: usize,
    pub max_wait_ms: u64,
}

/// Binds the local API's port on the loopback address only: the API is for the function.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await
}

/// The running local API.
pub struct LocalApi {
    api: Arc<Api>,
    server: Server,
}

impl LocalApi {
    /// Serves `store` on `listener`; `max_wait` caps a caller's `waitMs`.
    pub fn start(listener: TcpListener, store: Arc<Store>, env: Environment, max_wait: Duration, log: Logger) -> Self {
        let api = Arc::new(Api {
            store,
            env: Mutex::new(Arc::new(env)),
            max_wait,
            waiters: AtomicUsize::new(0),
            pages: PagePool::default(),
            export: Mutex::new(None),
        });
        let handler_api = Arc::clone(&api);
        let server = Server::start(listener, SERVER_LIMITS, log, move |request| {
            let api = Arc::clone(&handler_api);
            // The local API holds callers to HTTP/1.1's Host rule; the proxy and the telemetry
            // listener take what their peers send.
            let rejected = serve::host_rejection(&request);
            async move {
                match rejected {
                    Some(rejection) => rejection,
                    None => api.handle(&request).await,
                }
            }
        });
        Self { api, server }
    }

    /// Replaces what `/environment` shows (the lifecycle learns the function name only at
    /// registration, after the server has started).
    pub fn set_environment(&self, env: Environment) {
        *self.api.env.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(env);
    }

    /// Shows the export's counters in `/environment` from now on.
    pub fn set_export_counts(&self, reader: ExportCountsReader) {
        *self.api.export.lock().unwrap_or_else(PoisonError::into_inner) = Some(reader);
    }

    /// Stops accepting and lets requests in progress finish, until `deadline` at most.
    pub async fn shutdown(self, deadline: Instant) {
        self.server.shutdown(deadline).await;
    }
}

struct Api {
    store: Arc<Store>,
    env: Mutex<Arc<Environment>>,
    max_wait: Duration,
    waiters: AtomicUsize,
    /// Written list pages, filled again by the next list response.
    pages: PagePool,
    export: Mutex<Option<ExportCountsReader>>,
}

/// Too many callers wait already.
struct TooManyWaiters;

impl Api {
    fn environment(&self) -> Arc<Environment> {
        Arc::clone(&self.env.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn handle(&self, request: &Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        let query = request.uri().query().unwrap_or("");
        let resource = match path {
            "/invocations" | "/invocations/" => Resource::List,
            "/environment" => Resource::Environment,
            _ => match path.strip_prefix("/invocations/") {
                Some(tail) => Resource::Record(tail),
                None => {
                    let message = format!(
                        "no resource at {}; see /invocations, /invocations/{{requestId}}, /environment",
                        echo(path)
                    );
                    return json_error(StatusCode::NOT_FOUND, "NotFound", &message);
                }
            },
        };
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let message = format!(
                "method {} is not allowed on {}; use GET",
                echo(request.method().as_str()),
                echo(path)
            );
            let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &message);
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match resource {
            Resource::List => self.list(query).await,
            Resource::Record(tail) => self.record(tail, query).await,
            Resource::Environment => self.describe(query),
        }
    }

    async fn list(&self, raw_query: &str) -> Response<Body> {
        let params = match parse_list_query(raw_query, self.max_wait) {
            Ok(params) => params,
            Err(message) => return invalid_parameter(&message),
        };
        let waited_for = match &params.request_id {
            Some(id) => match self.wait_for(id, params.wait).await {
                Ok(found) => Some((id.as_str(), found)),
                Err(TooManyWaiters) => {
                    let message = format!("more than {MAX_WAITERS} callers are waiting; retry without requestId");
                    return json_error(StatusCode::TOO_MANY_REQUESTS, "TooManyWaiters", &message);
                }
            },
            None => None,
        };
        let (window, counts) = self.store.window(params.query);
        let env = self.environment();
        let tail = ListTail {
            environment_id: &env.environment_id,
            served: counts.served,
            retained: counts.retained,
            dropped: counts.dropped,
            // The newest record returned, or the caller's cursor when there is none.
            cursor: if window.up_to > window.after {
                window.up_to
            } else {
                params.query.after
            },
            waited_for,
        };
        let body = ListBody::new(Arc::clone(&self.store), window, &tail, self.pages.clone());
        json_body(StatusCode::OK, body.boxed())
    }

    async fn record(&self, raw_tail: &str, raw_query: &str) -> Response<Body> {
        let id = match parse_request_id_path(raw_tail) {
            Ok(id) => id,
            Err(message) => return invalid_parameter(&message),
        };
        let wait = match parse_record_query(raw_query, self.max_wait) {
            Ok(wait) => wait,
            Err(message) => return invalid_parameter(&message),
        };
        if !wait.is_zero() && self.wait_for(&id, wait).await.is_err() {
            let message = format!("more than {MAX_WAITERS} callers are waiting");
            return json_error(StatusCode::TOO_MANY_REQUESTS, "TooManyWaiters", &message);
        }
        let encoded = self.store.with_record(&id, |record| {
            let mut out = Vec::with_capacity(512);
            write_record(&mut out, record);
            out.push(b'\n');
            out
        });
        match encoded {
            Some(out) => json_body(StatusCode::OK, full(out)),
            None => {
                let message = format!("no retained invocation with request id {}", echo(&id));
                json_error(StatusCode::NOT_FOUND, "InvocationNotFound", &message)
            }
        }
    }

    fn describe(&self, raw_query: &str) -> Response<Body> {
        if !raw_query.is_empty() {
            return invalid_parameter("/environment takes no parameters");
        }
        let env = self.environment();
        let init = self.store.init();
        let view = EnvironmentView {
            environment_id: &env.environment_id,
            function_name: &env.function_name,
            function_version: &env.function_version,
            memory_mb: env.memory_mb,
            region: &env.region,
            init_type: if env.init_type.is_empty() {
                &init.init_type
            } else {
                &env.init_type
            },
            init_started_at: Rfc3339(env.init_started_at),
            init_duration_ms: init.init_duration_ms,
            init_status: &init.init_status,
            runtime_version: &init.runtime_version,
            runtime_version_arn: &init.runtime_version_arn,
            managed_instances: env.managed_instances,
            extension_version: &env.extension_version,
            features: &env.features,
            limits: &env.limits,
            counts: CountsView(self.store.counts()),
            export: self
                .export
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|read| read()),
        };
        match serde_json::to_vec(&view) {
            Ok(mut out) => {
                out.push(b'\n');
                json_body(StatusCode::OK, full(out))
            }
            // Only an unsupported type fails: a bug, reported as such.
            Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "encode response"),
        }
    }

    /// Parks the caller until `request_id` is recorded or `wait` ends; whether it is recorded.
    async fn wait_for(&self, request_id: &str, wait: Duration) -> Result<bool, TooManyWaiters> {
        let recorded = || self.store.with_record(request_id, |_| ()).is_some();
        if wait.is_zero() {
            return Ok(recorded());
        }
        let _slot = WaiterSlot::take(&self.waiters).ok_or(TooManyWaiters)?;
        let deadline = Instant::now() + wait;
        loop {
            // Taken before the look-up, so an append in between still wakes us.
            let appended = self.store.appended();
            if recorded() {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(recorded());
            }
        }
    }
}

enum Resource<'a> {
    List,
    Record(&'a str),
    Environment,
}

/// One of the `MAX_WAITERS` places; given back when dropped (the caller may go away mid-wait).
struct WaiterSlot<'a>(&'a AtomicUsize);

impl<'a> WaiterSlot<'a> {
    fn take(waiters: &'a AtomicUsize) -> Option<Self> {
        waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_WAITERS).then_some(n + 1))
            .ok()
            .map(|_| Self(waiters))
    }
}

impl Drop for WaiterSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn invalid_parameter(message: &str) -> Response<Body> {
    json_error(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

fn json_body(status: StatusCode, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The body of `GET /environment`, fields in the Go extension's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvironmentView<'a> {
    environment_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    function_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    function_version: &'a str,
    #[serde(rename = "memoryMB", skip_serializing_if = "is_zero")]
    memory_mb: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    region: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    init_type: &'a str,
    init_started_at: Rfc3339,
    #[serde(skip_serializing_if = "is_unknown")]
    init_duration_ms: f64,
    #[serde(skip_serializing_if = "str::is_empty")]
    init_status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    runtime_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    runtime_version_arn: &'a str,
    managed_instances: bool,
    extension_version: &'a str,
    features: &'a Features,
    limits: &'a Limits,
    counts: CountsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<ExportCounts>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_unknown(ms: &f64) -> bool {
    *ms == 0.0 || !ms.is_finite()
}

struct Rfc3339(Timestamp);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct CountsView(Counts);

impl Serialize for CountsView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let c = &self.0;
        let mut s = serializer.serialize_struct("Counts", 5)?;
        s.serialize_field("served", &c.served)?;
        s.serialize_field("retained", &c.retained)?;
        s.serialize_field("dropped", &c.dropped)?;
        s.serialize_field("pendingUpdates", &c.pending_updates)?;
        s.serialize_field("pendingUpdatesDropped", &c.pending_updates_dropped)?;
        s.end()
    }
}

#[cfg(test)]
mod tests;
