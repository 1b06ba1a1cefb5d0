//! Amazon S3 for the export (issue 12): what it takes to put an object, step by step. So far the
//! request signer; the client and the credentials follow.

pub mod sigv4;
