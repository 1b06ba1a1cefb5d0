//! A second, minimal extension that is only a Runtime API proxy, built from this crate's parts.
//! The end-to-end tests put it between the invocation history extension's proxy and Lambda to
//! show that proxies chain:
//!
//! ```text
//! runtime -> invocation-history-extension proxy -> chain-proxy -> Runtime API
//! ```
//!
//! Environment: `CHAIN_PROXY_PORT` (required), `CHAIN_PROXY_UPSTREAM` (default
//! `AWS_LAMBDA_RUNTIME_API`). Lambda requires an extension's registered name to equal its file
//! name, so it registers under its own.

use std::sync::Arc;

use invocation_history::extensions_api::{Client, Event, EventType};
use invocation_history::history::Store;
use invocation_history::log::{Level, Logger};
use invocation_history::runtime_proxy::RuntimeProxy;
use invocation_history::time::system_clock;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    std::process::exit(runtime.block_on(run()));
}

async fn run() -> i32 {
    let log = Logger::stdout(Level::Info, "chain-proxy");
    let name = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_owned))
        .unwrap_or_default();
    let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let upstream = std::env::var("CHAIN_PROXY_UPSTREAM")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| runtime_api.clone());
    let port = std::env::var("CHAIN_PROXY_PORT").unwrap_or_default();
    let listener = match tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await {
        Ok(listener) => listener,
        Err(e) => {
            log.error("cannot listen", &[("error", e.to_string().as_str().into())]);
            return 1;
        }
    };
    // It records into a store of one that nobody reads: this proxy only forwards.
    let store = Arc::new(Store::new(1, system_clock()));
    let proxy = RuntimeProxy::start(listener, upstream, store, log.clone(), system_clock());

    let mut client = Client::new(&runtime_api);
    if let Err(e) = client.register(&name, &[EventType::Invoke, EventType::Shutdown]).await {
        log.error("cannot register", &[("error", e.to_string().as_str().into())]);
        return 1;
    }
    while let Ok(event) = client.next_event().await {
        if matches!(event, Event::Shutdown { .. }) {
            break;
        }
    }
    let stats = proxy.stats();
    println!(
        "chainproxy shutdown forwarded={} upstreamErrors={}",
        stats.forwarded, stats.upstream_errors
    );
    0
}
