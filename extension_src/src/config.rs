//! The extension's settings, read from environment variables (docs/configuration.md).
//!
//! Every setting has the prefix `INVOCATION_HISTORY_EXTENSION_`. An invalid value never stops the
//! extension: it becomes one `Warning` naming the variable, the value, the reason and the default,
//! and the default is used; the function must keep working whatever its configuration says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::log::Level;

pub const ENV_HTTP_PORT: &str = "INVOCATION_HISTORY_EXTENSION_HTTP_PORT";
pub const ENV_MAX_RECORDS: &str = "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS";
pub const ENV_MAX_WAIT: &str = "INVOCATION_HISTORY_EXTENSION_MAX_WAIT_MS";
pub const ENV_LOG_LEVEL: &str = "INVOCATION_HISTORY_EXTENSION_LOG_LEVEL";
pub const ENV_TELEMETRY: &str = "INVOCATION_HISTORY_EXTENSION_TELEMETRY";
pub const ENV_TELEMETRY_PORT: &str = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_PORT";
pub const ENV_TELEMETRY_MAX_ITEMS: &str = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_ITEMS";
pub const ENV_TELEMETRY_MAX_BYTES: &str = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_BYTES";
pub const ENV_TELEMETRY_TIMEOUT_MS: &str = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_TIMEOUT_MS";
pub const ENV_METRICS: &str = "INVOCATION_HISTORY_EXTENSION_METRICS";
pub const ENV_METRICS_NAMESPACE: &str = "INVOCATION_HISTORY_EXTENSION_METRICS_NAMESPACE";
pub const ENV_RUNTIME_PROXY: &str = "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY";
pub const ENV_RUNTIME_PROXY_PORT: &str = "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT";
pub const ENV_RUNTIME_PROXY_UPSTREAM: &str = "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM";
pub const ENV_EXPORT_S3_BUCKET: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET";
pub const ENV_EXPORT_S3_PREFIX: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX";
pub const ENV_EXPORT_S3_ENDPOINT: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT";
pub const ENV_EXPORT_MAX_INVOCATIONS: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS";
pub const ENV_EXPORT_MAX_BYTES: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_BYTES";
pub const ENV_EXPORT_MAX_AGE_MS: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_AGE_MS";
pub const ENV_EXPORT_LOGS: &str = "INVOCATION_HISTORY_EXTENSION_EXPORT_LOGS";
/// Lambda's advanced-logging level; applies when `ENV_LOG_LEVEL` is unset.
pub const ENV_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
/// Set by Lambda: host:port of the Runtime and Extensions APIs.
pub const ENV_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

pub const DEFAULT_HTTP_PORT: u16 = 1203;
/// About 130 bytes of heap per record (docs/configuration.md): ~1.3 MB for a full store.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;
pub const MAX_MAX_RECORDS: usize = 1_000_000;
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(2);
pub const MAX_MAX_WAIT_MS: u64 = 30_000;

// Telemetry: Lambda accepts maxItems 1000-10000, maxBytes 262144-1048576 and timeoutMs 25-30000.
// The extension takes platform events only (a handful per invocation, well under 1 KiB each), so
// the timeout is what flushes a batch: 25 ms completes records 25 ms after the event instead of
// Lambda's default 1000 ms, for at most 40 small loopback POSTs a second.
pub const DEFAULT_TELEMETRY_PORT: u16 = 0;
pub const TELEMETRY_MAX_ITEMS: (u32, u32, u32) = (1000, 10_000, 1000);
pub const TELEMETRY_MAX_BYTES: (u32, u32, u32) = (262_144, 1_048_576, 262_144);
pub const TELEMETRY_TIMEOUT_MS: (u32, u32, u32) = (25, 30_000, 25);

pub const DEFAULT_METRICS_NAMESPACE: &str = "InvocationHistory";
const MAX_NAMESPACE_LENGTH: usize = 255;
/// The port the seed's documents used for their proxy.
pub const DEFAULT_RUNTIME_PROXY_PORT: u16 = 9009;

/// The Telemetry API subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Telemetry {
    pub enabled: bool,
    /// The listener's port; 0 picks a free one.
    pub port: u16,
    pub max_items: u32,
    pub max_bytes: u32,
    pub timeout_ms: u32,
}

/// The environment start/stop metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub enabled: bool,
    pub namespace: String,
}

/// The optional Runtime API proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeProxy {
    pub enabled: bool,
    /// On 127.0.0.1.
    pub port: u16,
    /// host:port; default `AWS_LAMBDA_RUNTIME_API`, or another proxy to chain.
    pub upstream: String,
}

// The S3 export (issue 12): (lowest, highest, default). A batch is due at the first
// limit reached; bytes are the NDJSON's before compression.
pub const DEFAULT_EXPORT_PREFIX: &str = "invocation-history/";
pub const EXPORT_MAX_INVOCATIONS: (usize, usize, usize) = (1, 100_000, 1000);
pub const EXPORT_MAX_BYTES: (usize, usize, usize) = (1 << 10, 64 << 20, 4 << 20);
pub const EXPORT_MAX_AGE_MS: (u64, u64, u64) = (1000, 3_600_000, 60_000);
const MAX_PREFIX_BYTES: usize = 512;
/// The log streams exported by default: what the function and the extensions wrote. The platform
/// stream's events are already in each record (status, durations, memory); it is there to ask for.
pub const DEFAULT_EXPORT_LOGS: LogStreams = LogStreams {
    platform: false,
    function: true,
    extension: true,
};

/// Which Telemetry API streams ride along with the exported records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStreams {
    pub platform: bool,
    pub function: bool,
    pub extension: bool,
}

impl LogStreams {
    /// `none`, or a comma-separated list of `platform`, `function`, `extension` (any case).
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("none") {
            return Ok(Self::default());
        }
        let mut streams = Self::default();
        for name in value.split(',').map(str::trim) {
            match name.to_ascii_lowercase().as_str() {
                "platform" => streams.platform = true,
                "function" => streams.function = true,
                "extension" => streams.extension = true,
                _ => {
                    return Err(format!(
                        "{name:?} is not a log stream: want none, or a list of platform, function, extension"
                    ));
                }
            }
        }
        Ok(streams)
    }

    #[must_use]
    pub fn any(self) -> bool {
        self.platform || self.function || self.extension
    }

    /// As `parse` reads it: `none` or the list.
    #[must_use]
    pub fn names(self) -> String {
        let names: Vec<&str> = [
            (self.platform, "platform"),
            (self.function, "function"),
            (self.extension, "extension"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() { "none".to_owned() } else { names.join(",") }
    }
}

/// The S3 export; off unless a bucket is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub bucket: Option<String>,
    pub prefix: String,
    /// An S3-compatible endpoint (`http://host:port`); `None`: AWS's in `AWS_REGION`.
    pub endpoint: Option<String>,
    pub max_invocations: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    pub logs: LogStreams,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The local API's port on 127.0.0.1.
    pub http_port: u16,
    pub max_records: usize,
    /// The longest wait a caller may ask for its own request id.
    pub max_wait: Duration,
    pub log_level: Level,
    /// Empty when not running inside Lambda.
    pub runtime_api: String,
    pub telemetry: Telemetry,
    pub metrics: Metrics,
    pub proxy: RuntimeProxy,
    pub export: Export,
}

/// One invalid setting that was replaced by its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
    pub default: String,
}

impl Config {
    /// Reads the configuration through `getenv`; every invalid value falls back to its default and
    /// is reported once in the returned warnings.
    pub fn from_env(getenv: impl Fn(&str) -> Option<String>) -> (Self, Vec<Warning>) {
        let mut r = Reader {
            getenv: &getenv,
            warnings: Vec::new(),
        };
        let runtime_api = getenv(ENV_RUNTIME_API).map(|v| v.trim().to_owned()).unwrap_or_default();

        let http_port = r.int_in(ENV_HTTP_PORT, 1, 65535, DEFAULT_HTTP_PORT);
        let max_records = r.int_in(ENV_MAX_RECORDS, 1, MAX_MAX_RECORDS, DEFAULT_MAX_RECORDS);
        let default_wait_ms = u64::try_from(DEFAULT_MAX_WAIT.as_millis()).unwrap_or(MAX_MAX_WAIT_MS);
        let max_wait = Duration::from_millis(r.int_in(ENV_MAX_WAIT, 0, MAX_MAX_WAIT_MS, default_wait_ms));

        let mut telemetry = Telemetry {
            enabled: r.on_off(ENV_TELEMETRY, true),
            port: r.int_in(ENV_TELEMETRY_PORT, 0, 65535, DEFAULT_TELEMETRY_PORT),
            max_items: r.int_in(
                ENV_TELEMETRY_MAX_ITEMS,
                TELEMETRY_MAX_ITEMS.0,
                TELEMETRY_MAX_ITEMS.1,
                TELEMETRY_MAX_ITEMS.2,
            ),
            max_bytes: r.int_in(
                ENV_TELEMETRY_MAX_BYTES,
                TELEMETRY_MAX_BYTES.0,
                TELEMETRY_MAX_BYTES.1,
                TELEMETRY_MAX_BYTES.2,
            ),
            timeout_ms: r.int_in(
                ENV_TELEMETRY_TIMEOUT_MS,
                TELEMETRY_TIMEOUT_MS.0,
                TELEMETRY_TIMEOUT_MS.1,
                TELEMETRY_TIMEOUT_MS.2,
            ),
        };
        if telemetry.port != 0 && telemetry.port == http_port {
            r.warn(
                ENV_TELEMETRY_PORT,
                format!("the local API already uses this port ({ENV_HTTP_PORT})"),
                DEFAULT_TELEMETRY_PORT.to_string(),
            );
            telemetry.port = DEFAULT_TELEMETRY_PORT;
        }

        let mut proxy = RuntimeProxy {
            enabled: r.on_off(ENV_RUNTIME_PROXY, false),
            port: r.int_in(ENV_RUNTIME_PROXY_PORT, 1, 65535, DEFAULT_RUNTIME_PROXY_PORT),
            upstream: runtime_api.clone(),
        };
        // Only a proxy that is on can collide with the extension's other listeners.
        let port_owner = |port: u16| {
            if port == http_port {
                Some(ENV_HTTP_PORT)
            } else if telemetry.enabled && telemetry.port != 0 && port == telemetry.port {
                Some(ENV_TELEMETRY_PORT)
            } else {
                None
            }
        };
        if let (true, Some(owner)) = (proxy.enabled, port_owner(proxy.port)) {
            if port_owner(DEFAULT_RUNTIME_PROXY_PORT).is_none() {
                r.warn_value(
                    ENV_RUNTIME_PROXY_PORT,
                    proxy.port.to_string(),
                    format!("the port of {owner}"),
                    DEFAULT_RUNTIME_PROXY_PORT.to_string(),
                );
                proxy.port = DEFAULT_RUNTIME_PROXY_PORT;
            } else {
                // The default is taken too: the function keeps talking to Lambda directly.
                let reason = format!(
                    "its port {} is the port of {owner}; set {ENV_RUNTIME_PROXY_PORT} to a free port",
                    proxy.port
                );
                r.warn(ENV_RUNTIME_PROXY, reason, "off".to_owned());
                proxy.enabled = false;
            }
        }
        if let Some(v) = r.lookup(ENV_RUNTIME_PROXY_UPSTREAM) {
            let trimmed = v.trim();
            match parse_host_port(trimmed) {
                Err(reason) => r.warn(ENV_RUNTIME_PROXY_UPSTREAM, reason.to_owned(), ENV_RUNTIME_API.to_owned()),
                Ok((host, port)) if proxy.enabled && port == proxy.port && is_own_host(host) => r.warn(
                    ENV_RUNTIME_PROXY_UPSTREAM,
                    "the proxy's own address: every request would loop back to it".to_owned(),
                    ENV_RUNTIME_API.to_owned(),
                ),
                Ok(_) => proxy.upstream = trimmed.to_owned(),
            }
        }

        let mut metrics = Metrics {
            enabled: r.on_off(ENV_METRICS, true),
            namespace: DEFAULT_METRICS_NAMESPACE.to_owned(),
        };
        if let Some(v) = r.lookup(ENV_METRICS_NAMESPACE) {
            match valid_namespace(v.trim()) {
                Ok(()) => v.trim().clone_into(&mut metrics.namespace),
                Err(reason) => r.warn(ENV_METRICS_NAMESPACE, reason, DEFAULT_METRICS_NAMESPACE.to_owned()),
            }
        }

        // Our own variable wins; Lambda's advanced-logging level applies otherwise.
        let mut log_level = Level::Info;
        let level_setting = r
            .lookup(ENV_LOG_LEVEL)
            .map(|v| (ENV_LOG_LEVEL, v))
            .or_else(|| r.lookup(ENV_LAMBDA_LOG_LEVEL).map(|v| (ENV_LAMBDA_LOG_LEVEL, v)));
        if let Some((variable, v)) = level_setting {
            match Level::parse(&v) {
                Some(level) => log_level = level,
                None => r.warn(
                    variable,
                    "want one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL".to_owned(),
                    "INFO".to_owned(),
                ),
            }
        }

        let export = r.export();

        let config = Self {
            http_port,
            max_records,
            max_wait,
            log_level,
            runtime_api,
            telemetry,
            metrics,
            proxy,
            export,
        };
        (config, r.warnings)
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    getenv: &'a F,
    warnings: Vec<Warning>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    /// An empty or blank value counts as unset: consoles and templates often leave "".
    fn lookup(&self, name: &str) -> Option<String> {
        (self.getenv)(name).filter(|v| !v.trim().is_empty())
    }

    /// A warning with the variable's value as it is set.
    fn warn(&mut self, variable: &'static str, reason: String, default: String) {
        let value = (self.getenv)(variable).unwrap_or_default();
        self.warn_value(variable, value, reason, default);
    }

    fn warn_value(&mut self, variable: &'static str, value: String, reason: String, default: String) {
        self.warnings.push(Warning {
            variable,
            value,
            reason,
            default,
        });
    }

    fn int_in<T>(&mut self, variable: &'static str, lo: T, hi: T, default: T) -> T
    where
        T: Copy + PartialOrd + std::str::FromStr + std::fmt::Display,
    {
        let Some(v) = self.lookup(variable) else { return default };
        match v.trim().parse::<T>() {
            Ok(n) if n >= lo && n <= hi => n,
            _ => {
                self.warn_value(variable, v, format!("want an integer from {lo} to {hi}"), default.to_string());
                default
            }
        }
    }

    fn export(&mut self) -> Export {
        let bucket = self
            .lookup(ENV_EXPORT_S3_BUCKET)
            .map(|v| v.trim().to_owned())
            .and_then(|v| match valid_bucket(&v) {
                Ok(()) => Some(v),
                Err(reason) => {
                    self.warn(ENV_EXPORT_S3_BUCKET, reason, "no export".to_owned());
                    None
                }
            });
        let mut prefix = DEFAULT_EXPORT_PREFIX.to_owned();
        if let Some(v) = self.lookup(ENV_EXPORT_S3_PREFIX) {
            match valid_prefix(v.trim()) {
                Ok(()) => v.trim().clone_into(&mut prefix),
                Err(reason) => self.warn(ENV_EXPORT_S3_PREFIX, reason, DEFAULT_EXPORT_PREFIX.to_owned()),
            }
        }
        let (lo, hi, default) = EXPORT_MAX_AGE_MS;
        Export {
            bucket,
            prefix,
            endpoint: self.lookup(ENV_EXPORT_S3_ENDPOINT).map(|v| v.trim().to_owned()),
            max_invocations: self.int_in(
                ENV_EXPORT_MAX_INVOCATIONS,
                EXPORT_MAX_INVOCATIONS.0,
                EXPORT_MAX_INVOCATIONS.1,
                EXPORT_MAX_INVOCATIONS.2,
            ),
            max_bytes: self.int_in(ENV_EXPORT_MAX_BYTES, EXPORT_MAX_BYTES.0, EXPORT_MAX_BYTES.1, EXPORT_MAX_BYTES.2),
            max_age: Duration::from_millis(self.int_in(ENV_EXPORT_MAX_AGE_MS, lo, hi, default)),
            logs: self.lookup(ENV_EXPORT_LOGS).map_or(DEFAULT_EXPORT_LOGS, |v| {
                LogStreams::parse(&v).unwrap_or_else(|reason| {
                    self.warn_value(ENV_EXPORT_LOGS, v, reason, DEFAULT_EXPORT_LOGS.names());
                    DEFAULT_EXPORT_LOGS
                })
            }),
        }
    }

    fn on_off(&mut self, variable: &'static str, default: bool) -> bool {
        let Some(v) = self.lookup(variable) else { return default };
        parse_switch(&v).unwrap_or_else(|| {
            self.warn_value(variable, v, "want on or off".to_owned(), switch_name(default).to_owned());
            default
        })
    }
}

/// S3's bucket naming rules: 3 to 63 characters of lowercase letters, digits, `.` and `-`,
/// beginning and ending with a letter or digit.
fn valid_bucket(name: &str) -> Result<(), String> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len()) {
        return Err("want 3 to 63 characters".to_owned());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err("want lowercase letters, digits, '.' and '-' only".to_owned());
    }
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) || name.contains("..") {
        return Err("want a letter or digit first and last, and no '..'".to_owned());
    }
    Ok(())
}

/// A key prefix: printable, at most 512 bytes, not starting with `/`.
fn valid_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err(format!("longer than {MAX_PREFIX_BYTES} bytes"));
    }
    if prefix.starts_with('/') || prefix.chars().any(char::is_control) {
        return Err("want no leading '/' and no control characters".to_owned());
    }
    Ok(())
}

/// on/off, true/false, 1/0, yes/no and enabled/disabled, any case.
#[must_use]
pub fn parse_switch(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" | "enabled" => Some(true),
        "off" | "false" | "0" | "no" | "disabled" => Some(false),
        _ => None,
    }
}

fn switch_name(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// CloudWatch's rules for a metric namespace.
fn valid_namespace(ns: &str) -> Result<(), String> {
    if ns.is_empty() || ns.len() > MAX_NAMESPACE_LENGTH {
        return Err(format!("want 1 to {MAX_NAMESPACE_LENGTH} characters"));
    }
    if ns.starts_with("AWS/") {
        return Err("the AWS/ prefix is reserved for AWS services".to_owned());
    }
    match ns.chars().find(|&c| !(c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))) {
        Some(c) => Err(format!("character {c:?} is not allowed; use letters, digits and . - _ / # : space")),
        None => Ok(()),
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6) with a port from 1 to 65535.
pub fn parse_host_port(v: &str) -> Result<(&str, u16), &'static str> {
    const WANT: &str = "want host:port, like AWS_LAMBDA_RUNTIME_API";
    let (host, port) = v.rsplit_once(':').ok_or(WANT)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').filter(|h| h.parse::<Ipv6Addr>().is_ok()).ok_or(WANT)?,
        None if host.contains(':') => return Err(WANT),
        None => host,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
        return Err(WANT);
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 && port.bytes().all(|b| b.is_ascii_digit()) => Ok((host, p)),
        _ => Err("want host:port with a port from 1 to 65535"),
    }
}

/// Whether `host` names this machine in any spelling: `localhost` (any case, a trailing dot),
/// a loopback or unspecified IPv4 or IPv6 address, including the short forms `127.1` and `0`.
#[must_use]
pub fn is_own_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    let ip = host.parse::<IpAddr>().ok().or_else(|| parse_inet_aton(host).map(IpAddr::V4));
    ip.is_some_and(|ip| {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        ip.is_loopback() || ip.is_unspecified()
    })
}

/// The classic `inet_aton` forms that resolvers accept: `a`, `a.b`, `a.b.c`, `a.b.c.d`, each part
/// decimal, octal (`0` prefix) or hex (`0x`).
fn parse_inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u32> = s.split('.').map(parse_c_number).collect::<Option<_>>()?;
    let (last, init) = parts.split_last()?;
    if init.len() > 3 || init.iter().any(|&p| p > 255) {
        return None;
    }
    let last_bits = 8 * (4 - init.len() as u32);
    if last_bits < 32 && *last >= 1 << last_bits {
        return None;
    }
    let head = init.iter().enumerate().fold(0u32, |acc, (i, &p)| acc | (p << (24 - 8 * i as u32)));
    Some(Ipv4Addr::from(head | last))
}

fn parse_c_number(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u32::from_str_radix(&s[1..], 8).ok();
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
