//! The extension's optional parts, each started on its own and stopped within one deadline. A
//! part that cannot start is logged once (naming the variable and value) and left out; the
//! function never waits for it.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::event_loop::AfterInvoke;
use super::{Options, new_environment_id};
use crate::config::{
    ENV_EXPORT_S3_BUCKET, ENV_EXPORT_S3_ENDPOINT, ENV_HTTP_PORT, ENV_RUNTIME_PROXY_PORT, ENV_RUNTIME_PROXY_UPSTREAM, ENV_TELEMETRY_PORT,
};
use crate::export::batch::Limits;
use crate::export::exporter::{self, Exporter};
use crate::export::logs::LogBuffer;
use crate::extensions_api::{Client, Registration};
use crate::history::{Counts, Store};
use crate::local_api::{self, Environment, Features, LocalApi};
use crate::log::{Logger, Value};
use crate::metrics::{self, Dimensions, Durations, Emitter};
use crate::runtime_proxy::{self, RuntimeProxy};
use crate::s3::client::{Bucket, Endpoint};
use crate::s3::credentials::{Provider, Source};
use crate::telemetry::{self, Applier, Buffering, SubscribeBody, Subscription, TelemetryListener};
use crate::tls::Tls;

/// Bounds the one subscription PUT: a local call that answers in microseconds; the bound only
/// matters when something is wrong, and then init goes on.
pub(super) const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The running parts.
pub struct Components {
    log: Logger,
    env: Environment,
    local_api: Option<LocalApi>,
    proxy: Option<RuntimeProxy>,
    proxy_state: &'static str,
    telemetry: Option<TelemetryListener>,
    /// Filled by telemetry's reports; written by the metrics part once it starts.
    durations_ready: Option<Arc<Durations>>,
    /// Telemetry is on in the configuration: the summary line then always carries its counters.
    telemetry_configured: bool,
    metrics: Option<MetricsPart>,
    /// The export's checks passed, before telemetry is subscribed (its log streams are part of
    /// the subscription); started once telemetry's state is known.
    export_ready: Option<ExportReady>,
    exporter: Option<Exporter>,
    /// Woken after every telemetry batch (telemetry subscribed only).
    telemetry_applied: Option<Arc<Notify>>,
}

/// An export that can run: its bucket, and the buffer of the log streams it ships.
struct ExportReady {
    bucket: Bucket,
    logs: Option<Arc<LogBuffer>>,
}

/// A subscription ready to send once the extension has its identifier: the listener's socket
/// (bound, not yet served), what will apply its batches, and the request's body.
pub struct TelemetryPrepared {
    body: SubscribeBody,
    listener: TcpListener,
    applier: Applier,
    /// Woken after every batch the applier applies.
    applied: Arc<Notify>,
    durations: Option<Arc<Durations>>,
    max_body: usize,
}

struct MetricsPart {
    emitter: Emitter,
    dimensions: Dimensions,
    durations: Option<(Arc<Durations>, watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// Uploads due batches after an invocation has ended and before the event loop asks for the next
/// event: the window in which an on-demand environment is not frozen and no invocation runs.
///
/// The function's answer is learnt from telemetry (`platform.runtimeDone`, or the report) or from
/// the Runtime API proxy (the answer accepted), whichever says it first.
pub struct ExportWindow<'a> {
    exporter: &'a Exporter,
    store: &'a Store,
    /// Woken after every telemetry batch (telemetry subscribed).
    telemetry: Option<&'a Arc<Notify>>,
    /// Woken when the proxy sees the runtime take an event or answer (the proxy on).
    proxy: Option<Arc<Notify>>,
}

/// How long the window waits for the function's answer when the invocation has no deadline.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// After the invocation's deadline, how long telemetry may take to say it timed out.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// Without telemetry, how long after INVOKE the proxy must have seen the runtime take the event:
/// Lambda hands it to the runtime and the INVOKE to extensions at once, so a runtime that fetches
/// through the proxy is seen within milliseconds, and one that does not (no exec wrapper) never is.
const PROXY_SEEN_WAIT: Duration = Duration::from_millis(100);

/// What the store says of the invocation the window is for.
#[derive(Clone, Copy)]
struct AnswerState {
    answered: bool,
    /// The runtime took the event through the proxy, which will therefore see its answer.
    through_proxy: bool,
}

impl AfterInvoke for ExportWindow<'_> {
    fn after_invoke<'a>(&'a self, request_id: &'a str, deadline: Option<Instant>) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let invoked = Instant::now();
            if !self.exporter.prepare().await {
                return; // nothing waits for an upload: straight back to /event/next
            }
            // Never while the function runs: wait for its answer.
            let limit = deadline.map_or(invoked + ANSWER_WAIT, |d| d + ANSWER_GRACE);
            loop {
                let telemetry = self.telemetry.map(|n| n.notified());
                let proxy = self.proxy.as_ref().map(|n| n.notified());
                let (mut telemetry, mut proxy) = (std::pin::pin!(telemetry), std::pin::pin!(proxy));
                if let Some(n) = telemetry.as_mut().as_pin_mut() {
                    n.enable();
                }
                if let Some(n) = proxy.as_mut().as_pin_mut() {
                    n.enable();
                }
                let state = self.store.with_record(request_id, |r| AnswerState {
                    answered: r.status.is_some() || r.outcome.is_some(),
                    through_proxy: r.extra.as_ref().is_some_and(|e| !e.runtime_received_at.is_zero()),
                });
                let Some(state) = state else { break }; // evicted: nothing runs under that id
                if state.answered {
                    break;
                }
                // Without telemetry only the proxy can tell, and only of an invocation it saw.
                let mut until = limit;
                if self.telemetry.is_none() && !state.through_proxy {
                    until = until.min(invoked + PROXY_SEEN_WAIT);
                }
                let woken = async {
                    tokio::select! {
                        () = notified_or_never(telemetry.as_mut().as_pin_mut()) => {}
                        () = notified_or_never(proxy.as_mut().as_pin_mut()) => {}
                    }
                };
                if tokio::time::timeout_at(until, woken).await.is_err() {
                    return; // no answer seen: the batches wait for the next window
                }
            }
            self.exporter.upload_window().await;
        })
    }
}

/// Waits for `notified`, or forever when there is none.
async fn notified_or_never(notified: Option<Pin<&mut tokio::sync::futures::Notified<'_>>>) {
    match notified {
        Some(notified) => notified.await,
        None => std::future::pending().await,
    }
}

/// What the parts counted, for the summary line and the stopped metric.
pub struct Summary {
    /// Telemetry was switched on (whether or not a subscription came of it).
    telemetry_configured: bool,
    telemetry: Option<telemetry::Stats>,
    durations_dropped: Option<u64>,
    proxy: Option<runtime_proxy::Stats>,
    metrics: Option<(Emitter, Dimensions)>,
    export: Option<exporter::Stats>,
}

impl Components {
    /// Starts the local API. A taken port is logged and the extension runs on: invocations are
    /// still recorded and the function gets a connection error it can explain.
    pub async fn start_local_api(o: &Options, store: Arc<Store>, managed: bool) -> Self {
        let env = Environment {
            environment_id: new_environment_id(),
            function_name: o.env("AWS_LAMBDA_FUNCTION_NAME"),
            function_version: o.env("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_mb: o.env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").trim().parse().unwrap_or(0),
            region: o.env("AWS_REGION"),
            init_type: o.env("AWS_LAMBDA_INITIALIZATION_TYPE"),
            init_started_at: o.started,
            managed_instances: managed,
            extension_version: o.version.to_owned(),
            features: Features {
                telemetry: "off",
                runtime_proxy: false,
                s3_export: false,
                // MAX_WAIT_MS=0 turns the wait off.
                request_id_wait: !o.config.max_wait.is_zero(),
            },
            limits: local_api::Limits {
                max_records: o.config.max_records,
                max_wait_ms: u64::try_from(o.config.max_wait.as_millis()).unwrap_or(u64::MAX),
            },
        };
        let local_api = match local_api::bind(o.config.http_port).await {
            Ok(listener) => Some(LocalApi::start(listener, store, env.clone(), o.config.max_wait, o.log.clone())),
            Err(e) => {
                o.log.error(
                    "local API not started: cannot listen; invocations are still recorded",
                    &[
                        ("variable", ENV_HTTP_PORT.into()),
                        ("port", o.config.http_port.into()),
                        ("error", e.to_string().as_str().into()),
                    ],
                );
                None
            }
        };
        Self {
            log: o.log.clone(),
            env,
            local_api,
            proxy: None,
            proxy_state: "off",
            telemetry: None,
            durations_ready: None,
            telemetry_configured: o.config.telemetry.enabled,
            metrics: None,
            export_ready: None,
            exporter: None,
            telemetry_applied: None,
        }
    }

    /// Starts the Runtime API proxy when it is on, and publishes its address for the wrapper only
    /// once it listens. Any failure leaves the runtime on Lambda's API: the wrapper finds no address.
    pub async fn start_runtime_proxy(&mut self, o: &Options, store: &Arc<Store>) {
        if let Some(file) = &o.proxy_address_file {
            // Never point a runtime at a proxy that is not there.
            let _ = std::fs::remove_file(file);
        }
        let cfg = &o.config.proxy;
        if !cfg.enabled {
            return;
        }
        self.proxy_state = "failed";
        // An upstream that is unreachable (or this proxy itself, by a name that resolves here) is
        // reported and the proxy is not published: the wrapper leaves the runtime on Lambda's API.
        // It still listens, so whoever calls it directly gets a clear 502, not a refused connection.
        let checked = RuntimeProxy::check_upstream(&cfg.upstream, cfg.port).await;
        if let Err(reason) = &checked {
            self.log.error(
                "runtime proxy not published; the runtime uses the Runtime API directly",
                &[
                    ("variable", ENV_RUNTIME_PROXY_UPSTREAM.into()),
                    ("value", (&cfg.upstream).into()),
                    ("error", reason.as_str().into()),
                ],
            );
        }
        let listener = match TcpListener::bind(("127.0.0.1", cfg.port)).await {
            Ok(listener) => listener,
            Err(e) => {
                self.log.error(
                    "runtime proxy not started: cannot listen; the runtime uses the Runtime API directly",
                    &[
                        ("variable", ENV_RUNTIME_PROXY_PORT.into()),
                        ("port", cfg.port.into()),
                        ("error", e.to_string().as_str().into()),
                    ],
                );
                return;
            }
        };
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        self.proxy = Some(RuntimeProxy::start(
            listener,
            cfg.upstream.clone(),
            Arc::clone(store),
            o.log.clone(),
            Arc::clone(&o.clock),
        ));
        if checked.is_err() {
            return;
        }
        self.env.features.runtime_proxy = true;
        self.proxy_state = "on";
        if let Some(file) = &o.proxy_address_file
            && let Err(e) = write_file_atomic(file, &address)
        {
            let file = file.to_string_lossy();
            self.log.error(
                "runtime proxy listens but its address cannot be published; the wrapper will not use it",
                &[("file", file.as_ref().into()), ("error", e.to_string().as_str().into())],
            );
            self.proxy_state = "failed";
        }
    }

    /// Prepares the subscription when telemetry is on: binds the listener's socket and writes the
    /// subscription's body, while Lambda answers the registration (`None` when off, or when the
    /// socket cannot be bound, which is logged).
    pub async fn prepare_telemetry(&mut self, o: &Options, store: &Arc<Store>, managed: bool) -> Option<TelemetryPrepared> {
        if !o.config.telemetry.enabled {
            return None;
        }
        let (listener, host) = match telemetry::bind(o.config.telemetry.port).await {
            Ok(bound) => bound,
            Err(e) => {
                self.log.error(
                    "telemetry listener not started; records are INVOKE-only",
                    &[
                        ("variable", ENV_TELEMETRY_PORT.into()),
                        ("port", o.config.telemetry.port.into()),
                        ("error", e.to_string().as_str().into()),
                    ],
                );
                self.env.features.telemetry = "failed";
                return None;
            }
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        // Durations of enriched records feed the InvocationDuration metric (metrics on only).
        let durations = o.config.metrics.enabled.then(|| Arc::new(Durations::new()));
        let on_report: Option<Box<dyn Fn(f64) + Send + Sync>> = durations.as_ref().map(|d| {
            let d = Arc::clone(d);
            let clock = Arc::clone(&o.clock);
            Box::new(move |ms: f64| d.add(ms, clock())) as Box<dyn Fn(f64) + Send + Sync>
        });
        let applied = Arc::new(Notify::new());
        let mut applier = Applier::new(Arc::clone(store), managed, on_report).signalling(Arc::clone(&applied));
        let mut types = vec!["platform"];
        if let Some(logs) = self.export_ready.as_ref().and_then(|e| e.logs.clone()) {
            let streams = logs.streams();
            types.extend(streams.function.then_some("function"));
            types.extend(streams.extension.then_some("extension"));
            applier = applier.forwarding(Box::new(move |body: &[u8]| logs.push_batch(body)));
        }
        let t = &o.config.telemetry;
        let buffering = Buffering {
            max_items: t.max_items,
            max_bytes: t.max_bytes,
            timeout_ms: t.timeout_ms,
        };
        Some(TelemetryPrepared {
            body: SubscribeBody::new(&host, port, &buffering, &types),
            listener,
            applier,
            applied,
            durations,
            max_body: telemetry::body_limit(t.max_bytes),
        })
    }

    pub fn set_registration(&mut self, registration: &Registration) {
        if !registration.function_name.is_empty() {
            self.env.function_name.clone_from(&registration.function_name);
        }
        if !registration.function_version.is_empty() {
            self.env.function_version.clone_from(&registration.function_version);
        }
    }

    /// Subscribes to the Telemetry API and serves the listener only while the subscription is in
    /// effect. Returns a note for the ready line when telemetry is unsupported here (the RIE).
    pub async fn start_telemetry(&mut self, o: &Options, client: &mut Client, prepared: Option<TelemetryPrepared>) -> Option<String> {
        let prepared = prepared?;
        let extension_id = client.extension_id().to_owned();
        // The socket is bound, so a batch posted before the listener serves waits in its backlog;
        // the listener serves only once a subscription is in effect, and the socket is closed
        // (dropped) otherwise.
        let subscribed = telemetry::subscribe(client.connection(), &extension_id, &prepared.body, SUBSCRIBE_TIMEOUT).await;
        match subscribed {
            Ok(Subscription::Subscribed) => {
                self.telemetry = Some(TelemetryListener::start(
                    prepared.listener,
                    prepared.applier,
                    prepared.max_body,
                    o.log.clone(),
                ));
                self.telemetry_applied = Some(prepared.applied);
                self.env.features.telemetry = "on";
                self.durations_ready = prepared.durations;
                None
            }
            Ok(Subscription::NotSupported) => {
                self.env.features.telemetry = "unsupported";
                // Expected on the RIE: part of the ready line, not a line of its own.
                Some("Telemetry.NotSupported: the Telemetry API is not available here; records are INVOKE-only".to_owned())
            }
            Err(reason) => {
                self.env.features.telemetry = "failed";
                self.log.warn(
                    "telemetry subscription failed; records are INVOKE-only",
                    &[("error", reason.as_str().into())],
                );
                None
            }
        }
    }

    /// Writes the environment-started metric and starts the duration metrics when telemetry
    /// brings durations.
    pub fn start_metrics(&mut self, o: &Options) {
        if !o.config.metrics.enabled {
            return;
        }
        let emitter = Emitter::new(
            o.config.metrics.namespace.clone(),
            Arc::clone(&o.metrics_sink),
            Arc::clone(&o.clock),
        );
        let dimensions = Dimensions {
            function_name: self.env.function_name.clone(),
            function_version: self.env.function_version.clone(),
            environment_id: self.env.environment_id.clone(),
            init_type: self.env.init_type.clone(),
        };
        emitter.started(&dimensions);
        let durations = self.durations_ready.take().map(|durations| {
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(metrics::run_durations(
                emitter.clone(),
                dimensions.clone(),
                Arc::clone(&durations),
                Arc::clone(&o.clock),
                stopped,
            ));
            (durations, stop, task)
        });
        self.metrics = Some(MetricsPart {
            emitter,
            dimensions,
            durations,
        });
    }

    /// Checks that the S3 export can run when a bucket is named: a region, an endpoint it can
    /// reach (TLS on this CPU, for https), credentials. Otherwise one line says why, and there is
    /// no export. Runs before telemetry is subscribed: the log streams it ships are subscribed to.
    pub fn check_export(&mut self, o: &Options) {
        let cfg = &o.config.export;
        let Some(bucket_name) = &cfg.bucket else { return };
        let region = o.env("AWS_REGION").trim().to_owned();
        let off = |why: &str, variable: &str| {
            self.log.warn(
                "S3 export off",
                &[
                    ("bucket", bucket_name.as_str().into()),
                    ("variable", variable.into()),
                    ("reason", why.into()),
                ],
            );
        };
        if region.is_empty() {
            return off("AWS_REGION is not set", "AWS_REGION");
        }
        let endpoint = match &cfg.endpoint {
            Some(url) => Endpoint::parse(url).map_err(|why| (format!("{url}: {why}"), ENV_EXPORT_S3_ENDPOINT)),
            None => Endpoint::aws(&region).map_err(|why| (why, "AWS_REGION")),
        };
        let endpoint = match endpoint {
            Ok(endpoint) => endpoint,
            Err((why, variable)) => return off(&why, variable),
        };
        let tls = if endpoint.https {
            let cert_file = Some(o.env("SSL_CERT_FILE")).filter(|path| !path.is_empty());
            match Tls::new(cert_file.as_deref()) {
                Ok(tls) => Some(tls),
                Err(why) if cert_file.is_some() => return off(&why, "SSL_CERT_FILE"),
                Err(why) => return off(&why, ENV_EXPORT_S3_BUCKET),
            }
        } else {
            None
        };
        let source = match Source::from_env(|name: &str| Some(o.env(name)), |path: &str| std::fs::read_to_string(path)) {
            Ok(source) => source,
            Err(why) => return off(&why, ENV_EXPORT_S3_BUCKET),
        };
        let bucket = match Bucket::new(&endpoint, &region, bucket_name, Provider::new(source), tls.as_ref()) {
            Ok(bucket) => bucket,
            Err(why) => return off(&why, ENV_EXPORT_S3_ENDPOINT),
        };
        // A batch's worth of log events may wait for their invocations' lines.
        let logs = cfg.logs.any().then(|| Arc::new(LogBuffer::new(cfg.logs, cfg.max_bytes)));
        self.export_ready = Some(ExportReady { bucket, logs });
    }

    /// Starts the export `check_export` found ready.
    pub fn start_export(&mut self, o: &Options, store: &Arc<Store>, managed: bool) {
        let Some(ExportReady { bucket, logs }) = self.export_ready.take() else {
            return;
        };
        let cfg = &o.config.export;
        let telemetry = self.env.features.telemetry == "on";
        let settings = exporter::Settings {
            limits: Limits {
                max_invocations: cfg.max_invocations,
                max_bytes: cfg.max_bytes,
                max_age: cfg.max_age,
            },
            prefix: cfg.prefix.clone(),
            function_name: self.env.function_name.clone(),
            environment_id: self.env.environment_id.clone(),
            background: managed,
            telemetry,
            // Logs come only through telemetry.
            logs: logs.filter(|_| telemetry),
            start_line: self.start_line(),
        };
        let exporter = Exporter::start(Arc::clone(store), bucket, settings, Arc::clone(&o.clock), o.log.clone());
        if let Some(api) = &self.local_api {
            api.set_export_counts(Arc::new(exporter.stats_reader()));
        }
        self.exporter = Some(exporter);
        self.env.features.s3_export = true;
    }

    /// The export's first line: who this environment is, as `/environment` says it.
    fn start_line(&self) -> Vec<u8> {
        let env = &self.env;
        let line = serde_json::json!({
            "type": "environment",
            "event": "start",
            "environmentId": env.environment_id,
            "at": env.init_started_at.to_string(),
            "functionName": env.function_name,
            "functionVersion": env.function_version,
            "memoryMB": env.memory_mb,
            "region": env.region,
            "initType": env.init_type,
            "managedInstances": env.managed_instances,
            "extensionVersion": env.extension_version,
            "telemetry": env.features.telemetry,
        });
        serde_json::to_vec(&line).unwrap_or_default()
    }

    /// The export's post-invoke window, on on-demand environments where telemetry or the Runtime
    /// API proxy says when the function has answered; `None` elsewhere.
    pub fn export_window<'a>(&'a self, store: &'a Store) -> Option<ExportWindow<'a>> {
        let exporter = self.exporter.as_ref()?;
        let telemetry = self.telemetry_applied.as_ref();
        let proxy = self.proxy.as_ref().filter(|_| self.proxy_state == "on").map(RuntimeProxy::seen);
        // With neither there is no way to know the function answered: batches wait for SHUTDOWN.
        let signalled = telemetry.is_some() || proxy.is_some();
        (signalled && !self.env.managed_instances).then_some(ExportWindow {
            exporter,
            store,
            telemetry,
            proxy,
        })
    }

    /// Tells the local API who this environment is, now that registration and telemetry are known.
    pub fn publish_environment(&self) {
        if let Some(api) = &self.local_api {
            api.set_environment(self.env.clone());
        }
    }

    pub fn api_listening(&self) -> bool {
        self.local_api.is_some()
    }

    pub fn telemetry_state(&self) -> &'static str {
        self.env.features.telemetry
    }

    pub fn proxy_state(&self) -> &'static str {
        self.proxy_state
    }

    /// Stops every part by `deadline`. The proxy may hold a runtime's `/next` long poll until
    /// then, so the telemetry listener (which delivers its last batch) and after it the duration
    /// metrics (which write what is left) stop beside it, not after it.
    pub async fn shutdown(self, deadline: Instant, export_deadline: Instant, reason: &str) -> Summary {
        let Self {
            local_api,
            proxy,
            telemetry,
            metrics,
            telemetry_configured,
            exporter,
            ..
        } = self;
        let api = async {
            if let Some(api) = local_api {
                api.shutdown(deadline).await;
            }
        };
        let proxy = async {
            match proxy {
                Some(proxy) => Some(proxy.shutdown(deadline).await),
                None => None,
            }
        };
        let telemetry_then_metrics = async {
            let stats = match telemetry {
                Some(listener) => Some(listener.shutdown(deadline).await),
                None => None,
            };
            // After telemetry's last batch, so the last reports are in the export.
            let export = match exporter {
                Some(exporter) => Some(exporter.shutdown(export_deadline.max(deadline), reason).await),
                None => None,
            };
            let mut durations_dropped = None;
            let metrics = metrics.map(|part| {
                if let Some((durations, stop, task)) = part.durations {
                    let _ = stop.send(true);
                    durations_dropped = Some((durations, task));
                }
                (part.emitter, part.dimensions)
            });
            let durations_dropped = match durations_dropped {
                Some((durations, task)) => {
                    let _ = tokio::time::timeout_at(deadline, task).await;
                    Some(durations.dropped())
                }
                None => None,
            };
            (stats, durations_dropped, metrics, export)
        };
        let ((), proxy, (telemetry, durations_dropped, metrics, export)) = tokio::join!(api, proxy, telemetry_then_metrics);
        Summary {
            telemetry_configured,
            telemetry,
            durations_dropped,
            proxy,
            metrics,
            export,
        }
    }
}

impl Summary {
    pub fn write_stopped_metric(&self, lifetime_ms: f64, served: u64, reason: &str) {
        if let Some((emitter, dimensions)) = &self.metrics {
            emitter.stopped(dimensions, lifetime_ms, served, reason);
        }
    }

    /// The parts' counters, named as the summary line has always named them: a part that is on
    /// in the configuration shows its counters, zero when it never got to count.
    pub fn append_counts(&self, attrs: &mut Vec<(&str, Value<'_>)>, counts: &Counts) {
        if self.telemetry_configured {
            let st = self.telemetry.unwrap_or_default();
            attrs.extend([
                ("telemetryBatches", st.batches.into()),
                ("telemetryEvents", st.events.into()),
                ("telemetryIgnored", st.ignored.into()),
                ("telemetryInvalid", st.invalid.into()),
                ("telemetryRejected", st.rejected_batches.into()),
            ]);
        }
        if self.telemetry_configured || self.proxy.is_some() {
            attrs.push(("pendingUpdatesDropped", counts.pending_updates_dropped.into()));
        }
        if self.telemetry_configured && self.metrics.is_some() {
            attrs.push(("durationMetricsDropped", self.durations_dropped.unwrap_or(0).into()));
        }
        if let Some(st) = &self.proxy {
            attrs.extend([
                ("runtimeProxyForwarded", st.forwarded.into()),
                ("runtimeProxyUpstreamErrors", st.upstream_errors.into()),
            ]);
        }
        if let Some(st) = &self.export {
            attrs.extend([
                ("exportBatches", st.batches.into()),
                ("exportBytes", st.bytes.into()),
                ("exportInvocations", st.invocations.into()),
                ("exportRetries", st.retries.into()),
                ("exportDroppedBatches", st.dropped_batches.into()),
                ("exportDroppedInvocations", st.dropped_invocations.into()),
                ("exportEvicted", st.evicted.into()),
                ("exportLogEvents", st.log_events.into()),
                ("exportDroppedLogEvents", st.dropped_log_events.into()),
            ]);
        }
    }
}

/// Writes `content` through a rename, so the wrapper never reads half of it.
fn write_file_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(tmp, path)
}
