//! Heap bytes per record, measured with a counting allocator over a full store of Lambda-shaped
//! records (UUID request id, the function's ARN, an X-Ray trace header, telemetry's fields).
//! `make bench` runs this (`cargo test --release --test memory -- --nocapture`) and reads the
//! `heap_per_record_bytes=` line; the target lives there, not here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use invocation_history::history::{Source, Status, Store};
use invocation_history::time::Timestamp;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RECORDS: usize = 10_000;
const ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:invocation-history-sample-python";

fn request_id(n: usize) -> String {
    format!("{:08x}-e9f4-41e8-9739-{:012x}", n * 2_654_435_761 % 0xffff_ffff, n)
}

fn trace(n: usize) -> String {
    format!(
        "Root=1-6740f1a{}-bd862e3fe1be46a99427{n:04x};Parent=53995c3f42cd{n:04x};Sampled=1",
        n % 10
    )
}

#[test]
fn heap_per_record_of_a_full_store() {
    let clock = Arc::new(|| Timestamp(1_764_400_000_000_000_000));
    let before = LIVE.load(Ordering::SeqCst);
    let store = Store::new(RECORDS, clock);
    for n in 0..RECORDS {
        let id = request_id(n);
        let trace = trace(n);
        store.begin(&id, Source::Invoke, |r, _| {
            r.deadline_ms = 1_764_400_003_000;
            r.invoked_function_arn = Some(Arc::from(ARN));
            r.set_trace_id(&trace);
        });
        store.update(&id, 0, |r| {
            r.status = Some(Status::Success);
            r.duration_ms = 1.234;
            r.billed_duration_ms = 2;
            r.max_memory_used_mb = 41;
        });
    }
    let per_record = (LIVE.load(Ordering::SeqCst) - before) as f64 / RECORDS as f64;
    println!("heap_per_record_bytes={per_record:.1}");

    let records = store.records();
    assert_eq!(records.len(), RECORDS);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(n, r)| r.request_id.to_string() == request_id(n) && r.trace_id.as_ref().map(ToString::to_string) == Some(trace(n)))
    );
    // The budget behind the bench's target (docs/performance.md): a deterministic count, not a timing.
    assert!(per_record > 0.0 && per_record <= 200.0, "{per_record} bytes per record");
}
