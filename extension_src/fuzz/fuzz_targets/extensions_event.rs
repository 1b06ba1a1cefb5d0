//! The Extensions API's event body: any bytes give an event or an error, never a panic, and what
//! an INVOKE carries is within the documented bounds.
#![no_main]

use invocation_history::extensions_api::{Event, MAX_ARN_BYTES, MAX_REQUEST_ID_BYTES, MAX_TRACE_ID_BYTES, parse_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Event::Invoke { request_id, deadline_ms, invoked_function_arn, trace_id }) = parse_event(data) {
        assert!(request_id.len() <= MAX_REQUEST_ID_BYTES);
        assert!(invoked_function_arn.len() <= MAX_ARN_BYTES && trace_id.len() <= MAX_TRACE_ID_BYTES);
        assert!(deadline_ms >= 0);
        assert!(!request_id.chars().any(char::is_control));
    }
});
