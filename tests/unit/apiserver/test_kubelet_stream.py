"""The kubelet answer's body as the relay reads it: each framing HTTP/1.1 allows, and breaks in it."""
from __future__ import annotations

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from securekube.apiserver.kubelet_stream import KubeletResponse, KubeletStreamError


def read_body(headers: dict[str, str], *pieces: bytes, timeout: float | None = None) -> list[bytes]:
    """The chunks `read_chunk` returns for a body that arrives in `pieces`, then the connection ends."""
    async def run() -> list[bytes]:
        send, receive = anyio.create_memory_object_stream[bytes](len(pieces) + 1)
        async with send, receive:
            for piece in pieces:
                await send.send(piece)
            await send.aclose()
            response = KubeletResponse(200, headers, BufferedByteReceiveStream(receive))
            chunks = []
            while chunk := await response.read_chunk(timeout):
                chunks.append(chunk)
            assert await response.read_chunk(timeout) == b""  # and it stays ended
            return chunks

    return anyio.run(run)


def test_a_chunked_body_comes_out_chunk_by_chunk() -> None:
    body = read_body({"transfer-encoding": "chunked"}, b"6\r\nfirst\n\r\n7;ext=1\r\nsecond", b"\n\r\n",
                     b"0\r\nTrailer: x\r\n\r\n")
    assert b"".join(body) == b"first\nsecond\n"
    assert body[0] == b"first\n"  # not held back until the end


def test_a_body_of_known_length_or_up_to_the_close() -> None:
    assert b"".join(read_body({"content-length": "5"}, b"hello", b"ignored")) == b"hello"
    assert b"".join(read_body({}, b"until ", b"the end")) == b"until the end"


@pytest.mark.parametrize("pieces", [
    (b"6\r\nfirst\n\r\n",),  # the connection ends before the last chunk
    (b"zz\r\nfirst\n\r\n0\r\n\r\n",),  # not a chunk size
    (b"3\r\nabcXY0\r\n\r\n",),  # a chunk not followed by CRLF
])
def test_a_broken_chunked_body_is_an_error_not_an_end(pieces: tuple[bytes, ...]) -> None:
    with pytest.raises(KubeletStreamError):
        read_body({"transfer-encoding": "chunked"}, *pieces)


def test_a_body_shorter_than_announced_is_an_error() -> None:
    with pytest.raises(KubeletStreamError):
        read_body({"content-length": "10"}, b"short")


@pytest.mark.parametrize("headers", [{"transfer-encoding": "gzip"}, {"content-length": "-1"}])
def test_framings_it_does_not_know_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(KubeletStreamError):
        KubeletResponse(200, headers, None)  # type: ignore[arg-type]


def test_a_body_that_stalls_past_its_timeout_is_an_error() -> None:
    async def run() -> None:
        send, receive = anyio.create_memory_object_stream[bytes](1)
        async with send, receive:
            response = KubeletResponse(200, {"content-length": "5"}, BufferedByteReceiveStream(receive))
            with pytest.raises(KubeletStreamError, match="TimeoutError"):
                await response.read_chunk(timeout=0.05)

    anyio.run(run)
