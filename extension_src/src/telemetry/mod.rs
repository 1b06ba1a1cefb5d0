//! The Telemetry API: the extension subscribes to the platform stream, receives the batches
//! Lambda posts, validates every event and merges it into the history store by request id.
//!
//! - Subscribe API: <https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html>
//! - Event schema: <https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html>
//!
//! The listener is on the telemetry path of every invocation, so it is cheap and quiet: it never
//! logs per event (an extension subscribed to its own logs would feed itself), bounds what it
//! reads, answers bad input with a 4xx and counts it, and blocks on nothing but the store's lock.
//! Any process in the sandbox can post to it, so nothing it receives is trusted: a value outside
//! what Lambda documents is not stored, and is counted.

mod apply;
mod events;
mod listener;
mod subscribe;

pub use apply::Applier;
pub use events::{BatchOutcome, Event, InitEvent, InitPhase, InvokeEvent, InvokePhase, Item, Malformed, for_each_event, parse_batch};
pub use listener::{Stats, TelemetryListener, bind, body_limit};
pub use subscribe::{Buffering, SubscribeBody, Subscription, subscribe};

/// The Telemetry API schema the extension subscribes with: Lambda Managed Instances require it
/// and it is backward compatible with Lambda (default) functions.
pub const SCHEMA_VERSION: &str = "2025-01-29";

/// The `initializationType` (and `AWS_LAMBDA_INITIALIZATION_TYPE`) of an execution environment on
/// Lambda Managed Instances.
pub const INIT_TYPE_MANAGED_INSTANCES: &str = "lambda-managed-instances";

/// The host Lambda requires in an HTTP destination URI; it resolves to the sandbox the extension
/// runs in.
pub const DESTINATION_HOST: &str = "sandbox.localdomain";

#[cfg(test)]
mod tests;
