//! The event loop: each INVOKE becomes a record, SHUTDOWN ends the loop. Nothing between an
//! INVOKE and the next `/event/next` that can wait: one store write, no I/O, no log line at INFO;
//! only a part that must work while the environment is not frozen (the S3 export's uploads) may
//! add an `AfterInvoke` step, which the loop runs there.

use std::future::Future;
use std::pin::Pin;
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

/// Work between an INVOKE and the next `/event/next`: the only time an on-demand environment is
/// sure not to be frozen. It must not touch the function's invocation: it waits for it to end.
pub trait AfterInvoke {
    /// `deadline`: the invocation's, when Lambda gave one.
    fn after_invoke<'a>(&'a self, request_id: &'a str, deadline: Option<Instant>) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// How the loop ended.
pub struct LoopEnd {
    pub reason: ShutdownReason,
    /// The deadline Lambda gave with SHUTDOWN.
    pub deadline: Option<Instant>,
    /// INVOKE events without a valid request id: not recorded, counted.
    pub invalid_invokes: u64,
}

/// Serves events until SHUTDOWN, `terminated`, or an Extensions API that keeps failing.
pub async fn run(
    client: &mut Client,
    store: &Arc<Store>,
    log: &Logger,
    terminated: impl Future<Output = ()>,
    after: Option<&(dyn AfterInvoke + Sync)>,
) -> LoopEnd {
    let mut invalid_invokes = 0;
    let (reason, deadline) = serve_events(client, store, log, terminated, after, &mut invalid_invokes).await;
    LoopEnd {
        reason,
        deadline,
        invalid_invokes,
    }
}

/// The loop itself; returns the reason and, for SHUTDOWN, the deadline Lambda gave.
async fn serve_events(
    client: &mut Client,
    store: &Arc<Store>,
    log: &Logger,
    terminated: impl Future<Output = ()>,
    after: Option<&(dyn AfterInvoke + Sync)>,
    invalid_invokes: &mut u64,
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
            Event::Invoke { request_id, .. } if request_id.is_empty() => {
                // Its id failed validation (empty, too long, control characters): there is
                // nothing to file it under.
                *invalid_invokes += 1;
                log.debug("ignoring an INVOKE without a valid request id", &[]);
            }
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
                if let Some(after) = after {
                    tokio::select! {
                        biased;
                        () = terminated.as_mut() => return (ShutdownReason::Sigterm, None),
                        () = after.after_invoke(&request_id, invoke_deadline(deadline_ms)) => {}
                    }
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

/// The monotonic instant of an invocation's deadline in Unix milliseconds; `None` when Lambda gave
/// none.
fn invoke_deadline(deadline_ms: i64) -> Option<Instant> {
    let now_ms = crate::time::Timestamp::now().0 / 1_000_000;
    (deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms).max(0).unsigned_abs()))
}

/// The monotonic instant of a wall-clock deadline in Unix milliseconds, less a margin for the
/// summary line (now, when that is past); `None` when Lambda gave no deadline.
fn deadline_from_epoch_ms(deadline_ms: i64) -> Option<Instant> {
    deadline_at(deadline_ms, crate::time::Timestamp::now().0 / 1_000_000, Instant::now())
}

fn deadline_at(deadline_ms: i64, now_ms: i64, now: Instant) -> Option<Instant> {
    const MARGIN_MS: i64 = 50;
    if deadline_ms <= 0 {
        return None;
    }
    let left = deadline_ms.saturating_sub(now_ms).saturating_sub(MARGIN_MS).max(0);
    Some(now + Duration::from_millis(left.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shutdown_deadline_becomes_an_instant_with_a_margin() {
        let now = Instant::now();
        assert_eq!(deadline_at(1_000_300, 1_000_000, now), Some(now + Duration::from_millis(250)));
        assert_eq!(
            deadline_at(1_000_010, 1_000_000, now),
            Some(now),
            "a deadline inside the margin is now"
        );
        assert_eq!(deadline_at(999_000, 1_000_000, now), Some(now), "a past deadline is now");
        assert_eq!(deadline_at(0, 1_000_000, now), None, "no deadline given");
        assert_eq!(deadline_at(i64::MAX, i64::MIN + 1, now).map(|d| d > now), Some(true), "no overflow");
    }
}
