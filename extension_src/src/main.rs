//! `invocation-history-extension`: a Lambda extension that records every invocation of its
//! execution environment and serves the history on `http://127.0.0.1:1203/invocations`.
//!
//! This file only wires: configuration from the process environment, a logger on stdout, a
//! current-thread runtime, the signals, real clocks; `lifecycle::run` does the rest.

use std::sync::Arc;

use invocation_history::config::Config;
use invocation_history::history::Store;
use invocation_history::lifecycle::{self, Options};
use invocation_history::log::Logger;
use invocation_history::time::{Timestamp, system_clock};

/// The registered name; Lambda requires it to equal the executable's file name.
const NAME: &str = "invocation-history-extension";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Read by /opt/invocation-history-wrapper; /tmp is private to the execution environment.
const PROXY_ADDRESS_FILE: &str = "/tmp/invocation-history-extension/runtime-proxy-address";

fn main() {
    let started = Timestamp::now();
    let getenv = |name: &str| std::env::var(name).ok();
    let (config, warnings) = Config::from_env(getenv);
    let log = Logger::stdout(config.log_level, NAME);
    // One thread: the extension's work is a few microseconds per event, and every thread is
    // memory the function pays for.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            log.error("cannot start the async runtime", &[("error", e.to_string().as_str().into())]);
            std::process::exit(1);
        }
    };
    let clock = system_clock();
    let store = Arc::new(Store::new(config.max_records, Arc::clone(&clock)));
    let options = Options {
        name: NAME,
        version: VERSION,
        config,
        warnings,
        log,
        store,
        getenv: Arc::new(getenv),
        started,
        clock,
        metrics_sink: Logger::stdout_sink(),
        proxy_address_file: Some(PROXY_ADDRESS_FILE.into()),
    };
    // The handlers go in before anything else runs: a SIGTERM during init still ends in the
    // summary line.
    let terminated = {
        let _context = runtime.enter();
        terminated()
    };
    let code = runtime.block_on(lifecycle::run(options, terminated));
    std::process::exit(code);
}

/// Installs the SIGTERM and SIGINT handlers now and returns a future that resolves on either (the
/// RIE and Lambda send SIGTERM when they stop the environment without a SHUTDOWN event). The
/// future never resolves when the handlers cannot be installed. Call it inside the runtime.
fn terminated() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}
