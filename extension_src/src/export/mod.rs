//! The S3 export (issue 12): each environment's records and logs, in batches, to S3. The exporter
//! (when to write and upload, what is counted), the batch (gzip NDJSON and when it is due), the
//! object key layout, the bounded upload queue and the log buffer (events waiting for their
//! invocation's line).

pub mod batch;
pub mod exporter;
pub mod key;
pub mod logs;
pub mod queue;
