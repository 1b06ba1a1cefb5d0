//! The S3 export (issue 12): each environment's records and logs, in batches, to S3. So far the
//! parts that need no network: the batch (gzip NDJSON and when it is due), the object key layout
//! and the bounded upload queue; the exporter that drives them from the lifecycle follows.

pub mod batch;
pub mod exporter;
pub mod key;
pub mod logs;
pub mod queue;
