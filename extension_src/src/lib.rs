//! The invocation history extension as a library: `main.rs` only wires these parts, so tests
//! drive them directly. One module per contract (docs/architecture.md); the store (`history`)
//! depends on the standard library only, everything else feeds it or reads it.

pub mod config;
pub mod export;
pub mod extensions_api;
pub mod history;
pub mod http_client;
pub mod lifecycle;
pub mod local_api;
pub mod log;
pub mod metrics;
pub mod percent;
pub mod runtime_proxy;
pub mod s3;
pub mod serve;
pub mod telemetry;
pub mod time;
pub mod tls;
