//! The extension's log: one logfmt line per event on stdout, no timestamp (Lambda adds one), each
//! tagged `extension=invocation-history-extension`:
//!
//! ```text
//! level=INFO msg=ready extension=invocation-history-extension version=0.2.0 port=1203 startupMs=0.41
//! ```
//!
//! The shape is the one Go's `log/slog` text handler gave, which users' log queries match.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

/// Lambda's level names (`TRACE` counts as `DEBUG`, `FATAL` as `ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// TRACE, DEBUG, INFO, WARN (or WARNING), ERROR, FATAL, in any case.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "TRACE" | "DEBUG" => Some(Self::Debug),
            "INFO" => Some(Self::Info),
            "WARN" | "WARNING" => Some(Self::Warn),
            "ERROR" | "FATAL" => Some(Self::Error),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }
}

/// One attribute's value.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Self::Str(v)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Self::Str(v)
    }
}
/// Numbers and booleans become the variant that prints them as they are.
macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Value<'_> {
            fn from(v: $t) -> Self {
                Self::$variant(v.into())
            }
        }
    )*};
}

value_from!(u64 => Uint, u32 => Uint, u16 => Uint, i64 => Int, f64 => Float, bool => Bool);

impl From<usize> for Value<'_> {
    fn from(v: usize) -> Self {
        Self::Uint(v as u64)
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Str(s) => write_str_value(f, s),
            Self::Int(n) => write!(f, "{n}"),
            Self::Uint(n) => write!(f, "{n}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Plain when it is safe to read plain, quoted and escaped otherwise (empty, spaces, `=`, `"`,
/// control characters).
fn write_str_value(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let plain = !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=' || c == '\\');
    if plain {
        return f.write_str(s);
    }
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Where the lines go: stdout in Lambda, a buffer in tests.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// The extension's logger. Cheap to clone.
#[derive(Clone)]
pub struct Logger {
    level: Level,
    name: &'static str,
    sink: Sink,
}

impl Logger {
    /// A logger writing lines at `level` and above to stdout, tagged with the extension's `name`.
    #[must_use]
    pub fn stdout(level: Level, name: &'static str) -> Self {
        Self::new(level, name, Self::stdout_sink())
    }

    /// Whole lines to stdout, one write each so lines never interleave. A closed stdout is not
    /// reported: there is nowhere to report it.
    #[must_use]
    pub fn stdout_sink() -> Sink {
        Arc::new(|line: &str| {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        })
    }

    #[must_use]
    pub fn new(level: Level, name: &'static str, sink: Sink) -> Self {
        Self { level, name, sink }
    }

    /// A logger that keeps its lines, for tests: the logger and the lines written so far.
    #[must_use]
    pub fn capture(level: Level) -> (Self, Arc<Mutex<String>>) {
        let lines = Arc::new(Mutex::new(String::new()));
        let kept = Arc::clone(&lines);
        let sink: Sink = Arc::new(move |line: &str| kept.lock().unwrap_or_else(PoisonError::into_inner).push_str(line));
        (Self::new(level, "invocation-history-extension", sink), lines)
    }

    #[must_use]
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    pub fn log(&self, level: Level, msg: &str, attrs: &[(&str, Value<'_>)]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = String::with_capacity(128);
        let _ = write!(line, "level={} msg={} extension={}", level.name(), Value::Str(msg), self.name);
        for (key, value) in attrs {
            let _ = write!(line, " {key}={value}");
        }
        line.push('\n');
        (self.sink)(&line);
    }

    pub fn debug(&self, msg: &str, attrs: &[(&str, Value<'_>)]) {
        self.log(Level::Debug, msg, attrs);
    }

    pub fn info(&self, msg: &str, attrs: &[(&str, Value<'_>)]) {
        self.log(Level::Info, msg, attrs);
    }

    pub fn warn(&self, msg: &str, attrs: &[(&str, Value<'_>)]) {
        self.log(Level::Warn, msg, attrs);
    }

    pub fn error(&self, msg: &str, attrs: &[(&str, Value<'_>)]) {
        self.log(Level::Error, msg, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_logfmt_with_quoting_where_needed() {
        let (log, lines) = Logger::capture(Level::Info);
        log.warn(
            "invalid configuration, using the default",
            &[
                ("variable", "X".into()),
                ("value", "".into()),
                ("reason", "want \"on\"".into()),
                ("n", 3u64.into()),
                ("ms", 1.25.into()),
                ("on", true.into()),
            ],
        );
        log.debug("hidden", &[]);
        log.info("ready", &[("value", "a=b\nc".into())]);
        let got = lines.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(
            got,
            "level=WARN msg=\"invalid configuration, using the default\" extension=invocation-history-extension variable=X value=\"\" reason=\"want \\\"on\\\"\" n=3 ms=1.25 on=true\n\
             level=INFO msg=ready extension=invocation-history-extension value=\"a=b\\nc\"\n"
        );
    }

    #[test]
    fn levels_parse_lambda_names_in_any_case() {
        assert_eq!(Level::parse("trace"), Some(Level::Debug));
        assert_eq!(Level::parse(" Warning "), Some(Level::Warn));
        assert_eq!(Level::parse("FATAL"), Some(Level::Error));
        assert_eq!(Level::parse("LOUD"), None);
    }
}
