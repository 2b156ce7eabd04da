"""The parse stage's line reading in child processes beside the event loop (LOGBERT_PARSE_PROCESSES).

Each child (`python -m streaming.parse_processes`) builds a `LineReader` from a config frame, then
answers each frame of raw values with a frame of reads, in order. Frames are length-prefixed:
the values as raw bytes, the answers as JSON; nothing is unpickled."""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from asyncio.subprocess import PIPE
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import orjson

from streaming.line_reader import LineReader, MessageRead, ReaderConfig
from streaming.messages import Rejected
from streaming.stages import RawMessage

log = logging.getLogger("logbert.parse")

NONE_LENGTH = 0xFFFFFFFF  # a value of None (a Kafka tombstone)


def encode_values(values: list[bytes | None]) -> bytes:
    """Length-prefixed raw values (the bytes as they came from Kafka, which need not be UTF-8)."""
    parts = [len(values).to_bytes(4, "big")]
    for value in values:
        parts += [NONE_LENGTH.to_bytes(4, "big")] if value is None else [len(value).to_bytes(4, "big"), value]
    return b"".join(parts)


def decode_values(data: bytes) -> list[bytes | None]:
    values: list[bytes | None] = []
    position = 4
    for _ in range(int.from_bytes(data[:4], "big")):
        length = int.from_bytes(data[position : position + 4], "big")
        position += 4
        if length == NONE_LENGTH:
            values.append(None)
        else:
            values.append(data[position : position + length])
            position += length
    return values


def encode_reads(reads: list[MessageRead]) -> bytes:
    """JSON (orjson keeps floats exact); a rejected message's bytes in base64."""
    return orjson.dumps(
        [(None if p is None else (p.reason, base64.b64encode(p.value).decode()), lines) for p, lines in reads]
    )


def decode_reads(data: bytes) -> list[MessageRead]:
    return [(None if p is None else Rejected(p[0], base64.b64decode(p[1])), lines) for p, lines in orjson.loads(data)]


def frame(payload: bytes) -> bytes:
    """One frame on a pipe, either way: an 8-byte length, then the payload."""
    return len(payload).to_bytes(8, "big") + payload


def _read_frame(source: BinaryIO) -> bytes | None:
    header = source.read(8)
    if len(header) < 8:
        return None  # the worker closed the pipe, or died
    return source.read(int.from_bytes(header, "big"))


def child_main() -> None:
    """A parse process: a config frame, then one frame of values in, one frame of reads out, until EOF."""
    source, out = sys.stdin.buffer, sys.stdout.buffer
    config = _read_frame(source)
    if config is None:
        return
    reader = LineReader.from_config(ReaderConfig(**orjson.loads(config)))
    while (values := _read_frame(source)) is not None:
        out.write(frame(encode_reads(reader.read(decode_values(values)))))
        out.flush()


class _Child:
    """One parse process; its answers come back in the order the shares were sent."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: deque[asyncio.Future] = deque()
        self.answers = asyncio.create_task(self._read_answers())

    def send(self, payload: bytes) -> asyncio.Future:
        self.process.stdin.write(frame(payload))
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    async def _read_answers(self) -> None:
        out = self.process.stdout
        try:
            while True:
                header = await out.readexactly(8)
                answer = decode_reads(await out.readexactly(int.from_bytes(header, "big")))
                self.pending.popleft().set_result(answer)
        except asyncio.IncompleteReadError:
            error = RuntimeError(f"parse process {self.process.pid} exited with code {await self.process.wait()}")
            while self.pending:
                self.pending.popleft().set_exception(error)


class ParseProcesses:
    """`processes` children (`python -m streaming.parse_processes`) that each read a share of a batch
    while the event loop runs on. Plain subprocesses rather than multiprocessing: a spawned
    multiprocessing child would import the worker's whole main module, and a forked one would copy
    the Kafka client's and ONNX Runtime's threads in an unknown state."""

    MIN_SHARE = 64  # messages: below this a share costs more to send than to read here

    def __init__(self, reader: LineReader, processes: int) -> None:
        self.processes = processes
        self.config = orjson.dumps(asdict(reader.config))
        self.children: list[_Child] = []

    async def _start(self) -> None:
        root = Path(__file__).resolve().parent.parent  # `-m` finds the project from its directory
        for _ in range(self.processes):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "streaming.parse_processes", stdin=PIPE, stdout=PIPE, cwd=root
            )
            process.stdin.write(frame(self.config))
            self.children.append(_Child(process))
        log.info("parsing in %d processes beside the event loop (pids %s)", self.processes,
                 ", ".join(str(c.process.pid) for c in self.children))  # fmt: skip

    def shares(self, values: list[bytes | None]) -> list[list[bytes | None]]:
        count = max(1, min(self.processes, len(values) // self.MIN_SHARE))
        size = -(-len(values) // count)
        return [values[i : i + size] for i in range(0, len(values), size)] or [values]

    async def submit(self, values: list[bytes | None]) -> asyncio.Future:
        """Sends the values out and returns at once: await the result for `LineReader.read` of
        them. Submitting the next batch before awaiting this one keeps the children busy."""
        if not self.children:
            await self._start()
        futures = [child.send(encode_values(share)) for child, share in zip(self.children, self.shares(values))]
        for child in self.children:
            await child.process.stdin.drain()
        return asyncio.ensure_future(_joined(futures))

    async def read(self, values: list[bytes | None]) -> list[MessageRead]:
        return await (await self.submit(values))

    async def close(self) -> None:
        for child in self.children:
            child.process.stdin.close()
        for child in self.children:
            try:
                await asyncio.wait_for(child.process.wait(), 5)
            except asyncio.TimeoutError:
                child.process.kill()
            child.answers.cancel()
        self.children = []


async def read_in_turn(
    parts: list[list[RawMessage]], processes: ParseProcesses | None
) -> AsyncIterator[tuple[int, list[RawMessage], list[MessageRead] | None]]:
    """Each part's index, the part and its lines read (None: to be read on the loop). With
    processes, the next part is read in them while the caller works on this one."""
    if processes is None:
        for n, part in enumerate(parts):
            yield n, part, None
        return
    upcoming = await processes.submit([m.value for m in parts[0]]) if parts else None
    for n, part in enumerate(parts):
        current = upcoming
        if n + 1 < len(parts):
            upcoming = await processes.submit([m.value for m in parts[n + 1]])
        yield n, part, await current


async def _joined(futures: list[asyncio.Future]) -> list[MessageRead]:
    return [message for part in await asyncio.gather(*futures) for message in part]


if __name__ == "__main__":
    child_main()
