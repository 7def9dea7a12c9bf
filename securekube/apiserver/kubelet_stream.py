"""A GET to a kubelet's API over verified TLS, with the response body read as it arrives.

The API server relays `kubectl logs` (and `-f`) through this: a small HTTP/1.1 client on anyio, so
a stream holds no thread while it waits for the next line, and cancelling the request (its client
went away) closes the kubelet connection at once. It understands what a kubelet sends: a status
line, headers, and a body framed by Content-Length, by chunked transfer coding, or by the end of
the connection. Errors name what failed, never what the peer sent.
"""
from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE_BYTES = 1024
MAX_TRAILER_LINES = 64
READ_BYTES = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: .*)?")
# What breaks a kubelet connection half-way, as anyio, ssl and the socket report it.
_BROKEN = (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError,
           anyio.DelimiterNotFound, OSError, TimeoutError)


class KubeletUnavailable(Exception):
    """No answer from the kubelet: it cannot be reached, is not trusted, or does not answer in time.

    The message completes "the kubelet of node N at A:P ..." and names no bytes the peer sent.
    """


class KubeletStreamError(Exception):
    """The kubelet's answer broke off, stalled, or is not framed as HTTP/1.1 says."""


class KubeletResponse:
    """The status and headers of a kubelet's answer; its body is read with `read_chunk`."""

    def __init__(self, status: int, headers: dict[str, str], reader: BufferedByteReceiveStream) -> None:
        self.status = status
        self.headers = headers
        self._reader = reader
        coding = headers.get("transfer-encoding", "").lower()
        if coding and coding != "chunked":
            raise KubeletStreamError(f"unsupported transfer coding {coding[:40]!r}")
        self._chunked = coding == "chunked"
        length = headers.get("content-length")
        if not self._chunked and length is not None and not _CONTENT_LENGTH.fullmatch(length):
            raise KubeletStreamError("invalid Content-Length")
        self._left = int(length) if length is not None and not self._chunked else None  # None: until close
        self._chunk_left = 0
        self._done = False

    async def read_chunk(self, timeout: float | None = None) -> bytes:
        """The next piece of the body as it arrives; b"" at its end.

        `timeout` bounds the wait for this piece (None: wait as long as it takes, for a follow).
        Raises KubeletStreamError if the body breaks off, stalls past `timeout` or is malformed.
        """
        if self._done:
            return b""
        try:
            with anyio.fail_after(timeout):
                return await self._next()
        except _BROKEN + (ValueError,) as exc:
            self._done = True
            raise KubeletStreamError(f"the answer broke off ({exc.__class__.__name__})") from None

    async def read_at_most(self, limit: int, timeout: float | None) -> bytes:
        """Up to `limit` bytes of the body (all of a short error message)."""
        body = bytearray()
        while len(body) < limit:
            chunk = await self.read_chunk(timeout)
            if not chunk:
                break
            body += chunk
        return bytes(body[:limit])

    async def _next(self) -> bytes:
        if self._chunked:
            return await self._next_chunked()
        if self._left is None:
            try:
                return await self._reader.receive(READ_BYTES)
            except anyio.EndOfStream:
                self._done = True
                return b""
        if self._left == 0:
            self._done = True
            return b""
        data = await self._reader.receive(min(self._left, READ_BYTES))
        self._left -= len(data)
        return data

    async def _next_chunked(self) -> bytes:
        if self._chunk_left == 0:
            size_line = (await self._reader.receive_until(b"\r\n", MAX_CHUNK_LINE_BYTES)).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_line):
                raise ValueError("invalid chunk size")
            size = int(size_line, 16)
            if size == 0:
                for _ in range(MAX_TRAILER_LINES):
                    if not await self._reader.receive_until(b"\r\n", MAX_HEAD_BYTES):
                        self._done = True
                        return b""
                raise ValueError("too many trailer lines")
            self._chunk_left = size
        data = await self._reader.receive(min(self._chunk_left, READ_BYTES))
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and await self._reader.receive_exactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        return data


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.split(b"\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        raise KubeletStreamError("the answer is not HTTP/1.1")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise KubeletStreamError("malformed header line")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(status[1]), headers


def _host_header(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@asynccontextmanager
async def kubelet_get(host: str, port: int, target: str, context: ssl.SSLContext,
                      timeout: float) -> AsyncIterator[KubeletResponse]:
    """Connects to host:port over TLS (the certificate verified against `context` and `host`), sends
    `GET target`, and yields the answer once its status and headers are in, all within `timeout`.

    Raises KubeletUnavailable if that does not happen. Leaving the block closes the connection.
    """
    deadline = anyio.current_time() + timeout
    try:
        with anyio.fail_at(deadline):
            stream: ByteStream = await anyio.connect_tcp(host, port, ssl_context=context, tls_hostname=host,
                                                         tls_standard_compatible=False)
    except ssl.SSLCertVerificationError as exc:
        raise KubeletUnavailable(f"failed verification: {exc.verify_message}") from None
    except TimeoutError:
        raise KubeletUnavailable(f"did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise KubeletUnavailable(f"cannot be reached: {exc.__class__.__name__}") from None
    async with stream:
        reader = BufferedByteReceiveStream(stream)
        request = (f"GET {target} HTTP/1.1\r\nHost: {_host_header(host, port)}\r\n"
                   "User-Agent: securekube-apiserver\r\nAccept: text/plain\r\nConnection: close\r\n\r\n")
        try:
            with anyio.fail_at(deadline):
                await stream.send(request.encode("ascii"))
                head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
            status, headers = _parse_head(head)
            response = KubeletResponse(status, headers, reader)
        except TimeoutError:
            raise KubeletUnavailable(f"did not answer within {timeout:g} s") from None
        except (KubeletStreamError,) + _BROKEN as exc:
            raise KubeletUnavailable(f"answered with no valid HTTP response ({exc.__class__.__name__})") from None
        yield response
