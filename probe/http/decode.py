"""Decoding a response body's content codings with bounded memory.

httpx's own decoders inflate a whole received chunk, every coding layer at once, before the
caller can count a byte: a small chunk of a gzip bomb (or ``Content-Encoding: gzip, gzip``)
becomes gigabytes in one call. :class:`BoundedDecoder` inflates each layer in steps of at most
:data:`STEP` bytes (``zlib``'s ``max_length``), hands decoded bytes out as they are produced and
stops as soon as the caller stops asking, so a body is never held beyond its cap plus one step
per layer. The codings probe asks for (``Accept-Encoding: gzip, deflate``) are decoded, each
layer with the same bound, up to :data:`MAX_CODINGS` layers; anything else is refused by name.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

#: Most bytes one layer produces per step (and so the most held per layer at any time).
STEP = 64 * 1024
#: Most content codings applied one over another that are decoded (``gzip, gzip`` is two).
MAX_CODINGS = 2
#: What probe tells servers it accepts (no brotli or zstd: probe does not decode them).
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = ("gzip", "x-gzip")
_IDENTITY = ("", "identity")


class UnsupportedEncoding(ValueError):
    """The response uses a content coding probe does not decode (or too many of them)."""


class CorruptEncoding(ValueError):
    """The body is not valid data of its declared content coding."""


def codings(header: str | None) -> list[str]:
    """The non-identity codings of a Content-Encoding header, in the order they were applied.

    UnsupportedEncoding for a coding probe does not decode or more than MAX_CODINGS of them.
    """
    names = [part.strip().lower() for part in (header or "").split(",")]
    applied = [name for name in names if name not in _IDENTITY]
    for name in applied:
        if name not in (*_GZIP, "deflate"):
            raise UnsupportedEncoding(f"content coding {name[:40]!r} is not one probe decodes")
    if len(applied) > MAX_CODINGS:
        raise UnsupportedEncoding(
            f"{len(applied)} content codings applied one over another (at most {MAX_CODINGS})"
        )
    return applied


class _Layer:
    """One coding's incremental inflater."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._started = False
        self._raw_deflate = False
        wbits = zlib.MAX_WBITS | 16 if coding in _GZIP else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(wbits)

    def steps(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces of `data`, each at most STEP bytes, produced one at a time."""
        pending = data
        while pending:
            try:
                out = self._inflater.decompress(pending, STEP)
            except zlib.error as exc:
                if self.coding == "deflate" and not self._started and not self._raw_deflate:
                    # "deflate" is often sent as a raw DEFLATE stream without the zlib header.
                    self._raw_deflate = True
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise CorruptEncoding(f"invalid {self.coding} data: {exc}") from None
            self._started = True
            pending = self._inflater.unconsumed_tail
            if out:
                yield out

    def finish(self) -> bytes:
        """What the inflater still holds at the end of the body (at most a few bytes)."""
        try:
            return self._inflater.flush()
        except zlib.error as exc:
            raise CorruptEncoding(f"invalid {self.coding} data at the end: {exc}") from None


class BoundedDecoder:
    """Undoes a body's content codings incrementally, one bounded step at a time."""

    def __init__(self, content_encoding: str | None) -> None:
        # Decoding undoes the codings in the reverse of the order they were applied.
        self._layers = [_Layer(c) for c in reversed(codings(content_encoding))]

    @property
    def identity(self) -> bool:
        """Whether the body is sent as is (no coding to undo)."""
        return not self._layers

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded bytes of one received chunk, in pieces of at most STEP bytes."""
        return self._through(0, raw)

    def finish(self) -> Iterator[bytes]:
        """The decoded bytes the layers still hold once the body has ended."""
        for index, layer in enumerate(self._layers):
            tail = layer.finish()
            if tail:
                yield from self._through(index + 1, tail)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._layers):
            if data:
                yield data
            return
        for piece in self._layers[index].steps(data):
            yield from self._through(index + 1, piece)
