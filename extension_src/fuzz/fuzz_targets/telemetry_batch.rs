//! A telemetry batch applied to a store: never a panic, outside Managed Instances never a record
//! created, and whatever is held for unknown request ids stays within the store's bounds.
#![no_main]

use std::sync::{Arc, OnceLock};

use invocation_history::history::{MAX_PENDING_IDS, Source, Store};
use invocation_history::telemetry::{Applier, parse_batch};
use invocation_history::time::Timestamp;
use libfuzzer_sys::fuzz_target;

fn store() -> Arc<Store> {
    let store = Arc::new(Store::new(16, Arc::new(|| Timestamp(1_764_400_000_000_000_000))));
    store.begin("8476a536-e9f4-11e8-9739-2dfe598c3fcd", Source::Invoke, |_, _| {});
    store
}

fuzz_target!(|data: &[u8]| {
    static MANAGED: OnceLock<(Arc<Store>, Applier)> = OnceLock::new();
    let checked = parse_batch(data);
    let store = store();
    let applied = Applier::new(Arc::clone(&store), false, None).apply_batch(data);
    assert_eq!(checked.is_ok(), applied.is_ok(), "parsing alone and applying agree on what is malformed");
    let counts = store.counts();
    assert_eq!(counts.served, 1, "outside Managed Instances telemetry never creates records");
    assert!(counts.pending_updates <= MAX_PENDING_IDS as u64);

    // One long-lived Managed Instances store: bounds hold across many batches.
    let (managed, applier) = MANAGED.get_or_init(|| {
        let store = Arc::new(Store::new(64, Arc::new(|| Timestamp(1_764_400_000_000_000_000))));
        (Arc::clone(&store), Applier::new(store, true, None))
    });
    let _ = applier.apply_batch(data);
    let counts = managed.counts();
    assert!(counts.retained <= 64 && counts.pending_updates <= MAX_PENDING_IDS as u64);
});
