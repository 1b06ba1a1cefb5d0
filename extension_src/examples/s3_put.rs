//! Puts one file into a bucket the way the exporter does (path-style, SigV4, the function role's
//! credentials from the environment), so tests can check the signing against a real S3 server
//! (moto): `s3_put <http(s)://endpoint> <region> <bucket> <key> <file>`. Prints the outcome. An
//! https endpoint's certificate is checked against `SSL_CERT_FILE`'s CAs when it is set, as the
//! extension does.

use std::time::Duration;

use bytes::Bytes;
use invocation_history::s3::client::{Bucket, Endpoint};
use invocation_history::s3::credentials::{Provider, Source};
use invocation_history::time::Timestamp;
use invocation_history::tls::Tls;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, region, bucket, key, file] = args.as_slice() else {
        eprintln!("usage: s3_put <http(s)://endpoint> <region> <bucket> <key> <file>");
        std::process::exit(2);
    };
    let endpoint = Endpoint::parse(endpoint).unwrap_or_else(|e| fail(&e));
    let source =
        Source::from_env(|name: &str| std::env::var(name).ok(), |path: &str| std::fs::read_to_string(path)).unwrap_or_else(|e| fail(&e));
    let tls = endpoint
        .https
        .then(|| Tls::new(std::env::var("SSL_CERT_FILE").ok().as_deref()).unwrap_or_else(|e| fail(&e)));
    let body = std::fs::read(file).unwrap_or_else(|e| fail(&e.to_string()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let outcome = runtime.block_on(async {
        let mut bucket = Bucket::new(&endpoint, region, bucket, Provider::new(source), tls.as_ref()).unwrap_or_else(|e| fail(&e));
        bucket
            .put_ndjson_gz(key, Bytes::from(body), Timestamp::now(), Duration::from_secs(5))
            .await
    });
    match outcome {
        Ok(()) => println!("ok"),
        Err(e) => {
            println!("error retryable={} {e}", e.is_retryable());
            std::process::exit(1);
        }
    }
}

fn fail(why: &str) -> ! {
    eprintln!("s3_put: {why}");
    std::process::exit(2);
}
