//! simulator-driver: runs the built extension as an external extension against the
//! `lambda-simulator` crate and checks that the records it serves carry what the simulator's
//! telemetry said.
//!
//! Usage: `simulator-driver --extension PATH [--invocations N] [--handler-ms MS] [--env NAME=VALUE]...`
//! (`--env` adds a variable to the extension's environment, e.g. the S3 export's settings).
//!
//! The driver starts the simulator (Runtime, Extensions and Telemetry APIs on 127.0.0.1, a free
//! port), launches the extension with the simulator's Lambda environment plus a free
//! `INVOCATION_HISTORY_EXTENSION_HTTP_PORT`, waits until the extension has registered, subscribed
//! and called `/event/next`, then plays the runtime itself over HTTP: N invocations, one at a
//! time, the second of which fails (`/invocation/{id}/error`), each taking `--handler-ms` (so the
//! simulator's whole-millisecond durations are not 0). It then reads `GET /invocations` and
//! `GET /environment` from the extension, sends SHUTDOWN (spindown) and waits for the extension to
//! exit. It prints one JSON document on stdout (records, environment, the simulator's captured
//! telemetry, the extension's log lines, exit code, checks) and exits 0 only when every check
//! passed. The extension's log goes to stderr as it comes, prefixed `[extension]`.
//!
//! Registration: lambda-simulator 0.2.0 reads the register body with axum's `Json` extractor
//! (src/extensions_api.rs:54), which answers 415 to a request without `Content-Type:
//! application/json`; AWS documents only `Lambda-Extension-Name` as required. The extension now
//! labels its JSON bodies (RFC 9110 §8.3), which Lambda and the RIE accept, so no patch is needed.
//!
//! What the simulator does not do, and so what this cannot test (lambda-simulator 0.2.0):
//! - no `errorType` in `platform.runtimeDone` / `platform.report` (src/telemetry.rs:99-141);
//! - `maxMemoryUsedMB` is always half the configured memory (src/runtime_api.rs:432);
//! - no `initDurationMs` in `platform.report` (src/runtime_api.rs:433);
//! - no timeouts: nothing ever emits status `timeout` (README "Current Limitations");
//! - durations are whole milliseconds (`num_milliseconds`, src/runtime_api.rs:336, 422), so a
//!   sub-millisecond invocation reports `durationMs` 0 and `billedDurationMs` 0;
//! - SHUTDOWN is considered handled when the extension polls `/event/next` again
//!   (src/extensions_api.rs:178-181), not when it exits as on Lambda; the driver therefore waits
//!   for the process to exit and does not wait for the simulator's shutdown to finish.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_simulator::{InvocationBuilder, ShutdownReason, Simulator, TelemetryEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const EXTENSION_NAME: &str = "invocation-history-extension";
const MEMORY_MB: u32 = 256;
/// Lambda's shutdown budget for external extensions (2,000 ms).
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(2000);
/// How long any one wait may take before the driver gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    extension: PathBuf,
    invocations: usize,
    handler_ms: u64,
    /// Extra variables for the extension.
    env: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut extension = None;
    let mut invocations = 4usize;
    let mut handler_ms = 20u64;
    let mut env = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--extension" => extension = Some(PathBuf::from(value("--extension")?)),
            "--invocations" => {
                invocations = value("--invocations")?
                    .parse()
                    .map_err(|e| format!("--invocations: {e}"))?
            }
            "--handler-ms" => {
                handler_ms = value("--handler-ms")?
                    .parse()
                    .map_err(|e| format!("--handler-ms: {e}"))?
            }
            "--env" => {
                let pair = value("--env")?;
                let (name, val) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--env {pair}: want NAME=VALUE"))?;
                env.push((name.to_owned(), val.to_owned()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let extension = extension.ok_or("--extension PATH is required")?;
    if invocations < 2 {
        return Err("--invocations must be at least 2 (one success, one error)".into());
    }
    Ok(Args {
        extension,
        invocations,
        handler_ms,
        env,
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The outcome the driver's runtime gives invocation i: the second one fails.
fn outcome(i: usize) -> &'static str {
    if i == 1 { "error" } else { "success" }
}

#[derive(Default)]
struct Checks(Vec<Value>);

impl Checks {
    fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        let (name, detail) = (name.into(), detail.into());
        eprintln!(
            "[driver] {} {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        self.0
            .push(json!({"name": name, "ok": ok, "detail": detail}));
    }
    fn all_ok(&self) -> bool {
        self.0.iter().all(|c| c["ok"] == true)
    }
}

/// The driver's runtime: fetches `n` invocations and answers each after `handler_ms`, with an
/// error when the payload says so. Runs until `n` invocations are answered.
async fn run_runtime(api: String, n: usize, handler_ms: u64) -> Result<Vec<Value>, String> {
    let client = reqwest::Client::new();
    let base = format!("http://{api}/2018-06-01/runtime/invocation");
    let mut done = Vec::new();
    for _ in 0..n {
        let resp = client
            .get(format!("{base}/next"))
            .send()
            .await
            .map_err(|e| format!("runtime /next: {e}"))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let request_id = header("Lambda-Runtime-Aws-Request-Id");
        let deadline_ms = header("Lambda-Runtime-Deadline-Ms");
        let payload: Value = resp
            .json()
            .await
            .map_err(|e| format!("runtime /next body: {e}"))?;
        tokio::time::sleep(Duration::from_millis(handler_ms)).await;
        let status = if payload["outcome"] == "error" {
            let body = json!({"errorType": "Handler.SimulatedError", "errorMessage": "the driver's runtime failed this one on purpose"});
            client
                .post(format!("{base}/{request_id}/error"))
                .header(
                    "Lambda-Runtime-Function-Error-Type",
                    "Handler.SimulatedError",
                )
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| format!("runtime /error: {e}"))?
                .status()
        } else {
            client
                .post(format!("{base}/{request_id}/response"))
                .body(json!({"ok": true, "index": payload["index"]}).to_string())
                .send()
                .await
                .map_err(|e| format!("runtime /response: {e}"))?
                .status()
        };
        done.push(json!({"requestId": request_id, "deadlineMs": deadline_ms, "answerStatus": status.as_u16()}));
    }
    Ok(done)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: {e}: {body}"))
}

fn report_for<'a>(events: &'a [TelemetryEvent], request_id: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.event_type == "platform.report" && e.record["requestId"] == request_id)
        .map(|e| &e.record)
}

/// A metric of the simulator's report as the extension should have stored it: Lambda's metrics
/// are positive, and the extension omits a field it does not know, so 0 means "absent".
fn expected_metric(report: &Value, name: &str) -> Value {
    match report["metrics"][name].as_f64() {
        Some(v) if v > 0.0 => report["metrics"][name].clone(),
        _ => Value::Null,
    }
}

fn same_number(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a.is_null() && b.is_null(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("simulator-driver: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("simulator-driver: {e}");
            ExitCode::from(3)
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let mut checks = Checks::default();
    let started = Instant::now();

    // 1. The simulator, on 127.0.0.1 (its only bind address) and a free port.
    let sim = Simulator::builder()
        .function_name("simulator-function")
        .function_version("$LATEST")
        .memory_size_mb(MEMORY_MB)
        .region("us-east-1")
        .account_id("123456789012")
        .handler("bootstrap")
        .invocation_timeout(Duration::from_secs(3))
        .extension_ready_timeout(Duration::from_secs(2))
        .shutdown_timeout(SHUTDOWN_BUDGET)
        .build()
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    sim.enable_telemetry_capture().await;
    let env = sim.lambda_env_vars();
    let runtime_api = env["AWS_LAMBDA_RUNTIME_API"].clone();

    // 2. The extension, as Lambda starts it: the Lambda environment only, plus our port.
    let http_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let mut child = Command::new(&args.extension)
        .env_clear()
        .envs(&env)
        .env(
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT",
            http_port.to_string(),
        )
        .envs(args.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.extension.display()))?;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    for stream in [
        Box::new(child.stdout.take().expect("piped"))
            as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[extension] {line}");
                log.lock().expect("log lock").push(line);
            }
        });
    }

    // 3. Init: the extension registers, subscribes, and calls /event/next; only then does the
    //    runtime start (Lambda starts the runtime once every extension has registered; the
    //    simulator refuses registrations after the runtime's first /next).
    sim.wait_for(|| async { sim.extension_count().await >= 1 }, STEP_TIMEOUT)
        .await
        .map_err(|e| format!("the extension did not register: {e}"))?;
    let extension = sim.get_registered_extensions().await.remove(0);
    checks.check(
        "registered name",
        extension.name == EXTENSION_NAME,
        format!("{:?}", extension.name),
    );
    sim.wait_for(
        || async { sim.first_next_poll_at(&extension.id).await.is_some() },
        STEP_TIMEOUT,
    )
    .await
    .map_err(|e| format!("the extension never called /event/next: {e}"))?;
    let init_ms = started.elapsed().as_secs_f64() * 1000.0;

    // 4. The invocations, one at a time, each done (runtime answered, extension back on
    //    /event/next) before the next, as Lambda does it.
    let runtime = tokio::spawn(run_runtime(runtime_api, args.invocations, args.handler_ms));
    let mut invocations = Vec::new();
    for i in 0..args.invocations {
        let inv = InvocationBuilder::new()
            .payload(json!({"outcome": outcome(i), "index": i}))
            .timeout_ms(3000)
            .build()
            .map_err(|e| format!("invocation: {e}"))?;
        let request_id = sim.enqueue(inv).await;
        sim.wait_for_invocation_complete(&request_id, STEP_TIMEOUT)
            .await
            .map_err(|e| format!("invocation {request_id} did not complete: {e}"))?;
        sim.wait_for_extensions_ready(&request_id, STEP_TIMEOUT)
            .await
            .map_err(|e| {
                format!("the extension did not come back to /event/next after {request_id}: {e}")
            })?;
        invocations.push(json!({"requestId": request_id, "outcome": outcome(i)}));
    }
    let answered = runtime.await.map_err(|e| format!("runtime task: {e}"))??;

    // 5. Wait for the simulator to have emitted every report, then for the extension to have
    //    applied them (the simulator delivers every timeoutMs; the extension asks for 25 ms).
    let ids: Vec<String> = invocations
        .iter()
        .map(|v| v["requestId"].as_str().unwrap_or("").to_string())
        .collect();
    sim.wait_for(
        || async {
            sim.get_telemetry_events_by_type("platform.report")
                .await
                .len()
                >= ids.len()
        },
        STEP_TIMEOUT,
    )
    .await
    .map_err(|e| format!("the simulator did not report every invocation: {e}"))?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let records = loop {
        let answer = get_json(&client, &format!("{base}/invocations")).await?;
        let complete = ids.iter().all(|id| {
            answer["invocations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["awsRequestId"] == id.as_str() && r.get("billedDurationMs").is_some())
        });
        if complete || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let environment = get_json(&client, &format!("{base}/environment")).await?;
    let telemetry = sim.get_telemetry_events().await;

    // 6. Checks: every record carries what the simulator's platform.report said.
    let by_id: HashMap<&str, &Value> = records["invocations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["awsRequestId"].as_str().map(|id| (id, r)))
        .collect();
    for inv in &invocations {
        let id = inv["requestId"].as_str().unwrap_or("");
        let want_status = if inv["outcome"] == "error" {
            "error"
        } else {
            "success"
        };
        let Some(record) = by_id.get(id) else {
            checks.check(
                format!("record {id}"),
                false,
                "no record for this request id",
            );
            continue;
        };
        let Some(report) = report_for(&telemetry, id) else {
            checks.check(
                format!("report {id}"),
                false,
                "the simulator emitted no platform.report",
            );
            continue;
        };
        checks.check(
            format!("{id} status"),
            record["status"] == want_status && report["status"] == want_status,
            format!(
                "record {} / report {} / expected {want_status}",
                record["status"], report["status"]
            ),
        );
        for metric in [
            "durationMs",
            "billedDurationMs",
            "maxMemoryUsedMB",
            "initDurationMs",
        ] {
            let want = expected_metric(report, metric);
            let got = record.get(metric).cloned().unwrap_or(Value::Null);
            checks.check(
                format!("{id} {metric}"),
                same_number(&got, &want),
                format!("record {got} / report {want}"),
            );
        }
        // errorType: the record has one exactly when the report (or runtimeDone) had one.
        let sent = report.get("errorType").cloned().unwrap_or(Value::Null);
        let got = record.get("errorType").cloned().unwrap_or(Value::Null);
        checks.check(
            format!("{id} errorType"),
            got == sent,
            format!("record {got} / report {sent}"),
        );
        for field in ["deadlineMs", "invokedFunctionArn", "traceId"] {
            checks.check(
                format!("{id} {field}"),
                record.get(field).is_some(),
                format!("{}", record[field]),
            );
        }
    }
    checks.check(
        "environment telemetry on",
        environment["features"]["telemetry"] == "on",
        format!("{}", environment["features"]["telemetry"]),
    );
    checks.check(
        "environment initDurationMs from platform.initReport",
        environment["initDurationMs"].as_f64().is_some(),
        format!("{}", environment["initDurationMs"]),
    );

    // 7. SHUTDOWN: the extension must exit 0 within Lambda's budget.
    let shutdown_started = Instant::now();
    let shutdown = tokio::spawn(sim.graceful_shutdown(ShutdownReason::Spindown));
    let exit = tokio::time::timeout(SHUTDOWN_BUDGET + Duration::from_secs(3), child.wait()).await;
    let shutdown_ms = shutdown_started.elapsed().as_secs_f64() * 1000.0;
    let exit_code = match exit {
        Ok(Ok(status)) => status.code(),
        Ok(Err(e)) => return Err(format!("waiting for the extension: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    // The simulator would wait for a second /event/next the extension never sends (it exits, as
    // on Lambda); nothing is left to learn from it.
    shutdown.abort();
    checks.check(
        "extension exit code 0 after SHUTDOWN",
        exit_code == Some(0),
        format!("{exit_code:?}"),
    );
    checks.check(
        "extension exited within the shutdown budget",
        exit_code.is_some() && shutdown_ms < SHUTDOWN_BUDGET.as_secs_f64() * 1000.0,
        format!(
            "{shutdown_ms:.1} ms (budget {} ms)",
            SHUTDOWN_BUDGET.as_millis()
        ),
    );
    tokio::time::sleep(Duration::from_millis(50)).await; // the last log lines
    let log = log.lock().expect("log lock").clone();

    let ok = checks.all_ok();
    let doc = json!({
        "ok": ok,
        "extensionPort": http_port,
        "invocations": invocations,
        "runtime": answered,
        "records": records,
        "environment": environment,
        "telemetry": telemetry,
        "extensionLog": log,
        "extensionExitCode": exit_code,
        "initMs": init_ms,
        "shutdownToExitMs": shutdown_ms,
        "totalMs": started.elapsed().as_secs_f64() * 1000.0,
        "checks": checks.0,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
    );
    Ok(ok)
}
