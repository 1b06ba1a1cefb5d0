//! The local API's query parsing: any bytes give a value or an error naming the part, never a
//! panic; an accepted query never holds a wait beyond the maximum.
#![no_main]

use std::time::Duration;

use invocation_history::local_api::{parse_list_query, parse_record_query};
use libfuzzer_sys::fuzz_target;

const MAX_WAIT: Duration = Duration::from_millis(2000);

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    match parse_list_query(query, MAX_WAIT) {
        Ok(params) => {
            assert!(params.wait <= MAX_WAIT);
            assert!(params.request_id.as_ref().is_none_or(|id| !id.is_empty() && id.len() <= 256));
            assert!(!query.contains(';'), "a ';' separator is refused: {query:?}");
        }
        Err(message) => assert!(!message.is_empty()),
    }
    if let Ok(wait) = parse_record_query(query, MAX_WAIT) {
        assert!(wait <= MAX_WAIT);
    }
});
