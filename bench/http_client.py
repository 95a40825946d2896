"""A lean HTTP/1.1 load generator for the HTTP benchmarks: asyncio (uvloop when installed), keep-alive.

It runs in its own process (``run_in_process``), never in the server's, so the figures are what a second
program on the machine sees. Requests are prepared bytes written on persistent connections; a response is
read by its status line and ``Content-Length`` only. That is a few tens of microseconds of client CPU per
request, against the milliseconds a general client (httpx, requests) spends — on 2 shared cores the load
generator must take as little as possible from the server it measures.

Two ways to drive the server:

* ``closed``: ``concurrency`` connections each send the next request as soon as the last is answered —
  the throughput at that concurrency (the saturation search takes the best of a few).
* ``open``: requests *scheduled* at a fixed rate whatever the server does (open loop), each on a free
  connection of a pool; a latency counts from the scheduled moment, so a slow server cannot hide its
  queue (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A request maker: (sequence number) -> (path, JSON body, Idempotency-Key)
Maker = Callable[[int], tuple[str, dict[str, Any], str]]


@dataclass
class LoadResult:
    done: int = 0  # 2xx answers inside the measured window
    failed: int = 0  # other answers or broken connections
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, of the 2xx inside the window
    statuses: dict[int, int] = field(default_factory=dict)
    sample_errors: list[str] = field(default_factory=list)
    client_cpu: float = 0.0  # CPU seconds this load generator used
    offered: float = 0.0  # open loop: the rate asked for
    sent: int = 0  # requests made (the next run's makers start after them)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def request_bytes(host: str, port: int, token: str, path: str, body: dict[str, Any], key: str) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class _Run:
    def __init__(self, host: str, port: int, token: str, make: Maker) -> None:
        self.host, self.port, self.token, self.make = host, port, token, make
        self.result = LoadResult()
        self.sequence = 0
        self.window: tuple[float, float] = (0.0, 0.0)

    def next_request(self) -> bytes:
        path, body, key = self.make(self.sequence)
        self.sequence += 1
        return request_bytes(self.host, self.port, self.token, path, body, key)

    async def one(self, conn: _Connection, raw: bytes, since: float) -> None:
        try:
            status, body = await conn.send(raw)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            conn.close()
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        finished = time.perf_counter()
        start, end = self.window
        if not (start <= since and finished <= end):
            return
        self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            self.result.done += 1
            self.result.latencies.append(finished - since)
        else:
            self._fail(f"{status}: {body[:300]!r}")

    def _fail(self, what: str) -> None:
        self.result.failed += 1
        if len(self.result.sample_errors) < 5:
            self.result.sample_errors.append(what)

    async def closed(self, concurrency: int, warmup: float, seconds: float) -> None:
        began = time.perf_counter()
        self.window = (began + warmup, began + warmup + seconds)

        async def loop() -> None:
            conn = _Connection(self.host, self.port)
            while time.perf_counter() < self.window[1]:
                await self.one(conn, self.next_request(), time.perf_counter())
            conn.close()

        await asyncio.gather(*(loop() for _ in range(concurrency)))

    async def open(self, rate: float, warmup: float, seconds: float, pool_size: int) -> None:
        pool: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(pool_size):
            conn = _Connection(self.host, self.port)
            await conn.open()
            pool.put_nowait(conn)
        began = time.perf_counter()
        self.window = (began + warmup, began + warmup + seconds)
        self.result.offered = rate
        tasks: set[asyncio.Task[None]] = set()

        async def scheduled(at: float) -> None:
            conn = await pool.get()  # waiting for a free connection is part of the latency
            try:
                await self.one(conn, self.next_request(), at)
            finally:
                pool.put_nowait(conn)

        n = 0
        while True:
            at = began + n / rate
            if at >= self.window[1]:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(scheduled(at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        while not pool.empty():
            pool.get_nowait().close()


def _drive(spec: dict[str, Any], make: Maker, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the plain asyncio loop: slower, still correct
        pass
    run = _Run(spec["host"], spec["port"], spec["token"], make)
    cpu0 = time.process_time()
    if spec["mode"] == "closed":
        asyncio.run(run.closed(spec["concurrency"], spec["warmup"], spec["seconds"]))
    else:
        asyncio.run(run.open(spec["rate"], spec["warmup"], spec["seconds"], spec["pool"]))
    run.result.seconds = spec["seconds"]
    run.result.client_cpu = time.process_time() - cpu0
    run.result.sent = run.sequence
    out.send(run.result)


def run_in_process(spec: dict[str, Any], make: Maker) -> LoadResult:
    """Drive the server from a new process (spawned: it shares nothing with this one); its result.

    ``spec``: host, port, token, mode (closed | open), warmup, seconds, and concurrency (closed) or
    rate and pool (open). ``make`` must pickle (a module-level callable object)."""
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_drive, args=(spec, make, send))
    process.start()
    result: LoadResult = receive.recv()
    process.join()
    return result
