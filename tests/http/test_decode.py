"""Content codings decoded with bounded memory: bombs in one write, stacked codings, corrupt data.

The attack (issue 18, item 1): httpx's decoder inflated a whole received chunk, every layer at
once, before probe counted a byte. A 1,894-byte body with ``Content-Encoding: gzip, gzip`` took
`probe check` to 4.2 GiB. Here the same shapes are sent by a real server on 127.0.0.1 in one
write, and the peak of Python allocations during the fetch is held to a few times the cap.
"""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib

import anyio
import pytest

from probe.http.decode import (
    STEP,
    BoundedDecoder,
    CorruptEncoding,
    UnsupportedEncoding,
    codings,
)
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.models import Exchange, ExtractStep
from tests.servers import Route, serve


def gzip_of_zeros(megabytes: int) -> bytes:
    """A gzip stream of `megabytes` MiB of zeros, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\0" * (1024 * 1024)
    parts = [packer.compress(block) for _ in range(megabytes)]
    parts.append(packer.flush())
    return b"".join(parts)


DOUBLE_BOMB = gzip.compress(gzip_of_zeros(512), 9)  # 512 MiB behind two gzip layers


def test_codings_in_order_and_refusals() -> None:
    assert codings(None) == [] and codings("identity") == []
    assert codings("gzip") == ["gzip"]
    assert codings("deflate, gzip") == ["deflate", "gzip"]
    assert codings(" GZIP , identity ") == ["gzip"]
    with pytest.raises(UnsupportedEncoding, match="'br'"):
        codings("br")
    with pytest.raises(UnsupportedEncoding, match="3 content codings"):
        codings("gzip, gzip, gzip")


def test_one_chunk_of_a_bomb_comes_out_in_bounded_steps() -> None:
    decoder = BoundedDecoder("gzip")
    pieces = decoder.feed(gzip_of_zeros(64))
    first = next(pieces)
    assert len(first) <= STEP
    taken = len(first) + sum(len(next(pieces)) for _ in range(10))
    assert taken <= 11 * STEP  # the rest is never produced: the caller stopped asking


def test_two_gzip_layers_decode_in_bounded_steps() -> None:
    assert len(DOUBLE_BOMB) < 4096
    decoder = BoundedDecoder("gzip, gzip")
    total = 0
    for piece in decoder.feed(DOUBLE_BOMB):
        assert len(piece) <= STEP
        total += len(piece)
        if total > 8 * 1024 * 1024:
            break
    assert total > 8 * 1024 * 1024


def test_small_bodies_round_trip() -> None:
    text = b'{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1"}' * 100
    for header, body in (
        ("gzip", gzip.compress(text)),
        ("gzip, gzip", gzip.compress(gzip.compress(text))),
        ("deflate", zlib.compress(text)),  # zlib-wrapped, as the RFC says
        ("deflate", zlib.compress(text)[2:-4]),  # raw DEFLATE, as many servers send it
        ("identity", text),
        (None, text),
    ):
        decoder = BoundedDecoder(header)
        out = b"".join(decoder.feed(body[:7])) + b"".join(decoder.feed(body[7:]))
        out += b"".join(decoder.finish())
        assert out == text, header


def test_corrupt_data_is_named() -> None:
    decoder = BoundedDecoder("gzip")
    with pytest.raises(CorruptEncoding, match="invalid gzip data"):
        list(decoder.feed(b"this is not gzip at all"))


def _fetch(url: str, cap: int) -> list[Exchange]:
    async def go() -> list[Exchange]:
        guard = AddressGuard()
        guard.admit(url)
        async with new_client(guard=guard) as client:
            limits = Limits(max_body_bytes=cap, max_retries=0)
            return await Fetcher(client, limits, guard=guard).get(url, step=ExtractStep.DISCOVERY)

    return anyio.run(go)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", gzip_of_zeros(256)), ("gzip, gzip", DOUBLE_BOMB)],
    ids=["gzip-256MiB-one-write", "gzip-gzip-512MiB"],
)
def test_a_bomb_sent_in_one_write_stops_at_the_cap(encoding: str, body: bytes) -> None:
    cap = 1024 * 1024
    routes = {
        "/bomb": Route(
            200, body, {"Content-Type": "application/json", "Content-Encoding": encoding}
        )
    }
    with serve(routes) as (root, _):
        tracemalloc.start()
        try:
            attempts = _fetch(root + "/bomb", cap)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    final = attempts[-1]
    assert final.error_class == "body_too_large"
    assert final.truncated and final.size_bytes == cap
    # The compressed body itself is held once by the server thread's route (not the fetch).
    assert peak < len(body) + 6 * cap, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    ("encoding", "error_class"),
    [("br", "unsupported_content_encoding"), ("gzip", "decoding_error")],
)
def test_undecodable_bodies_are_named_findings(encoding: str, error_class: str) -> None:
    routes = {"/x": Route(200, b"garbage bytes", {"Content-Encoding": encoding})}
    with serve(routes) as (root, seen):
        attempts = _fetch(root + "/x", 1024 * 1024)
    assert attempts[-1].error_class == error_class
    assert attempts[-1].status == 200
    assert seen[0][1]["Accept-Encoding"] == "gzip, deflate"


def test_a_declared_length_over_the_cap_is_not_read_even_when_encoded() -> None:
    routes = {"/big": Route(200, gzip.compress(os.urandom(3000)), {"Content-Encoding": "gzip"})}
    with serve(routes) as (root, _):
        final = _fetch(root + "/big", 1000)[-1]
    assert final.error_class == "body_too_large" and final.size_bytes == 0
    assert "over the 1000-byte cap (not read)" in (final.error_detail or "")
