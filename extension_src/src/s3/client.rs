//! `PutObject`, one attempt at a time: the request signed with SigV4 over the kept connection of
//! `http_client`, the answer classified so the exporter knows whether a retry can help.
//!
//! Endpoints: AWS's own (`Endpoint::aws`: `https://s3.<region>.amazonaws.com`, the bucket
//! addressed virtual-hosted style as AWS recommends, or path-style when its name has a dot, which
//! S3's wildcard certificate cannot match), or one named (`Endpoint::parse`: `http://` or
//! `https://host[:port]`, an S3-compatible store or the tests' server, addressed path-style).

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::credentials::Provider;
use super::sigv4;
use crate::http_client::{self, Connection};
use crate::time::Timestamp;
use crate::tls::Tls;

/// S3's error answers are a short XML document; more is not read.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Where buckets are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The host as written in a URL (an IPv6 address in brackets).
    pub host: String,
    pub port: u16,
    pub https: bool,
    /// `<bucket>.<host>` rather than `<host>/<bucket>`.
    pub virtual_hosted: bool,
}

impl Endpoint {
    /// `http://host[:port][/]` or `https://...`, addressed path-style; an error says why not.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err("not an http:// or https:// URL".to_owned()),
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err("expected http(s)://host[:port], with no path".to_owned());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !authority.ends_with(']') => (host, port.parse::<u16>().map_err(|_| format!("invalid port {port:?}"))?),
            _ => (authority, if https { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err("no host".to_owned());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            https,
            virtual_hosted: false,
        })
    }

    /// S3's regional endpoint for buckets in `region`.
    pub fn aws(region: &str) -> Result<Self, String> {
        let valid = !region.is_empty() && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!("not a region name: {region}"));
        }
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Ok(Self {
            host: format!("s3.{region}.{domain}"),
            port: 443,
            https: true,
            virtual_hosted: true,
        })
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
    /// The `Host` header, signed.
    host: String,
    /// What comes before the key in a request's path: `/` or `/<bucket>/`.
    path_prefix: String,
    region: String,
    credentials: Provider,
    connection: Connection,
}

impl Bucket {
    /// The bucket `name` at `endpoint`; `tls` is what an `https` endpoint is reached with (an
    /// error without it).
    pub fn new(endpoint: &Endpoint, region: &str, name: &str, credentials: Provider, tls: Option<&Tls>) -> Result<Self, String> {
        let Addressing {
            host,
            address,
            host_header,
            path_prefix,
        } = Addressing::of(endpoint, name);
        let connection = if endpoint.https {
            let tls = tls.ok_or("an https endpoint needs TLS settings")?;
            Connection::with_tls(&address, &host, tls)?
        } else {
            Connection::new(&address)
        }
        .host_header(&host_header);
        Ok(Self {
            host: host_header,
            path_prefix,
            region: region.to_owned(),
            credentials,
            connection,
        })
    }

    /// Puts `body` (gzip NDJSON) at `key`, signed at `now`, within `timeout`.
    pub async fn put_ndjson_gz(&mut self, key: &str, body: Bytes, now: Timestamp, timeout: Duration) -> Result<(), PutError> {
        let credentials = self.credentials.get(now).await.map_err(PutError::Credentials)?;
        let path = sigv4::encode_path(&format!("{}{key}", self.path_prefix));
        let payload_sha256 = sigv4::sha256_hex(&body);
        let amz_date = sigv4::amz_date(now);
        let mut headers: Vec<(&str, &str)> = vec![
            ("Host", &self.host),
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

/// How requests for one bucket reach it.
#[derive(Debug, PartialEq, Eq)]
struct Addressing {
    /// The server's name, which its certificate must match.
    host: String,
    /// `host:port`, connected to.
    address: String,
    /// The `Host` header: the port only when it is not the scheme's, as the SDKs send it.
    host_header: String,
    /// What comes before the key in a request's path.
    path_prefix: String,
}

impl Addressing {
    fn of(endpoint: &Endpoint, bucket: &str) -> Self {
        // Virtual-hosted names must be one DNS label, so that S3's `*.s3.<region>` certificate holds.
        let (host, path_prefix) = if endpoint.virtual_hosted && !bucket.contains('.') {
            (format!("{bucket}.{}", endpoint.host), "/".to_owned())
        } else {
            (endpoint.host.clone(), format!("/{bucket}/"))
        };
        let address = format!("{host}:{}", endpoint.port);
        let default_port = if endpoint.https { 443 } else { 80 };
        let host_header = if endpoint.port == default_port {
            host.clone()
        } else {
            address.clone()
        };
        Self {
            host,
            address,
            host_header,
            path_prefix,
        }
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
