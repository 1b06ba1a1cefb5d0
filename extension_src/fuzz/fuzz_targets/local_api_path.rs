//! The request id in `/invocations/{requestId}`: 1 to 256 bytes, never a '/', never a panic.
#![no_main]

use invocation_history::local_api::parse_request_id_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tail) = std::str::from_utf8(data) else { return };
    if let Ok(id) = parse_request_id_path(tail) {
        assert!(!id.is_empty() && id.len() <= 256 && !id.contains('/'), "{id:?}");
    }
});
