//! Wall-clock instants as nanoseconds since the Unix epoch, formatted and parsed as RFC 3339 (UTC).
//!
//! Records keep their times as one `i64` (8 bytes instead of a formatted string), and the local
//! API writes them in the shape Go's `time.RFC3339Nano` gave the seed's clients:
//! `2026-11-23T09:05:46.214059954Z`, trailing zeros of the fraction trimmed.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant in UTC, in nanoseconds since 1970-01-01T00:00:00Z. Zero means "not known".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A source of the current time; tests pass a fixed one.
pub type Clock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
#[must_use]
pub fn system_clock() -> Clock {
    std::sync::Arc::new(Timestamp::now)
}

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// The current time from the system clock.
    #[must_use]
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(_) => Self(0),
        }
    }

    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Milliseconds elapsed from `earlier` to `self`, with microsecond precision (as the logs show).
    #[must_use]
    pub fn millis_since(self, earlier: Timestamp) -> f64 {
        let micros = self.0.saturating_sub(earlier.0) / 1_000;
        micros as f64 / 1_000.0
    }

    /// Parses an RFC 3339 date-time with a `Z` or `±hh:mm` offset and up to nine fraction digits,
    /// as Lambda writes them in telemetry (`2022-10-12T00:00:15.064Z`). Years 1970-9999 only.
    #[must_use]
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        let hour = digits(&b[11..13])?;
        let minute = digits(&b[14..16])?;
        let second = digits(&b[17..19])?;
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let mut rest = &b[19..];
        let mut nanos = 0i64;
        if let Some((&b'.', fraction)) = rest.split_first() {
            let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            nanos = digits(&fraction[..n])? * 10i64.pow(9 - u32::try_from(n).ok()?);
            rest = &fraction[n..];
        }
        let offset_secs = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
                if h > 23 || m > 59 {
                    return None;
                }
                let secs = h * 3600 + m * 60;
                if *sign == b'+' { secs } else { -secs }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset_secs;
        let nanos = secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)?;
        (nanos > 0).then_some(Self(nanos))
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter()
        .try_fold(0i64, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-calendar algorithms (public domain, "chrono-Compatible Low-Level Date
// Algorithms"), valid for every date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// RFC 3339 in UTC with the fraction's trailing zeros trimmed (Go's `RFC3339Nano`), for years
    /// 0-9999, as bytes and their length: no formatting machinery (the local API writes one or
    /// three per record). `None` for other years.
    #[must_use]
    pub fn rfc3339(self) -> Option<([u8; 30], usize)> {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let tod = secs.rem_euclid(SECS_PER_DAY);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[5..7], month);
        put_digits(&mut out[8..10], day);
        put_digits(&mut out[11..13], tod / 3600);
        put_digits(&mut out[14..16], tod / 60 % 60);
        put_digits(&mut out[17..19], tod % 60);
        let end = if nanos == 0 {
            19
        } else {
            put_digits(&mut out[20..29], nanos);
            let mut end = 29;
            while out[end - 1] == b'0' {
                end -= 1;
            }
            end
        };
        out[end] = b'Z';
        Some((out, end + 1))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((text, len)) = self.rfc3339() {
            return f.write_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
        }
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let tod = secs.rem_euclid(SECS_PER_DAY);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            tod / 3600,
            tod / 60 % 60,
            tod % 60
        )
    }
}

/// Writes `n` as decimal digits filling `out`, zero-padded.
fn put_digits(out: &mut [u8], mut n: i64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
            (1_700_000_000_120_000_000, "2023-11-14T22:13:20.12Z"),
            (951_782_400_000_000_001, "2000-02-29T00:00:00.000000001Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
        ];
        for (nanos, want) in cases {
            assert_eq!(Timestamp(nanos).to_string(), want, "{nanos}");
        }
    }

    #[test]
    fn parses_what_lambda_writes_and_round_trips() {
        let t = Timestamp::parse_rfc3339("2022-10-12T00:00:15.064Z").expect("valid");
        assert_eq!(t.to_string(), "2022-10-12T00:00:15.064Z");
        let offset = Timestamp::parse_rfc3339("2022-10-12T02:00:15.064+02:00").expect("valid");
        assert_eq!(offset, t);
        for nanos in [1i64, 999, 1_000_000_000, 1_764_400_000_123_000_000, 4_102_444_800_000_000_000] {
            let s = Timestamp(nanos).to_string();
            assert_eq!(Timestamp::parse_rfc3339(&s), Some(Timestamp(nanos)), "{s}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_valid_instant() {
        for bad in [
            "",
            "2022-10-12",
            "2022-10-12T00:00:15",
            "2022-13-12T00:00:15Z",
            "2022-02-30T00:00:15Z",
            "2021-02-29T00:00:15Z",
            "2022-10-12T24:00:15Z",
            "2022-10-12T00:00:15.Z",
            "2022-10-12T00:00:15.1234567890Z",
            "2022-10-12T00:00:15+2:00",
            "1969-12-31T23:59:59Z",
            "2022-10-12T00:00:15Zjunk",
            "２022-10-12T00:00:15Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad:?}");
        }
        assert!(Timestamp::parse_rfc3339("2024-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn millis_since_keeps_microseconds() {
        assert!((Timestamp(2_500_000).millis_since(Timestamp(1_000)) - 2.499).abs() < 1e-9);
        assert!((Timestamp(0).millis_since(Timestamp(5))).abs() < 1e-9);
    }
}
