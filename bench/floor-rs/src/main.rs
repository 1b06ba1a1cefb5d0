//! The benchmark's floor extension: registers for INVOKE and SHUTDOWN, then loops on
//! `/event/next` doing nothing with the events, and exits 0 at SHUTDOWN. The harness
//! (bench/run.py) runs it beside the same function as the invocation history extension and as no
//! extension at all, so the extension's overhead is read as ratios measured in one run.
//!
//! It speaks HTTP/1.1 itself over one kept-alive `TcpStream`: a client library would be cost the
//! floor is meant to exclude. It logs the start-up line in the shape of the extension's
//! (`msg=ready extension=<name> startupMs=<ms>`, from `main` to just before the first
//! `/event/next`), so one pattern parses both. Lambda requires the registered name to equal the
//! executable's file name.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const NAME: &str = "floor-extension";
const REGISTER_BODY: &str = r#"{"events":["INVOKE","SHUTDOWN"]}"#;
// Lambda's event bodies are a few hundred bytes; anything far larger is not an event to read.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const RETRY_PAUSE: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let started = Instant::now();
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        println!("level=ERROR msg=\"register failed\" extension={NAME} error=\"AWS_LAMBDA_RUNTIME_API is not set\"");
        return ExitCode::FAILURE;
    };
    let mut connection = Connection::new(&api);
    let register = format!(
        "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: {api}\r\nLambda-Extension-Name: {NAME}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{REGISTER_BODY}",
        REGISTER_BODY.len()
    );
    let identifier = match connection.exchange(register.as_bytes()) {
        Ok(Answer {
            status: 200,
            identifier: Some(identifier),
        }) => identifier,
        Ok(Answer {
            status: 200,
            identifier: None,
        }) => {
            println!("level=ERROR msg=\"register failed\" extension={NAME} error=\"no Lambda-Extension-Identifier header\"");
            return ExitCode::FAILURE;
        }
        Ok(Answer { status, .. }) => {
            println!("level=ERROR msg=\"register failed\" extension={NAME} status={status}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            println!("level=ERROR msg=\"register failed\" extension={NAME} error=\"{error}\"");
            return ExitCode::FAILURE;
        }
    };
    let next = format!("GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: {api}\r\nLambda-Extension-Identifier: {identifier}\r\n\r\n");
    let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!("level=INFO msg=ready extension={NAME} startupMs={startup_ms:.3}");

    loop {
        match connection.exchange(next.as_bytes()) {
            Ok(Answer { status: 200, .. }) => {
                if is_shutdown(connection.body()) {
                    println!("level=INFO msg=shutdown extension={NAME}");
                    return ExitCode::SUCCESS;
                }
            }
            // Wait a little and ask again (on a fresh connection after an error), never spin.
            Ok(_) | Err(_) => thread::sleep(RETRY_PAUSE),
        }
    }
}

/// What the floor needs from an answer; its body stays in the connection's buffer.
struct Answer {
    status: u16,
    identifier: Option<String>,
}

/// One kept-alive HTTP/1.1 connection to the Extensions API, opened again when it breaks or the
/// server closes it. Its buffers are reused, so the event loop allocates nothing per event.
struct Connection<'a> {
    address: &'a str,
    stream: Option<BufReader<TcpStream>>,
    line: String,
    body: Vec<u8>,
}

impl<'a> Connection<'a> {
    fn new(address: &'a str) -> Self {
        Self {
            address,
            stream: None,
            line: String::new(),
            body: Vec::new(),
        }
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        let result = self.try_exchange(request);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        let reader = match &mut self.stream {
            Some(reader) => reader,
            None => {
                let stream = TcpStream::connect(self.address)?;
                stream.set_nodelay(true)?;
                self.stream.insert(BufReader::new(stream))
            }
        };
        reader.get_mut().write_all(request)?;

        let status = read_status(reader, &mut self.line)?;
        let mut framing = Framing::UntilClose;
        let mut identifier = None;
        let mut keep_alive = true;
        let mut header_bytes = 0;
        loop {
            self.line.clear();
            header_bytes += read_line(reader, &mut self.line)?;
            if header_bytes > MAX_HEADER_BYTES {
                return Err(invalid("headers too large"));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid("malformed header"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let length = value.parse().map_err(|_| invalid("bad Content-Length"))?;
                framing = Framing::Length(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                framing = Framing::Chunked;
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if name.eq_ignore_ascii_case("lambda-extension-identifier") {
                identifier = Some(value.to_owned());
            }
        }

        self.body.clear();
        match framing {
            Framing::Length(length) => read_exact_into(reader, &mut self.body, length)?,
            Framing::Chunked => read_chunked(reader, &mut self.line, &mut self.body)?,
            Framing::UntilClose => {
                reader.take(MAX_BODY_BYTES as u64 + 1).read_to_end(&mut self.body)?;
                keep_alive = false;
            }
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(invalid("body too large"));
        }
        if !keep_alive {
            self.stream = None;
        }
        Ok(Answer { status, identifier })
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn read_status(reader: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<u16> {
    line.clear();
    read_line(reader, line)?;
    // "HTTP/1.1 200 OK"
    let mut parts = line.split_ascii_whitespace();
    match (parts.next(), parts.next().and_then(|code| code.parse().ok())) {
        (Some(version), Some(status)) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(invalid("malformed status line")),
    }
}

fn read_line(reader: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<usize> {
    let read = reader.by_ref().take(MAX_HEADER_BYTES as u64).read_line(line)?;
    if read == 0 {
        return Err(io::Error::new(ErrorKind::UnexpectedEof, "connection closed"));
    }
    Ok(read)
}

fn read_exact_into(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>, length: usize) -> io::Result<()> {
    if body.len() + length > MAX_BODY_BYTES {
        return Err(invalid("body too large"));
    }
    let start = body.len();
    body.resize(start + length, 0);
    reader.read_exact(&mut body[start..])
}

fn read_chunked(reader: &mut BufReader<TcpStream>, line: &mut String, body: &mut Vec<u8>) -> io::Result<()> {
    loop {
        line.clear();
        read_line(reader, line)?;
        let size = line.trim_end().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                line.clear();
                read_line(reader, line)?;
                if line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        read_exact_into(reader, body, size)?;
        line.clear();
        read_line(reader, line)?;
    }
}

/// Whether an event body's `eventType` is SHUTDOWN (`{"eventType":"SHUTDOWN",...}`).
fn is_shutdown(body: &[u8]) -> bool {
    const KEY: &[u8] = br#""eventType""#;
    let Some(at) = body.windows(KEY.len()).position(|window| window == KEY) else {
        return false;
    };
    let rest = body[at + KEY.len()..].trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else {
        return false;
    };
    rest.trim_ascii_start().starts_with(br#""SHUTDOWN""#)
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::is_shutdown;

    #[test]
    fn shutdown_is_read_from_the_event_type_only() {
        assert!(is_shutdown(
            br#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1}"#
        ));
        assert!(is_shutdown(br#"{ "eventType" : "SHUTDOWN" }"#));
        assert!(!is_shutdown(br#"{"eventType":"INVOKE","requestId":"SHUTDOWN"}"#));
        assert!(!is_shutdown(br#"{"requestId":"x"}"#));
    }
}
