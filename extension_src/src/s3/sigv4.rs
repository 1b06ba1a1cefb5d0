//! AWS Signature Version 4 for one request, header-based, as S3 takes it
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>).
//!
//! The caller names every header to sign (for S3: `host`, `x-amz-content-sha256`, `x-amz-date`,
//! `x-amz-security-token` when there is one, and the content headers it sends) and gives the
//! path already URI-encoded as it goes on the wire: S3 signs that path as sent, encoded once and
//! never normalised. Checked against AWS's published S3 examples and the SigV4 test suite.

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::time::Timestamp;

/// The signing algorithm's name, first in the string to sign and in `Authorization`.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The key pair and, for temporary credentials, the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    /// Never the secret, never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// What is signed.
pub struct Request<'a> {
    pub method: &'a str,
    /// URI-encoded as sent (see `encode_path`).
    pub path: &'a str,
    /// Canonical: `name=value` pairs, encoded, sorted, joined by `&` (empty for S3 PUTs).
    pub query: &'a str,
    /// Every header to sign, any case; values as sent.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lowercase hex SHA-256 of the body (`sha256_hex`), or `UNSIGNED-PAYLOAD`.
    pub payload_sha256: &'a str,
}

/// The `Authorization` header's value for `request`, signed at `amz_date` (`amz_date()`) for
/// `region` and `service`.
#[must_use]
pub fn authorization(request: &Request<'_>, credentials: &Credentials, region: &str, service: &str, amz_date: &str) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let date = amz_date.get(..8).unwrap_or_default();
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let mut key = hmac(format!("AWS4{}", credentials.secret_access_key).as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The canonical request and the signed-header list.
#[must_use]
pub fn canonical_request(request: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    let mut signed = String::new();
    // A repeated header is one line with its values joined by commas, in the order sent.
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 && headers[i - 1].0 == *name {
            canonical_headers.pop(); // the previous line's '\n'
            canonical_headers.push(',');
        } else {
            if !signed.is_empty() {
                signed.push(';');
            }
            signed.push_str(name);
            canonical_headers.push_str(name);
            canonical_headers.push(':');
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
        request.method, request.path, request.query, request.payload_sha256
    );
    (canonical, signed)
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC, as `x-amz-date` wants it.
#[must_use]
pub fn amz_date(time: Timestamp) -> String {
    let Some((text, _)) = time.rfc3339() else {
        return String::new();
    };
    // "YYYY-MM-DDTHH:MM:SS..." → "YYYYMMDDTHHMMSSZ"
    let pick = [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 14, 15, 17, 18];
    let mut out: String = pick.iter().map(|&i| char::from(text[i])).collect();
    out.push('Z');
    out
}

/// `path` with every byte but `A-Z a-z 0-9 - _ . ~ /` percent-encoded, once: S3's canonical URI
/// is the path as sent, so the same string goes on the wire.
#[must_use]
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lowercase hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// AWS's S3 examples ("Signature Calculations for the Authorization Header: Transferring
    /// Payload in a Single Chunk"): their key pair and instant.
    fn s3_example_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn the_s3_put_object_example() {
        let body = b"Welcome to Amazon S3.";
        let payload = sha256_hex(body);
        assert_eq!(payload, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let path = encode_path("/test$file.text");
        assert_eq!(path, "/test%24file.text");
        let request = Request {
            method: "PUT",
            path: &path,
            query: "",
            headers: &[
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ("x-amz-content-sha256", &payload),
            ],
            payload_sha256: &payload,
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(signed, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
        );
        assert_eq!(
            authorization(&request, &s3_example_credentials(), "us-east-1", "s3", "20130524T000000Z"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn the_s3_get_object_example() {
        let request = Request {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            payload_sha256: EMPTY_SHA256,
        };
        let got = authorization(&request, &s3_example_credentials(), "us-east-1", "s3", "20130524T000000Z");
        assert!(
            got.ends_with("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
            "{got}"
        );
    }

    /// The SigV4 test suite (smithy-rs `aws-sigv4/aws-signing-test-suite/v4`): its context.
    fn suite_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(Into::into),
        }
    }

    #[test]
    fn the_suite_get_vanilla_cases() {
        let vanilla = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            payload_sha256: EMPTY_SHA256,
        };
        let got = authorization(&vanilla, &suite_credentials(None), "us-east-1", "service", "20150830T123600Z");
        assert!(
            got.ends_with("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            "{got}"
        );

        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let with_token = Request {
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
                ("X-Amz-Security-Token", token),
            ],
            ..vanilla
        };
        let got = authorization(
            &with_token,
            &suite_credentials(Some(token)),
            "us-east-1",
            "service",
            "20150830T123600Z",
        );
        assert!(got.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"), "{got}");
        assert!(
            got.ends_with("Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"),
            "{got}"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_repeats_joined() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[("My-Header1", "  value1  with   spaces "), ("b", "2"), ("B", "1")],
            payload_sha256: EMPTY_SHA256,
        };
        let (canonical, signed) = canonical_request(&request);
        assert!(
            canonical.contains("\nb:2,1\nmy-header1:value1 with spaces\n\nb;my-header1\n"),
            "{canonical}"
        );
        assert_eq!(signed, "b;my-header1");
    }

    #[test]
    fn amz_date_and_path_encoding() {
        // 2013-05-24T00:00:00Z
        assert_eq!(amz_date(Timestamp(1_369_353_600_000_000_000)), "20130524T000000Z");
        assert_eq!(
            amz_date(Timestamp(1_369_353_600_123_000_000 + 3_723_000_000_000)),
            "20130524T010203Z"
        );
        assert_eq!(
            encode_path("/bucket/p/function=f n/date=2026-11-29/x.ndjson.gz"),
            "/bucket/p/function%3Df%20n/date%3D2026-11-29/x.ndjson.gz"
        );
        assert_eq!(encode_path("/ü~"), "/%C3%BC~");
    }

    #[test]
    fn credentials_never_show_the_secret() {
        let shown = format!("{:?}", suite_credentials(Some("the-session-token-value")));
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalr") && !shown.contains("the-session-token-value"), "{shown}");
    }
}
