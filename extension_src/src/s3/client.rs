//! `PutObject`, one attempt at a time: the request signed with SigV4 over the kept connection of
//! `http_client`, the answer classified so the exporter knows whether a retry can help.
//!
//! Endpoints: `http://host[:port]` (an S3-compatible server, the tests' moto), addressed
//! path-style (`/<bucket>/<key>`). AWS's own `https://s3.<region>.amazonaws.com` needs TLS, which
//! this build does not have yet: `Endpoint::parse` says so instead of failing at the first PUT.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::credentials::Provider;
use super::sigv4;
use crate::http_client::{self, Connection};
use crate::time::Timestamp;

/// S3's error answers are a short XML document; more is not read.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Where the bucket is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, also the signed `host` header.
    pub address: String,
}

impl Endpoint {
    /// `http://host[:port][/]`; an error says why not.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err("https endpoints need TLS, which this build of the extension does not have yet".to_owned());
        }
        let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err("expected http://host[:port], with no path".to_owned());
        }
        let address = match authority.rsplit_once(':') {
            Some((host, port)) if !authority.ends_with(']') => {
                port.parse::<u16>().map_err(|_| format!("invalid port {port:?}"))?;
                format!("{host}:{port}")
            }
            _ => format!("{authority}:80"),
        };
        Ok(Self { address })
    }
}

/// Why a PUT did not store the object.
#[derive(Debug)]
pub enum PutError {
    /// No credentials to sign with.
    Credentials(String),
    /// No answer: connection refused, reset, timed out.
    Transport(http_client::Error),
    /// S3 answered with an error; `code` is S3's (`AccessDenied`, `NoSuchBucket`, `SlowDown`, ...).
    Status { status: StatusCode, code: String },
}

impl PutError {
    /// Whether the same PUT may succeed later: the network, S3's 5xx, throttling, an expired
    /// token. Not: a missing bucket, a denied role, a malformed request.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Credentials(_) | Self::Transport(_) => true,
            Self::Status { status, code } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || matches!(
                        code.as_str(),
                        "RequestTimeout" | "SlowDown" | "ExpiredToken" | "RequestTimeTooSkewed"
                    )
            }
        }
    }
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Credentials(e) => write!(f, "credentials: {e}"),
            Self::Transport(e) => write!(f, "{e}"),
            Self::Status { status, code } if code.is_empty() => write!(f, "status {}", status.as_u16()),
            Self::Status { status, code } => write!(f, "status {}: {code}", status.as_u16()),
        }
    }
}

/// A bucket on an endpoint, with the credentials to write to it.
pub struct Bucket {
    endpoint: Endpoint,
    region: String,
    name: String,
    credentials: Provider,
    connection: Connection,
}

impl Bucket {
    #[must_use]
    pub fn new(endpoint: Endpoint, region: &str, name: &str, credentials: Provider) -> Self {
        let connection = Connection::new(&endpoint.address);
        Self {
            endpoint,
            region: region.to_owned(),
            name: name.to_owned(),
            credentials,
            connection,
        }
    }

    /// Puts `body` (gzip NDJSON) at `key`, signed at `now`, within `timeout`.
    pub async fn put_ndjson_gz(&mut self, key: &str, body: Bytes, now: Timestamp, timeout: Duration) -> Result<(), PutError> {
        let credentials = self.credentials.get(now).await.map_err(PutError::Credentials)?;
        let path = sigv4::encode_path(&format!("/{}/{key}", self.name));
        let payload_sha256 = sigv4::sha256_hex(&body);
        let amz_date = sigv4::amz_date(now);
        let mut headers: Vec<(&str, &str)> = vec![
            ("Host", &self.endpoint.address),
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
            ("x-amz-content-sha256", &payload_sha256),
            ("x-amz-date", &amz_date),
        ];
        if let Some(token) = &credentials.session_token {
            headers.push(("x-amz-security-token", token));
        }
        let request = sigv4::Request {
            method: "PUT",
            path: &path,
            query: "",
            headers: &headers,
            payload_sha256: &payload_sha256,
        };
        let authorization = sigv4::authorization(&request, &credentials, &self.region, "s3", &amz_date);
        headers.retain(|(name, _)| *name != "Host"); // the client writes Host itself
        headers.push(("Authorization", &authorization));
        let answer = self
            .connection
            .send(Method::PUT, &path, &headers, body, MAX_ANSWER_BYTES, Some(timeout))
            .await
            .map_err(PutError::Transport)?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(PutError::Status {
            status: answer.status,
            code: error_code(&answer.body),
        })
    }
}

/// The `<Code>` of S3's XML error document, when there is one.
fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.chars().filter(char::is_ascii_alphanumeric).take(64).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
