//! Amazon S3 for the export (issue 12): what it takes to put an object. The request signer
//! (`sigv4`), the function role's credentials (`credentials`) and one `PutObject` attempt
//! (`client`, over `crate::tls` for https endpoints).

pub mod client;
pub mod credentials;
#[cfg(test)]
pub(crate) mod fake;
pub mod sigv4;
