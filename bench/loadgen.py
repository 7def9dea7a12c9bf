"""A light HTTP/1.1 load generator: N clients, each on ONE keep-alive mTLS connection, over a few processes.

Why our own: the compiled load tools in Debian either cannot present a client certificate (h2load,
hey, wrk, httperf) or cannot keep a connection alive against this server (ab speaks HTTP/1.0, and
uvicorn closes HTTP/1.0 connections after each response). So this is plain asyncio with
pre-built request bytes and a minimal response parser, one event loop per process, and the
clients split over processes so the generator stays well under one core (its CPU is measured and
reported with every result).

Timing: the parent starts the workers, waits until every connection has finished its TLS
handshake, then hands all workers the same window on the system-wide monotonic clock: a warm-up
(responses discarded) followed by the measurement window. A response counts if it completes
inside the window; its latency is from writing the request to reading the last body byte.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from servers import ClientFiles

CONNECT_TIMEOUT_SECONDS = 30.0
RESULT_GRACE_SECONDS = 30.0  # after the window: time for in-flight requests to end and results to arrive
RETRY_PAUSE_SECONDS = 0.01
TRANSPORT_ERROR = "transport"  # status key for failures below HTTP (reset, TLS error, unframed response)


class LoadFailed(RuntimeError):
    """The load generator could not run (connect failed, a worker died); distinct from request errors."""


@dataclass(frozen=True)
class Workload:
    """One request shape, sent over and over: method, path and an optional JSON body.

    If `unique_marker` is set, every request gets its own copy of the body with the marker
    replaced by fresh random hex of the same length (used to give each CREATE its own
    generateName prefix, see bench/apiserver.py).
    """

    method: str
    path: str
    body: bytes | None = None
    unique_marker: bytes | None = None

    def __post_init__(self) -> None:
        if self.unique_marker is not None and (self.body is None or self.unique_marker not in self.body
                                               or len(self.unique_marker) % 2):
            raise ValueError("unique_marker must have an even length and occur in the body")

    def request_maker(self, host: str, port: int) -> Callable[[], bytes]:
        """A function returning the bytes of the next request."""
        head = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json",
                "User-Agent: securekube-bench"]
        if self.body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("ascii")
        body, marker = self.body or b"", self.unique_marker
        if marker is None:
            fixed = head_bytes + body
            return lambda: fixed
        size = len(marker) // 2
        return lambda: head_bytes + body.replace(marker, os.urandom(size).hex().encode("ascii"))


@dataclass(frozen=True)
class Window:
    """The measurement schedule, in seconds."""

    warmup: float
    measure: float


@dataclass
class WorkerResult:
    """What one worker process saw inside the measurement window."""

    latencies: list[float] = field(default_factory=list)  # seconds, 2xx responses only
    errors: Counter[str] = field(default_factory=Counter)  # non-2xx status code (as text) or "transport"
    reconnects: int = 0  # keep-alive broken (server closed or error); each is also visible in errors or here
    cpu_seconds: float = 0.0  # this process's CPU time during the window


@dataclass(frozen=True)
class LoadResult:
    """One measured run of one workload at one concurrency against one server."""

    requests_per_second: float  # 2xx responses only: an error is not throughput
    latencies: tuple[float, ...]  # sorted, seconds
    errors: dict[str, int]
    reconnects: int
    loadgen_cpu: float  # CPU seconds of all worker processes per second of window (1.0 = one core)
    server_cpu: float  # same, for the server process
    other_cpu: float  # same, for everything else on the machine (other sessions' work shows up here)
    steal_cpu: float  # same, for time the hypervisor gave this VM's CPUs to others (noisy neighbours)


def client_context(files: ClientFiles) -> ssl.SSLContext:
    """Verifies the server against the cluster CA and presents the admin certificate."""
    ctx = ssl.create_default_context(cafile=files.ca_file)
    ctx.load_cert_chain(files.cert_file, files.key_file)
    return ctx


async def _open(files: ClientFiles, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(files.host, files.port, ssl=ctx),
                                  CONNECT_TIMEOUT_SECONDS)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one response; returns (status, server wants the connection closed)."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head[9:12])
    length_at = head.find(b"\r\ncontent-length:")
    if length_at >= 0:
        await reader.readexactly(int(head[length_at + 17:head.index(b"\r\n", length_at + 2)]))
    elif b"\r\ntransfer-encoding: chunked" in head:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF; the last chunk is empty
            if size == 0:
                break
    else:
        raise ConnectionError("response without a length")
    return status, b"\r\nconnection: close" in head


async def _client(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter], next_request: Callable[[], bytes],
                  files: ClientFiles, ctx: ssl.SSLContext, window_start: float, window_end: float, result: WorkerResult) -> None:
    reader, writer = stream
    while True:
        started = time.monotonic()
        if started >= window_end:
            break
        try:
            if writer.is_closing():  # the peer went away; writing would fail deep inside asyncio's TLS
                raise ConnectionResetError("connection closed")
            writer.write(next_request())
            status, close = await _read_response(reader)
            error = None if 200 <= status < 300 else str(status)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ssl.SSLError):
            error, close = TRANSPORT_ERROR, True
        finished = time.monotonic()
        if window_start <= finished < window_end:
            if error is None:
                result.latencies.append(finished - started)
            else:
                result.errors[error] += 1
        if close:
            writer.close()
            result.reconnects += 1
            if error is not None:
                await asyncio.sleep(RETRY_PAUSE_SECONDS)  # a server refusing connections must not spin us
            try:
                reader, writer = await _open(files, ctx)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                result.errors[TRANSPORT_ERROR] += 1
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
    writer.close()


async def _cpu_during(window_start: float, window_end: float, result: WorkerResult) -> None:
    await asyncio.sleep(max(0.0, window_start - time.monotonic()))
    begin = time.process_time()
    await asyncio.sleep(max(0.0, window_end - time.monotonic()))
    result.cpu_seconds = time.process_time() - begin


async def _run_worker(pipe: Connection, files: ClientFiles, workload: Workload, clients: int) -> WorkerResult:
    ctx = client_context(files)
    try:
        streams = await asyncio.gather(*(_open(files, ctx) for _ in range(clients)))
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
        raise LoadFailed(f"cannot connect to {files.host}:{files.port}: {exc}") from None
    pipe.send(("ready", None))
    # Blocking here is fine: nothing else runs on this loop until the window is known.
    window_start, window_end = pipe.recv()
    result = WorkerResult()
    next_request = workload.request_maker(files.host, files.port)
    await asyncio.gather(_cpu_during(window_start, window_end, result),
                         *(_client(stream, next_request, files, ctx, window_start, window_end, result)
                           for stream in streams))
    return result


def worker_main(pipe: Connection, files: ClientFiles, workload: Workload, clients: int) -> None:
    """Entry point of one worker process: connect, report ready, run the window, send the result."""
    try:
        pipe.send(("result", asyncio.run(_run_worker(pipe, files, workload, clients))))
    except LoadFailed as exc:
        pipe.send(("failed", str(exc)))


def _split(clients: int, processes: int) -> list[int]:
    processes = max(1, min(clients, processes))
    return [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]


def _receive(pipe: Connection, expected: str, deadline: float) -> object:
    if not pipe.poll(max(0.0, deadline - time.monotonic())):
        raise LoadFailed(f"a load worker did not report {expected!r} in time")
    try:
        kind, payload = pipe.recv()
    except EOFError:
        raise LoadFailed("a load worker died") from None
    if kind != expected:
        raise LoadFailed(str(payload))
    return payload


def run_load(files: ClientFiles, workload: Workload, clients: int, processes: int, window: Window,
             server_cpu_seconds: Callable[[], float]) -> LoadResult:
    """Runs `clients` keep-alive clients over up to `processes` processes for one window.

    `server_cpu_seconds` returns the server's CPU time so far; it is sampled at the
    window's edges so server and generator CPU cover the same interval.
    """
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited from the parent
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for share in _split(clients, processes):
            parent_end, child_end = ctx.Pipe()
            process = ctx.Process(target=worker_main, args=(child_end, files, workload, share), daemon=True)
            process.start()
            child_end.close()
            workers.append((process, parent_end))
        ready_by = time.monotonic() + CONNECT_TIMEOUT_SECONDS + 10
        for _, pipe in workers:
            _receive(pipe, "ready", ready_by)
        window_start = time.monotonic() + window.warmup
        window_end = window_start + window.measure
        for _, pipe in workers:
            pipe.send((window_start, window_end))
        time.sleep(max(0.0, window_start - time.monotonic()))
        server_begin, machine_begin = server_cpu_seconds(), machine_cpu_seconds()
        time.sleep(max(0.0, window_end - time.monotonic()))
        server_end, machine_end = server_cpu_seconds(), machine_cpu_seconds()
        results = [_receive(pipe, "result", window_end + RESULT_GRACE_SECONDS) for _, pipe in workers]
    finally:
        for process, pipe in workers:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
            pipe.close()
    return _combine([r for r in results if isinstance(r, WorkerResult)], window.measure, server_end - server_begin,
                    machine_end[0] - machine_begin[0], machine_end[1] - machine_begin[1])


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of all cores so far, from /proc/stat.

    Busy is user + nice + system + irq + softirq (loopback network work runs in softirq);
    stolen is time the hypervisor ran someone else on our virtual CPUs.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in stat.readline().split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _combine(results: list[WorkerResult], seconds: float, server_cpu: float, machine_cpu: float,
             steal_cpu: float) -> LoadResult:
    latencies = sorted(latency for r in results for latency in r.latencies)
    loadgen_cpu = sum(r.cpu_seconds for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    return LoadResult(requests_per_second=len(latencies) / seconds,
                      latencies=tuple(latencies), errors=dict(errors), reconnects=sum(r.reconnects for r in results),
                      loadgen_cpu=loadgen_cpu / seconds, server_cpu=server_cpu / seconds,
                      other_cpu=max(0.0, machine_cpu - server_cpu - loadgen_cpu) / seconds,
                      steal_cpu=steal_cpu / seconds)
