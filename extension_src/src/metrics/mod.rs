//! The environment's metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout: Lambda
//! sends the extension's stdout to the function's log group, where CloudWatch extracts the
//! metrics. No API call, no extra permission.
//!
//! EMF specification:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.
//! The metric, dimension and property names are a contract (dashboards, alarms and
//! `tests/local/test_telemetry.py` read them); the member order is not.

mod durations;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Serialize;

use crate::log::Sink;
use crate::time::Clock;

pub use durations::{DURATIONS_TICK, Durations, MAX_DURATION_AGE, MAX_PENDING_DURATIONS, run_durations};

/// 1 per execution environment, at init.
pub const ENVIRONMENT_STARTED: &str = "EnvironmentStarted";
/// 1 per execution environment, at SHUTDOWN.
pub const ENVIRONMENT_STOPPED: &str = "EnvironmentStopped";
/// Milliseconds from extension start to SHUTDOWN.
pub const ENVIRONMENT_LIFETIME: &str = "EnvironmentLifetime";
/// Invocations the environment recorded, at SHUTDOWN.
pub const INVOCATIONS_SERVED: &str = "InvocationsServed";
/// Each invocation's duration as `platform.report` gives it, in milliseconds, in lines of up to
/// `MAX_VALUES_PER_LINE` values (CloudWatch keeps every value, so percentiles stay exact).
pub const INVOCATION_DURATION: &str = "InvocationDuration";

pub const DIMENSION_FUNCTION_NAME: &str = "FunctionName";
pub const DIMENSION_FUNCTION_VERSION: &str = "FunctionVersion";

/// EMF's limit on the values of one metric in one line.
pub const MAX_VALUES_PER_LINE: usize = 100;

/// CloudWatch refuses a dimension value that is empty, blank or longer than this.
const MAX_DIMENSION_VALUE_BYTES: usize = 1024;

const UNIT_COUNT: &str = "Count";
const UNIT_MILLISECONDS: &str = "Milliseconds";

/// Who the lines are about: the function name and version are dimensions; the rest are
/// properties (searchable in the logs but not metrics, so they cost nothing in CloudWatch and may
/// have any cardinality).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dimensions {
    pub function_name: String,
    pub function_version: String,
    pub environment_id: String,
    pub init_type: String,
}

/// Writes EMF lines, one whole line per sink call (so lines never interleave). Cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    namespace: Arc<str>,
    sink: Sink,
    clock: Clock,
}

impl Emitter {
    /// An emitter writing to `sink` (stdout in Lambda) under `namespace`, which the configuration
    /// has already checked against CloudWatch's rules; `clock` stamps the lines.
    #[must_use]
    pub fn new(namespace: String, sink: Sink, clock: Clock) -> Self {
        Self {
            namespace: namespace.into(),
            sink,
            clock,
        }
    }

    /// The init line: `EnvironmentStarted` = 1.
    pub fn started(&self, dims: &Dimensions) {
        #[derive(Serialize)]
        struct Values {
            #[serde(rename = "EnvironmentStarted")]
            started: u8,
        }
        const METRICS: &[Definition] = &[Definition {
            name: ENVIRONMENT_STARTED,
            unit: UNIT_COUNT,
        }];
        self.write(dims, METRICS, Values { started: 1 }, "");
    }

    /// The shutdown line: `EnvironmentStopped` = 1, the lifetime and the invocations served, with
    /// the shutdown reason as a property.
    pub fn stopped(&self, dims: &Dimensions, lifetime_ms: f64, served: u64, reason: &str) {
        #[derive(Serialize)]
        struct Values {
            #[serde(rename = "EnvironmentStopped")]
            stopped: u8,
            #[serde(rename = "EnvironmentLifetime")]
            lifetime_ms: f64,
            #[serde(rename = "InvocationsServed")]
            served: u64,
        }
        const METRICS: &[Definition] = &[
            Definition {
                name: ENVIRONMENT_STOPPED,
                unit: UNIT_COUNT,
            },
            Definition {
                name: ENVIRONMENT_LIFETIME,
                unit: UNIT_MILLISECONDS,
            },
            Definition {
                name: INVOCATIONS_SERVED,
                unit: UNIT_COUNT,
            },
        ];
        let values = Values {
            stopped: 1,
            lifetime_ms: finite_non_negative(lifetime_ms),
            served,
        };
        self.write(dims, METRICS, values, reason);
    }

    /// Invocation durations, `MAX_VALUES_PER_LINE` to a line. Values that are not finite numbers
    /// are left out (JSON has no NaN; serde_json would write `null`, which CloudWatch rejects).
    pub fn durations(&self, dims: &Dimensions, values: &[f64]) {
        #[derive(Serialize)]
        struct Values<'a> {
            #[serde(rename = "InvocationDuration")]
            durations: FiniteValues<'a>,
        }
        const METRICS: &[Definition] = &[Definition {
            name: INVOCATION_DURATION,
            unit: UNIT_MILLISECONDS,
        }];
        for chunk in values.chunks(MAX_VALUES_PER_LINE) {
            if chunk.iter().any(|v| v.is_finite()) {
                self.write(
                    dims,
                    METRICS,
                    Values {
                        durations: FiniteValues(chunk),
                    },
                    "",
                );
            }
        }
    }

    fn write(&self, dims: &Dimensions, metrics: &[Definition], values: impl Serialize, shutdown_reason: &str) {
        // Two dimension sets: per function (all versions together, what a dashboard of live
        // environments wants) and per function version. A dimension CloudWatch would refuse
        // (empty, too long) would lose the whole line, so it is left out instead: an unknown
        // version drops the second set, an unknown name both.
        let function_name = Some(dims.function_name.as_str()).filter(|v| usable_dimension(v));
        let function_version = Some(dims.function_version.as_str()).filter(|v| usable_dimension(v));
        let dimension_sets: &[&[&str]] = match (function_name, function_version) {
            (Some(_), Some(_)) => &[&[DIMENSION_FUNCTION_NAME], &[DIMENSION_FUNCTION_NAME, DIMENSION_FUNCTION_VERSION]],
            (Some(_), None) => &[&[DIMENSION_FUNCTION_NAME]],
            (None, _) => &[],
        };
        let line = Line {
            function_name,
            function_version,
            values,
            environment_id: &dims.environment_id,
            init_type: &dims.init_type,
            shutdown_reason,
            aws: Metadata {
                timestamp: (self.clock)().0.div_euclid(1_000_000).max(0),
                directives: [Directive {
                    namespace: &self.namespace,
                    dimensions: dimension_sets,
                    metrics,
                }],
            },
        };
        // Nothing in a line can fail to serialize (no maps with non-string keys, no NaN); if it
        // ever did, a missing metric line is better than a broken one.
        if let Ok(mut text) = serde_json::to_string(&line) {
            text.push('\n');
            (self.sink)(&text);
        }
    }
}

/// One line: dimension values, metric values, properties, then the `_aws` metadata.
#[derive(Serialize)]
struct Line<'a, V> {
    #[serde(rename = "FunctionName", skip_serializing_if = "Option::is_none")]
    function_name: Option<&'a str>,
    #[serde(rename = "FunctionVersion", skip_serializing_if = "Option::is_none")]
    function_version: Option<&'a str>,
    #[serde(flatten)]
    values: V,
    #[serde(rename = "EnvironmentId", skip_serializing_if = "str::is_empty")]
    environment_id: &'a str,
    #[serde(rename = "InitType", skip_serializing_if = "str::is_empty")]
    init_type: &'a str,
    #[serde(rename = "ShutdownReason", skip_serializing_if = "str::is_empty")]
    shutdown_reason: &'a str,
    #[serde(rename = "_aws")]
    aws: Metadata<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    /// Milliseconds since the epoch.
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    directives: [Directive<'a>; 1],
}

#[derive(Serialize)]
struct Directive<'a> {
    #[serde(rename = "Namespace")]
    namespace: &'a str,
    #[serde(rename = "Dimensions")]
    dimensions: &'a [&'a [&'a str]],
    #[serde(rename = "Metrics")]
    metrics: &'a [Definition],
}

#[derive(Serialize)]
struct Definition {
    #[serde(rename = "Name")]
    name: &'static str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

/// The finite values of a slice, as a JSON array.
struct FiniteValues<'a>(&'a [f64]);

impl Serialize for FiniteValues<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().filter(|v| v.is_finite()))
    }
}

fn usable_dimension(value: &str) -> bool {
    !value.trim().is_empty() && value.len() <= MAX_DIMENSION_VALUE_BYTES
}

/// A clock that steps back, or arithmetic gone wrong upstream, must not make a negative or
/// non-number lifetime.
fn finite_non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}
