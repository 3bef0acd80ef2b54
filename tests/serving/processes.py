"""A real ``python -m skillmaker serve`` process with an open-file limit, and raw slow clients."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from skillmaker.evaluation.launch import free_port, wait_ready


@dataclass(frozen=True)
class ServerProcess:
    """A served bundle: its URL, its process and the file its output goes to."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def serve_process(
    bundle: Path, log: Path, args: Sequence[str] = (), open_files: int | None = None
) -> Iterator[ServerProcess]:
    """Serve a bundle in a subprocess (``open_files``: its RLIMIT_NOFILE) until the block ends."""
    port = free_port()
    # The limit is set inside the child before skillmaker starts (no preexec_fn with threads).
    start = (
        "import resource, runpy, sys; limit = int(sys.argv.pop(1)); "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)) if limit else None; "
        "runpy.run_module('skillmaker', run_name='__main__')"
    )
    command = [
        sys.executable, "-c", start, str(open_files or 0), "serve", "--model", str(bundle),
        "--port", str(port), *args,
    ]  # fmt: skip
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready([("server", url)], time.monotonic() + 120, alive={"server": process})
            yield ServerProcess(url, port, process, log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def slow_client(port: int, first_bytes: bytes) -> socket.socket:
    """Give a connected socket that has sent ``first_bytes`` of a request and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(first_bytes)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes | None:
    """Give what the server sent before closing the socket, or None if it stayed open."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


PARTIAL_HEAD = b"GET /v2/health/live HTTP/1.1\r\nHost: slow\r\n"


def partial_body_head(length: int = 1000) -> bytes:
    """Give a whole request head of a POST /predict whose body of ``length`` bytes never comes."""
    return (
        b"POST /predict HTTP/1.1\r\nHost: slow\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + b"\x89PNG\r\n"
    )
