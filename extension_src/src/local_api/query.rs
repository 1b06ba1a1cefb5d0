//! Strict parsing of the local API's query strings and request-id paths. Nothing a caller sends
//! is silently dropped: a `;` separator, a bad `%` escape, an empty part or name, a repeated or
//! unknown parameter is an error naming the part, so a typo such as `limt=5` never quietly
//! returns everything.

use std::time::Duration;

use crate::history::Query;

/// How long a caller naming a request id without `waitMs` waits: long enough to cover the INVOKE
/// race (microseconds in practice), short enough not to eat the function's time budget.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);
pub use crate::history::MAX_REQUEST_ID_BYTES;
use crate::percent::Undecodable;
/// Largest `limit` and `waitMs` (the spec's 2^31 - 1).
const MAX_INT31: u64 = (1 << 31) - 1;
/// Longest echo of a caller's text in an error message.
const ECHO_BYTES: usize = 64;

/// The parsed query of `GET /invocations`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub query: Query,
    /// Answer only once this request id is recorded (or the wait ends).
    pub request_id: Option<String>,
    /// Bounded by the server's maximum.
    pub wait: Duration,
}

/// Parses the query of `GET /invocations` (`raw_query` without its `?`); `max_wait` bounds
/// `waitMs`. The error says what is wrong, naming the part.
pub fn parse_list_query(raw_query: &str, max_wait: Duration) -> Result<ListParams, String> {
    let [limit, after, request_id, wait_ms] = decode_query(raw_query, ["limit", "after", "requestId", "waitMs"])?;
    let mut params = ListParams {
        query: Query::default(),
        request_id: None,
        wait: DEFAULT_WAIT.min(max_wait),
    };
    if let Some(v) = limit {
        params.query.limit = decimal(&v, MAX_INT31)
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("parameter limit={}: want a positive integer", echo(&v)))?;
    }
    if let Some(v) = after {
        params.query.after =
            decimal(&v, u64::MAX).ok_or_else(|| format!("parameter after={}: want a sequence number (0 or more)", echo(&v)))?;
    }
    if let Some(v) = request_id {
        check_request_id(&v).map_err(|reason| format!("parameter requestId={}: {reason}", echo(&v)))?;
        params.request_id = Some(v);
    }
    if let Some(v) = wait_ms {
        if params.request_id.is_none() {
            return Err("parameter waitMs needs requestId".to_owned());
        }
        params.wait = wait(&v, max_wait)?;
    }
    Ok(params)
}

/// Parses the query of `GET /invocations/{requestId}`: only `waitMs`, 0 when absent.
pub fn parse_record_query(raw_query: &str, max_wait: Duration) -> Result<Duration, String> {
    let [wait_ms] = decode_query(raw_query, ["waitMs"])?;
    wait_ms.map_or(Ok(Duration::ZERO), |v| wait(&v, max_wait))
}

/// The request id in `/invocations/{requestId}`, given the path after `/invocations/` as sent
/// (percent-encoded). A `/`, encoded or not, is refused: request ids never contain one in the
/// path form.
pub fn parse_request_id_path(raw_path_tail: &str) -> Result<String, String> {
    let invalid = |reason: &str| {
        format!(
            "path /invocations/{{requestId}}: invalid request id {}: {reason}",
            echo(raw_path_tail)
        )
    };
    let id = unescape(raw_path_tail, false).map_err(|reason| invalid(&reason))?;
    if id.contains('/') {
        return Err(invalid("a request id has no '/'"));
    }
    check_request_id(&id).map_err(|reason| invalid(&reason))?;
    Ok(id)
}

fn check_request_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID_BYTES {
        return Err(format!("want 1 to {MAX_REQUEST_ID_BYTES} bytes"));
    }
    Ok(())
}

fn wait(v: &str, max_wait: Duration) -> Result<Duration, String> {
    let max_ms = u64::try_from(max_wait.as_millis()).unwrap_or(u64::MAX).min(MAX_INT31);
    decimal(v, max_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("parameter waitMs={}: want milliseconds from 0 to {max_ms}", echo(v)))
}

/// A decimal number of ASCII digits only (no sign, no spaces), at most `max`.
fn decimal(v: &str, max: u64) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|&n| n <= max)
}

/// Splits `raw` into `name=value` parts and decodes them; each of `known` may be given once.
fn decode_query<const N: usize>(raw: &str, known: [&str; N]) -> Result<[Option<String>; N], String> {
    let mut values = [const { None }; N];
    if raw.is_empty() {
        return Ok(values);
    }
    for part in raw.split('&') {
        if part.is_empty() {
            return Err("empty query part: '&' at the start or end, or two in a row".to_owned());
        }
        if part.contains(';') {
            return Err(format!("query part {}: ';' does not separate parameters; use '&'", echo(part)));
        }
        let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let name = unescape(raw_name, true).map_err(|reason| format!("query part {}: {reason}", echo(part)))?;
        if name.is_empty() {
            return Err(format!("query part {}: the parameter has no name", echo(part)));
        }
        let Some(slot) = known.iter().position(|k| *k == name) else {
            return Err(format!("unknown parameter {}; known: {}", echo(&name), known.join(", ")));
        };
        if values[slot].is_some() {
            return Err(format!("parameter {name} is given more than once; give it once"));
        }
        values[slot] = Some(unescape(raw_value, true).map_err(|reason| format!("query part {}: {reason}", echo(part)))?);
    }
    Ok(values)
}

/// Percent-decodes `s` (and `+` as a space in a query); the result must be UTF-8.
fn unescape(s: &str, plus_is_space: bool) -> Result<String, String> {
    match crate::percent::decode(s, plus_is_space) {
        Ok(text) => Ok(text.into_owned()),
        Err(Undecodable::BadEscape(at)) => Err(format!("bad escape {}: '%' must be followed by two hex digits", echo(&s[at..]))),
        Err(Undecodable::NotUtf8) => Err("not UTF-8 once decoded".to_owned()),
    }
}

/// `s` quoted for an error message, cut to a bounded length.
pub(super) fn echo(s: &str) -> String {
    if s.len() <= ECHO_BYTES {
        return format!("{s:?}");
    }
    format!("{:?}...", &s[..s.floor_char_boundary(ECHO_BYTES)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MAX_WAIT: Duration = Duration::from_secs(2);

    #[test]
    fn accepts_the_documented_parameters() {
        let p = parse_list_query("", MAX_WAIT).unwrap();
        assert_eq!((p.query, p.request_id, p.wait), (Query::default(), None, DEFAULT_WAIT));
        let p = parse_list_query("limit=10&after=5", MAX_WAIT).unwrap();
        assert_eq!(p.query, Query { after: 5, limit: 10 });
        let p = parse_list_query("requestId=a%2Fb+c%C3%A9&waitMs=2000", MAX_WAIT).unwrap();
        assert_eq!((p.request_id.as_deref(), p.wait), (Some("a/b cé"), MAX_WAIT));
        let p = parse_list_query("after=18446744073709551615&limit=2147483647&requestId=x&waitMs=0", MAX_WAIT).unwrap();
        assert_eq!(
            p.query,
            Query {
                after: u64::MAX,
                limit: MAX_INT31
            }
        );
        assert_eq!(p.wait, Duration::ZERO);
        // With waits switched off, a request id is looked up at once.
        assert_eq!(parse_list_query("requestId=x", Duration::ZERO).unwrap().wait, Duration::ZERO);
        assert_eq!(parse_record_query("", MAX_WAIT), Ok(Duration::ZERO));
        assert_eq!(parse_record_query("waitMs=15", MAX_WAIT), Ok(Duration::from_millis(15)));
    }

    #[test]
    fn refuses_anything_else_naming_the_part() {
        let cases = [
            ("limit=0", "limit"),
            ("limit=-1", "limit"),
            ("limit=+1", "limit"),
            ("limit=ten", "limit"),
            ("limit=", "limit"),
            ("limit", "limit"),
            ("limit=2147483648", "limit"),
            ("after=x", "after"),
            ("after=18446744073709551616", "after"),
            ("limt=5", "limt"),
            ("limit=1&limit=2", "more than once"),
            ("waitMs=10", "needs requestId"),
            ("requestId=a&waitMs=2001", "waitMs"),
            ("requestId=a&waitMs=1e3", "waitMs"),
            ("requestId=", "requestId"),
            (&format!("requestId={}", "a".repeat(257)), "requestId"),
            ("limit=1;after=2", "';'"),
            ("limit=1&after=2;", "';'"),
            ("limit=%zz", "bad escape"),
            ("limit=1%", "bad escape"),
            ("requestId=%ff", "UTF-8"),
            ("=5", "no name"),
            ("limit=1&&after=2", "empty query part"),
            ("limit=1&", "empty query part"),
            ("&", "empty query part"),
            ("%6cimit=1&limit=2", "more than once"),
        ];
        for (raw, named) in cases {
            let err = parse_list_query(raw, MAX_WAIT).unwrap_err();
            assert!(err.contains(named), "{raw:?}: {err:?} does not name {named:?}");
        }
        for raw in ["x=1", "waitMs=soon", "waitMs=1&waitMs=1", "waitMs=3000", "waitMs=1;"] {
            assert!(parse_record_query(raw, MAX_WAIT).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn error_messages_are_bounded() {
        let err = parse_list_query(&format!("{}=1", "x".repeat(10_000)), MAX_WAIT).unwrap_err();
        assert!(err.len() < 200, "{}", err.len());
        let err = parse_request_id_path(&"é".repeat(500)).unwrap_err();
        assert!(err.len() < 250, "{}", err.len());
    }

    #[test]
    fn request_id_paths() {
        assert_eq!(parse_request_id_path("abc").unwrap(), "abc");
        assert_eq!(parse_request_id_path("a+b%20c").unwrap(), "a+b c");
        assert_eq!(parse_request_id_path(&"a".repeat(256)).unwrap().len(), 256);
        for bad in ["", "a/b", "a%2Fb", "a%2fb", "%", "%4", "%zz", "%ff", &"a".repeat(257)] {
            assert!(parse_request_id_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accepted_queries_stay_in_bounds_over_generated_input() {
        // A cheap stand-in for the fuzz target: every accepted query is within the documented bounds.
        let alphabet: &[&str] = &[
            "limit",
            "after",
            "requestId",
            "waitMs",
            "=",
            "&",
            ";",
            "%",
            "%2",
            "%41",
            "+",
            "1",
            "0",
            "99999999999",
            "-",
            "é",
            "/",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut raw = String::new();
            for _ in 0..(state % 9) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                raw.push_str(alphabet[usize::try_from(state % alphabet.len() as u64).unwrap()]);
            }
            if let Ok(p) = parse_list_query(&raw, MAX_WAIT) {
                assert!(p.wait <= MAX_WAIT, "{raw:?}");
                assert!(p.query.limit <= MAX_INT31, "{raw:?}");
                assert!(
                    p.request_id
                        .as_ref()
                        .is_none_or(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES),
                    "{raw:?}"
                );
            }
            let _ = parse_request_id_path(&raw);
        }
    }
}
