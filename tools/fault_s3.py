"""A stand-in for S3 on loopback that answers PUTs with the faults moto cannot produce: S3's error
answers (a status and its XML error code), slow answers, no answer at all, a connection closed
mid-request. The export's fault tests (tests/local/test_export_faults.py) point the extension at it.

    with FaultS3(Fault.error(500, "InternalError")) as s3:               # every PUT: 500 InternalError
    with FaultS3(Fault.error(500, "InternalError"), Fault.stored()) as s3:  # the first, then stored
    with FaultS3(Fault.stored(delay=5)) as s3:    # stored, answered 5 s after the request came in
    with FaultS3(Fault.hang()) as s3:             # reads each request, never answers
    with FaultS3(Fault.close()) as s3:            # closes each connection halfway through the body

The n-th PUT gets the n-th fault; the last one repeats. Every PUT read is recorded (`puts`: its key,
its body or the part of it read, the fault it got, in order), and the bodies of those answered 200
are the bucket's objects (`objects`), as S3 would have stored them. Requests are addressed path-style
(`/<bucket>/<key>`, as the extension sends them to a named endpoint); signatures are not checked.
Waits (a delay, a hang) end when the server stops, so a test never waits for them.
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A hang lasts until the server stops, and never longer than this.
MAX_HANG_SECONDS = 120.0


@dataclass(frozen=True)
class Fault:
    """What one PUT gets: `status` with S3's error `code` (200: stored), after `delay` seconds;
    or, with `hangs`, no answer; or, with `closes`, the connection closed before the body is read."""

    status: int = 200
    code: str = ""
    delay: float = 0.0
    hangs: bool = False
    closes: bool = False

    @classmethod
    def stored(cls, delay: float = 0.0) -> "Fault":
        return cls(delay=delay)

    @classmethod
    def error(cls, status: int, code: str, delay: float = 0.0) -> "Fault":
        return cls(status=status, code=code, delay=delay)

    @classmethod
    def hang(cls) -> "Fault":
        return cls(hangs=True)

    @classmethod
    def close(cls) -> "Fault":
        return cls(closes=True)


@dataclass(frozen=True)
class Put:
    """One PUT as the server read it."""

    bucket: str
    key: str
    body: bytes
    fault: Fault


class FaultS3:
    def __init__(self, *faults: Fault) -> None:
        self.faults = faults or (Fault.stored(),)
        self.puts: list[Put] = []
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._put_read = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "FaultS3":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops serving; requests waiting (a delay, a hang) end without an answer."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def put_count(self) -> int:
        with self._lock:
            return len(self.puts)

    def wait_for_puts(self, count: int, timeout: float) -> bool:
        """Whether `count` PUTs have come in within `timeout` seconds; returns as soon as they have."""
        with self._put_read:
            return self._put_read.wait_for(lambda: len(self.puts) >= count, timeout)

    def keys_put(self) -> list[str]:
        """The key of every PUT read, in order (a key appears once per attempt)."""
        with self._lock:
            return [put.key for put in self.puts]

    def _next_fault(self, bucket: str, key: str) -> tuple[int, Fault]:
        with self._lock:
            n = len(self.puts)
            fault = self.faults[min(n, len(self.faults) - 1)]
            self.puts.append(Put(bucket, key, b"", fault))
            self._put_read.notify_all()
            return n, fault

    def _record_body(self, n: int, body: bytes) -> None:
        with self._lock:
            put = self.puts[n]
            self.puts[n] = Put(put.bucket, put.key, body, put.fault)

    def _store(self, key: str, body: bytes) -> None:
        with self._lock:
            self.objects[key] = body


def _error_document(code: str, key: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>injected by FaultS3</Message><Key>{key}</Key>"
        "<RequestId>FAULTS3</RequestId></Error>"
    ).encode()


def _handler_for(s3: FaultS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1: connections are kept between requests, as S3 keeps them.
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
            path = urllib.parse.urlsplit(self.path).path
            bucket, _, key = urllib.parse.unquote(path.lstrip("/")).partition("/")
            length = int(self.headers.get("Content-Length") or 0)
            n, fault = s3._next_fault(bucket, key)
            if fault.closes:
                # Half the body, then the connection closes with no answer.
                s3._record_body(n, self.rfile.read(length // 2))
                self.close_connection = True
                return
            body = self.rfile.read(length)
            s3._record_body(n, body)
            if fault.hangs:
                s3._stopping.wait(MAX_HANG_SECONDS)
                self.close_connection = True
                return
            if fault.delay and s3._stopping.wait(fault.delay):
                self.close_connection = True  # stopped first: no answer, nothing stored
                return
            if fault.status == 200:
                s3._store(key, body)
                self._answer(200, b"", {"ETag": '"fault-s3"'})
            else:
                self._answer(fault.status, _error_document(fault.code, key), {"Content-Type": "application/xml"})

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True  # the client went away: a delay outlived its patience

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
            pass

    return Handler
