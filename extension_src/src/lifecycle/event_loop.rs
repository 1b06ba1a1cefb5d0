//! The event loop: each INVOKE becomes a record, SHUTDOWN ends the loop. Nothing between an
//! INVOKE and the next `/event/next` that can wait: one store write, no I/O, no log line at INFO.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::extensions_api::{Client, Event};
use crate::history::{Source, Store};
use crate::log::{Level, Logger};

/// Retries of a failing `/event/next` before the extension gives up and reports
/// `Extension.EventLoopFailed`.
const NEXT_EVENT_RETRIES: [Duration; 3] = [Duration::from_millis(50), Duration::from_millis(200), Duration::from_millis(500)];
/// Bounds the one exit-error report.
const EXIT_ERROR_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the loop ended, as the summary line and the stopped metric say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Lambda's SHUTDOWN event, with its reason (`spindown`, `timeout`, `failure`, ...).
    Shutdown(String),
    Sigterm,
    EventLoopFailed,
}

impl ShutdownReason {
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Shutdown(reason) if reason.is_empty() => "SHUTDOWN",
            Self::Shutdown(reason) => reason,
            Self::Sigterm => "SIGTERM",
            Self::EventLoopFailed => "EventLoopFailed",
        }
    }
}

/// Serves events until SHUTDOWN, `terminated`, or an Extensions API that keeps failing. Returns
/// the reason and, for SHUTDOWN, the deadline Lambda gave.
pub async fn run(
    client: &mut Client,
    store: &Arc<Store>,
    log: &Logger,
    terminated: impl Future<Output = ()>,
) -> (ShutdownReason, Option<Instant>) {
    let mut terminated = std::pin::pin!(terminated);
    let mut failures = 0;
    loop {
        let event = tokio::select! {
            biased;
            () = terminated.as_mut() => return (ShutdownReason::Sigterm, None),
            event = client.next_event() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                let Some(&pause) = NEXT_EVENT_RETRIES.get(failures) else {
                    let message = e.to_string();
                    log.error(
                        "event loop failed; reporting Extension.EventLoopFailed",
                        &[("error", message.as_str().into())],
                    );
                    let report = tokio::time::timeout(EXIT_ERROR_TIMEOUT, client.exit_error("Extension.EventLoopFailed", &message)).await;
                    match report {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => log.error("cannot report exit error", &[("error", e.to_string().as_str().into())]),
                        Err(_) => log.error("cannot report exit error", &[("error", "timed out".into())]),
                    }
                    return (ShutdownReason::EventLoopFailed, None);
                };
                failures += 1;
                log.warn(
                    "next event failed; retrying",
                    &[("error", e.to_string().as_str().into()), ("attempt", failures.into())],
                );
                tokio::select! {
                    biased;
                    () = terminated.as_mut() => return (ShutdownReason::Sigterm, None),
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        failures = 0;
        match event {
            Event::Invoke {
                request_id,
                deadline_ms,
                invoked_function_arn,
                trace_id,
            } => {
                // With the Runtime API proxy on, the record may exist already; a retry gets a new one.
                let sequence = store.begin(&request_id, Source::Invoke, |r, _| {
                    r.deadline_ms = deadline_ms;
                    if !invoked_function_arn.is_empty() {
                        r.invoked_function_arn = Some(Arc::from(invoked_function_arn.as_str()));
                    }
                    if r.trace_id.is_none() {
                        r.set_trace_id(&trace_id);
                    }
                });
                if log.enabled(Level::Debug) {
                    log.debug(
                        "invoke",
                        &[("requestId", request_id.as_str().into()), ("sequence", sequence.into())],
                    );
                }
            }
            Event::Shutdown { reason, deadline_ms } => {
                let deadline = deadline_from_epoch_ms(deadline_ms);
                return (ShutdownReason::Shutdown(reason), deadline);
            }
            Event::Unknown(kind) => log.debug("ignoring unknown event", &[("eventType", kind.as_str().into())]),
        }
    }
}

/// The monotonic instant of a wall-clock deadline in Unix milliseconds, less a margin for the
/// summary line (now, when that is past); `None` when Lambda gave no deadline.
fn deadline_from_epoch_ms(deadline_ms: i64) -> Option<Instant> {
    const MARGIN_MS: i64 = 50;
    if deadline_ms <= 0 {
        return None;
    }
    let now_ms = crate::time::Timestamp::now().0 / 1_000_000;
    let left = deadline_ms.saturating_sub(now_ms).saturating_sub(MARGIN_MS).max(0);
    Some(Instant::now() + Duration::from_millis(left.unsigned_abs()))
}
