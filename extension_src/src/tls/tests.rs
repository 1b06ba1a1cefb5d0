#![allow(clippy::unwrap_used)]

use super::*;

fn testdata(name: &str) -> String {
    format!("{}/testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn this_machine_has_what_graviola_needs_and_the_built_in_roots_load() {
    // The machines the tests run on (and Lambda's) have these features; a CPU without one is
    // covered by `Tls::new` refusing instead of graviola aborting the process.
    assert_eq!(missing_cpu_feature(), None);
    let tls = Tls::new(None).unwrap();
    assert!(tls.config.alpn_protocols.is_empty());
}

#[test]
fn a_named_cert_file_replaces_the_built_in_roots() {
    assert!(Tls::new(Some(&testdata("ca.pem"))).is_ok());
}

#[test]
fn a_cert_file_that_cannot_be_used_says_so_with_its_path() {
    let missing = testdata("no-such.pem");
    let err = Tls::new(Some(&missing)).unwrap_err();
    assert!(err.contains(&missing), "{err}");
    // A key is PEM but not a certificate.
    let key = testdata("server.key");
    let err = Tls::new(Some(&key)).unwrap_err();
    assert!(err.contains(&key) && err.contains("no usable CA certificate"), "{err}");
}
