//! The extension's life: start the parts, register, serve events until SHUTDOWN, stop the parts
//! within the deadline, say what happened in one line.
//!
//! Each part (local API, Runtime API proxy, telemetry listener, duration metrics) is a component
//! with a start and a bounded shutdown (`components.rs`); the event loop (`event_loop.rs`) knows
//! only the Extensions API and the store.
//!
//! Lambda lifecycle: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>

mod components;
mod event_loop;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ENV_RUNTIME_API, ENV_TELEMETRY, Warning};
use crate::extensions_api::{Client, EventType};
use crate::history::Store;
use crate::log::{Logger, Sink, Value};
use crate::time::{Clock, Timestamp};
use event_loop::AfterInvoke;

pub use components::Components;
pub use event_loop::ShutdownReason;

/// Environment variables Lambda sets on Lambda Managed Instances.
const ENV_INIT_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
const ENV_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";

/// The longest the parts may take to stop once SHUTDOWN arrives (Lambda gives extensions at
/// least 300 ms when the function has any; a SHUTDOWN deadline sooner than this wins).
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(300);

/// Reads one environment variable (`std::env::var` in Lambda, a map in tests).
pub type Getenv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything the extension needs from outside, passed in so tests control each part.
pub struct Options {
    /// The registered name; must equal the executable's file name.
    pub name: &'static str,
    pub version: &'static str,
    pub config: Config,
    pub warnings: Vec<Warning>,
    pub log: Logger,
    /// The history; created by the caller so tests can read it.
    pub store: Arc<Store>,
    pub getenv: Getenv,
    /// When the process started, for the start-up time and the lifetime.
    pub started: Timestamp,
    pub clock: Clock,
    /// Where EMF metric lines go (stdout in Lambda).
    pub metrics_sink: Sink,
    /// Where the Runtime API proxy's address is published for the wrapper script (`None`: nowhere).
    pub proxy_address_file: Option<PathBuf>,
}

impl Options {
    fn env(&self, name: &str) -> String {
        (self.getenv)(name).unwrap_or_default()
    }

    /// On Lambda Managed Instances an extension registers for SHUTDOWN only and gets no INVOKE
    /// events; Lambda sets both variables there (the RIE's managed-instances mode too).
    fn managed_instances(&self) -> bool {
        self.env(ENV_INIT_TYPE) == crate::telemetry::INIT_TYPE_MANAGED_INSTANCES || !self.env(ENV_MAX_CONCURRENCY).trim().is_empty()
    }
}

/// Runs the extension until SHUTDOWN, or until `terminated` resolves (SIGTERM), and returns the
/// process's exit code.
pub async fn run(o: Options, terminated: impl Future<Output = ()>) -> i32 {
    let log = o.log.clone();
    // 1. Every invalid setting once; the defaults are already in place.
    for w in &o.warnings {
        log.warn(
            "invalid configuration, using the default",
            &[
                ("variable", w.variable.into()),
                ("value", (&w.value).into()),
                ("reason", (&w.reason).into()),
                ("default", (&w.default).into()),
            ],
        );
    }
    let store = Arc::clone(&o.store);
    let managed = o.managed_instances();

    // 2. The local API listens before registering, so the first invocation can already ask.
    let mut parts = Components::start_local_api(&o, Arc::clone(&store), managed).await;
    if o.config.runtime_api.is_empty() {
        log.error(
            "cannot register: not running in Lambda",
            &[("variable", ENV_RUNTIME_API.into()), ("value", "".into())],
        );
        let now = tokio::time::Instant::now();
        parts.shutdown(now + SHUTDOWN_BUDGET, now + SHUTDOWN_BUDGET, "failure").await;
        return 1;
    }

    // 3. The Runtime API proxy listens before registering: Lambda starts the runtime only once
    //    every extension has registered, so the runtime finds it ready.
    parts.start_runtime_proxy(&o, &store).await;

    // 4. Register on a connection opened first, so that the request leaves at once; while Lambda
    //    answers, check the export and prepare the subscription (its socket bound, its body
    //    written): the subscription then follows the identifier with nothing in between. Without a
    //    registration there is no identifier to report an init error with: log, exit 1, and Lambda
    //    fails the init.
    let events: &[EventType] = if managed {
        &[EventType::Shutdown]
    } else {
        &[EventType::Invoke, EventType::Shutdown]
    };
    let mut client = Client::new(&o.config.runtime_api);
    client.connect().await;
    let (registered, telemetry) = tokio::join!(client.register(o.name, events), async {
        parts.check_export(&o);
        parts.prepare_telemetry(&o, &store, managed).await
    });
    let registration = match registered {
        Ok(registration) => registration,
        Err(e) => {
            log.error(
                "cannot register with the Extensions API",
                &[("error", e.to_string().as_str().into())],
            );
            let now = tokio::time::Instant::now();
            parts.shutdown(now + SHUTDOWN_BUDGET, now + SHUTDOWN_BUDGET, "failure").await;
            return 1;
        }
    };

    // 5. Subscribe to telemetry: one PUT during init, with the first `/event/next` written right
    //    behind it in the same write, so that the extension's init does not wait for the answer
    //    (Lambda starts the runtime at this moment: the RIE answers 3 to 15 ms late in a quarter
    //    to a half of its cold starts, docs/performance.md).
    //    Lambda answers in order: the subscription is taken before the extension is ready.
    //    Anything but a subscription closes the listener and leaves INVOKE-only records.
    if telemetry.is_some() {
        client.queue_next_event();
    }
    let subscribing_at = (o.clock)();
    let telemetry_note = parts.start_telemetry(&o, &mut client, telemetry).await;
    // Unless the subscription failed with its connection: then the event loop asks.
    let asked_next_at = client.next_event_queued().then_some(subscribing_at);
    parts.set_registration(&registration);
    if managed && parts.telemetry_state() != "on" {
        log.warn(
            "on Lambda Managed Instances records come only from telemetry, which is not on: the history stays empty",
            &[("telemetry", parts.telemetry_state().into()), ("variable", ENV_TELEMETRY.into())],
        );
    }
    parts.start_export(&o, &store, managed);
    parts.publish_environment();

    // 6. The environment-started metric, then the ready line.
    parts.start_metrics(&o);
    let mut ready: Vec<(&str, Value<'_>)> = vec![
        ("version", o.version.into()),
        ("port", o.config.http_port.into()),
        ("apiListening", parts.api_listening().into()),
        ("maxRecords", o.config.max_records.into()),
        ("telemetry", parts.telemetry_state().into()),
        ("managedInstances", managed.into()),
        (
            "startupMs",
            asked_next_at.unwrap_or_else(|| (o.clock)()).millis_since(o.started).into(),
        ),
    ];
    if let Some(note) = &telemetry_note {
        ready.push(("telemetryNote", note.as_str().into()));
    }
    if o.config.proxy.enabled {
        ready.push(("runtimeProxy", parts.proxy_state().into()));
    }
    log.info("ready", &ready);

    // 7. The event loop: nothing between INVOKE and the next /event/next that can wait.
    let end = {
        // The export's post-invoke window borrows the parts until the loop ends.
        let window = parts.export_window(&store);
        event_loop::run(
            &mut client,
            &store,
            &log,
            terminated,
            window.as_ref().map(|w| w as &(dyn AfterInvoke + Sync)),
        )
        .await
    };
    let reason = end.reason;

    // 8. Stop the parts within the deadline, then the stopped metric and one summary line.
    // The export may use all of Lambda's deadline (less the margin) to send its last batch; the
    // other parts stop within the budget.
    let budget = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
    let summary = parts
        .shutdown(
            end.deadline.map_or(budget, |d| d.min(budget)),
            end.deadline.unwrap_or(budget),
            reason.as_str(),
        )
        .await;
    let counts = store.counts();
    let lifetime_ms = (o.clock)().millis_since(o.started);
    summary.write_stopped_metric(lifetime_ms, counts.served, reason.as_str());
    let mut attrs: Vec<(&str, Value<'_>)> = vec![
        ("reason", reason.as_str().into()),
        ("invocationsServed", counts.served.into()),
        ("retained", counts.retained.into()),
        ("dropped", counts.dropped.into()),
        ("lifetimeMs", lifetime_ms.into()),
    ];
    summary.append_counts(&mut attrs, &counts);
    if end.invalid_invokes > 0 {
        attrs.push(("invalidInvokes", end.invalid_invokes.into()));
    }
    log.info("shutdown", &attrs);
    i32::from(reason == ShutdownReason::EventLoopFailed)
}

/// A random id for the environment: Lambda exposes no identifier of the execution environment.
fn new_environment_id() -> String {
    use std::fmt::Write as _;
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => {
            // Into one string: a `String` per byte, freed at once, costs a page mapped and unmapped
            // each with musl's allocator, 16 times on the start path.
            let mut id = String::with_capacity(2 * bytes.len());
            for b in bytes {
                let _ = write!(id, "{b:02x}");
            }
            id
        }
        Err(_) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests;
