//! A full store of 10,000 Lambda-shaped records (4.3 MB of JSON), for profiling the list path:
//! `serve_full_store` prints the local API's port and serves it (drive it with bench/loadgen,
//! watch it with `perf` or `strace -c`); `serve_full_store encode` prints the best of 50 encodings
//! of the whole store. Build it as the layer is built (release, musl) to see what users get.
use std::sync::Arc;
use std::time::Duration;

use invocation_history::history::{Source, Status, Store};
use invocation_history::local_api::{self, Environment, LocalApi};
use invocation_history::log::{Level, Logger};
use invocation_history::time::Timestamp;

const ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:invocation-history-sample-python";

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = Arc::new(Store::new(10_000, Arc::new(Timestamp::now)));
        let arn: Arc<str> = Arc::from(ARN);
        for n in 0..10_000usize {
            let id = format!("{:08x}-e9f4-41e8-9739-{:012x}", n * 2_654_435_761 % 0xffff_ffff, n);
            let trace = format!(
                "Root=1-6740f1a{}-bd862e3fe1be46a99427{n:04x};Parent=53995c3f42cd{n:04x};Sampled=1",
                n % 10
            );
            store.begin(&id, Source::Invoke, |r, _| {
                r.deadline_ms = 1_764_400_003_000;
                r.invoked_function_arn = Some(Arc::clone(&arn));
                r.set_trace_id(&trace);
            });
            store.update(&id, 0, |r| {
                r.status = Some(Status::Success);
                r.duration_ms = 1.234;
                r.billed_duration_ms = 2;
                r.max_memory_used_mb = 41;
            });
        }
        if std::env::args().nth(1).as_deref() == Some("encode") {
            let mut out = Vec::with_capacity(8 << 20);
            let mut best = Duration::MAX;
            for _ in 0..50 {
                out.clear();
                let start = std::time::Instant::now();
                store.visit(0, u64::MAX, usize::MAX, |r| local_api::write_record(&mut out, r));
                best = best.min(start.elapsed());
            }
            println!("encode best of 50: {best:?} for {} bytes", out.len());
            return;
        }
        let listener = local_api::bind(0).await.expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        let log = Logger::new(Level::Info, "probe", Logger::stdout_sink());
        let _api = LocalApi::start(listener, store, Environment::default(), Duration::from_secs(1), log);
        std::future::pending::<()>().await;
    });
}
