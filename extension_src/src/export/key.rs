//! Where a batch goes in the bucket: partitioned the way query engines prune (Hive-style
//! `name=value` folders) and unique per environment.
//!
//! `<prefix>function=<name>/date=<YYYY-MM-DD>/hour=<HH>/<environmentId>-<seq>.ndjson.gz`, the date
//! and hour in UTC of the batch's first line, `seq` counting the environment's objects from 1,
//! zero-padded to 6 digits so that one environment's objects list in order.

use crate::time::Timestamp;

/// The object key of an environment's `seq`-th batch, opened at `opened`.
#[must_use]
pub fn object_key(prefix: &str, function_name: &str, opened: Timestamp, environment_id: &str, seq: u64) -> String {
    let (date, hour) = match opened.rfc3339() {
        Some((text, _)) => (
            String::from_utf8_lossy(&text[..10]).into_owned(),
            String::from_utf8_lossy(&text[11..13]).into_owned(),
        ),
        None => ("0000-00-00".to_owned(), "00".to_owned()),
    };
    let separator = if prefix.is_empty() || prefix.ends_with('/') { "" } else { "/" };
    format!(
        "{prefix}{separator}function={}/date={date}/hour={hour}/{}-{seq:06}.ndjson.gz",
        path_safe(function_name),
        path_safe(environment_id)
    )
}

/// A value kept inside its own path segment: a `/` would open a folder the layout does not have.
fn path_safe(value: &str) -> String {
    let safe: String = value.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
    if safe.is_empty() { "_".to_owned() } else { safe }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-29T19:05:00Z
    const OPENED: Timestamp = Timestamp(1_795_979_100_000_000_000);

    #[test]
    fn keys_are_partitioned_by_function_date_and_hour() {
        assert_eq!(
            object_key("history/", "my-fn", OPENED, "8f24", 7),
            "history/function=my-fn/date=2026-11-29/hour=19/8f24-000007.ndjson.gz"
        );
        assert_eq!(
            object_key("", "my-fn", OPENED, "8f24", 1),
            "function=my-fn/date=2026-11-29/hour=19/8f24-000001.ndjson.gz"
        );
        assert_eq!(
            object_key("a/b", "my-fn", OPENED, "8f24", 1_000_000),
            "a/b/function=my-fn/date=2026-11-29/hour=19/8f24-1000000.ndjson.gz",
            "a prefix without its slash gets one; a seq past 6 digits grows"
        );
    }

    #[test]
    fn names_cannot_open_folders() {
        assert_eq!(
            object_key("p/", "a/b", OPENED, "", 1),
            "p/function=a_b/date=2026-11-29/hour=19/_-000001.ndjson.gz"
        );
    }

    #[test]
    fn one_environments_keys_list_in_order() {
        let keys: Vec<String> = (1..=12).map(|seq| object_key("p/", "f", OPENED, "env", seq)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
