//! The function role's credentials, as Lambda gives them to every process of the environment:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, or, where those are absent
//! (SnapStart), the container credentials endpoint `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the
//! token from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;

use super::sigv4::Credentials;
use crate::http_client::Connection;
use crate::time::Timestamp;

pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const ENV_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub const ENV_AUTH_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
pub const ENV_AUTH_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";

/// Credentials are fetched again this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The endpoint's answer is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 16 << 10;
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where credentials come from.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// The environment's own variables; they do not change while the process lives.
    Environment(Credentials),
    /// The container credentials endpoint: `host:port`, path, and the authorization token.
    Endpoint {
        address: String,
        path: String,
        token: Option<String>,
    },
}

impl Source {
    /// Finds the source in the environment; an error names the variable and why.
    pub fn from_env(getenv: impl Fn(&str) -> Option<String>, read_file: impl Fn(&str) -> std::io::Result<String>) -> Result<Self, String> {
        let nonempty = |name: &str| getenv(name).filter(|v| !v.is_empty());
        if let (Some(access_key_id), Some(secret_access_key)) = (nonempty(ENV_ACCESS_KEY_ID), nonempty(ENV_SECRET_ACCESS_KEY)) {
            return Ok(Self::Environment(Credentials {
                access_key_id,
                secret_access_key,
                session_token: nonempty(ENV_SESSION_TOKEN),
            }));
        }
        let Some(uri) = nonempty(ENV_FULL_URI) else {
            return Err(format!(
                "no credentials: {ENV_ACCESS_KEY_ID}/{ENV_SECRET_ACCESS_KEY} and {ENV_FULL_URI} are unset"
            ));
        };
        let (address, path) = parse_endpoint(&uri).map_err(|why| format!("{ENV_FULL_URI}={uri:?}: {why}"))?;
        let token = match nonempty(ENV_AUTH_TOKEN_FILE) {
            Some(file) => Some(
                read_file(&file)
                    .map(|t| t.trim().to_owned())
                    .map_err(|e| format!("{ENV_AUTH_TOKEN_FILE}={file:?}: {e}"))?,
            ),
            None => nonempty(ENV_AUTH_TOKEN),
        };
        Ok(Self::Endpoint { address, path, token })
    }
}

/// `http://host:port/path` to `(host:port, /path)`; only the addresses the AWS SDKs accept for
/// plain HTTP: loopback, ECS's 169.254.170.2, EKS's 169.254.170.23 and fd00:ec2::23.
fn parse_endpoint(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or("only http:// to a loopback or the container endpoint's link-local address is supported")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => (host, port.parse::<u16>().map_err(|_| "no valid port")?),
        _ => (authority, 80),
    };
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let allowed = host == "localhost"
        || ip.parse::<IpAddr>().is_ok_and(|ip| {
            ip.is_loopback()
                || ip == IpAddr::from([169, 254, 170, 2])
                || ip == IpAddr::from([169, 254, 170, 23])
                || ip == IpAddr::from(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23))
        });
    if host.is_empty() || !allowed {
        return Err(format!("{host:?} is neither a loopback nor a container credentials address"));
    }
    let authority = format!("{host}:{port}");
    Ok((authority, if path.is_empty() { "/".to_owned() } else { path.to_owned() }))
}

/// Credentials with their expiry, fetched again when it nears.
pub struct Provider {
    source: Source,
    cached: Option<(Credentials, Option<Timestamp>)>,
    connection: Option<Connection>,
}

/// The endpoint's answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointAnswer {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

impl Provider {
    #[must_use]
    pub fn new(source: Source) -> Self {
        Self {
            source,
            cached: None,
            connection: None,
        }
    }

    /// Credentials valid at `now` for a while longer.
    pub async fn get(&mut self, now: Timestamp) -> Result<Credentials, String> {
        let (address, path, token) = match &self.source {
            Source::Environment(credentials) => return Ok(credentials.clone()),
            Source::Endpoint { address, path, token } => (address, path, token),
        };
        let margin = i64::try_from(REFRESH_MARGIN.as_nanos()).unwrap_or(i64::MAX);
        if let Some((credentials, expires)) = &self.cached
            && expires.is_none_or(|at| now.0 < at.0.saturating_sub(margin))
        {
            return Ok(credentials.clone());
        }
        let connection = self.connection.get_or_insert_with(|| Connection::new(address));
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("Authorization", t.as_str())).collect();
        let answer = connection
            .send(Method::GET, path, &headers, Bytes::new(), MAX_ANSWER_BYTES, Some(FETCH_TIMEOUT))
            .await
            .map_err(|e| format!("credentials endpoint: {e}"))?;
        if !answer.status.is_success() {
            return Err(format!("credentials endpoint: status {}", answer.status.as_u16()));
        }
        let got: EndpointAnswer = serde_json::from_slice(&answer.body).map_err(|e| format!("credentials endpoint: {e}"))?;
        if got.access_key_id.is_empty() || got.secret_access_key.is_empty() {
            return Err("credentials endpoint: empty AccessKeyId or SecretAccessKey".to_owned());
        }
        let credentials = Credentials {
            access_key_id: got.access_key_id,
            secret_access_key: got.secret_access_key,
            session_token: got.token.filter(|t| !t.is_empty()),
        };
        let expires = got.expiration.as_deref().and_then(Timestamp::parse_rfc3339);
        self.cached = Some((credentials.clone(), expires));
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests;
