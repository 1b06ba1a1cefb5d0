//! The Runtime API proxy's header handling: the request classification, the hop-by-hop filter
//! and the values read from a `/next` answer never panic, and the filter leaves no hop-by-hop
//! header behind.
#![no_main]

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use invocation_history::runtime_proxy::parse::HOP_BY_HOP;
use invocation_history::runtime_proxy::{classify, error_type_from_body, next_event, strip_hop_by_hop};
use libfuzzer_sys::fuzz_target;


fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or_default();
    let _ = classify(&Method::POST, path);
    let _ = classify(&Method::GET, path);
    let _ = error_type_from_body(data);

    let mut headers = HeaderMap::new();
    for line in lines.take(64) {
        let Some((name, value)) = line.split_once(':') else { continue };
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim())) {
            headers.append(name, value);
        }
    }
    let _ = next_event(&headers);
    strip_hop_by_hop(&mut headers);
    // `TE: trailers` passes on purpose (the next hop learns the sender takes trailers).
    for name in HOP_BY_HOP.into_iter().filter(|&name| name != "te") {
        assert!(!headers.contains_key(name), "{name} passed the filter");
    }
});
