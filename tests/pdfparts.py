"""Read the streams of a PDF the report wrote, without a PDF library (the tests' only need is to find bytes).

A stream's data runs from the end-of-line after ``stream`` to the ``endstream`` keyword, with an optional
end-of-line before the keyword. Compressed data may itself end in a carriage return, so that end-of-line
cannot be stripped by pattern: the data is taken up to ``endstream`` and inflated with a decompress object,
which stops at the end of the zlib stream and leaves any trailing end-of-line unused. (Stripping ``\\r?\\n``
by regex cut the last byte of such streams, about one in 256, and made the attachment tests flaky.)
"""

from __future__ import annotations

import re
import zlib

STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)


def inflate(data: bytes) -> bytes:
    """``data`` inflated when it is a complete zlib stream (trailing bytes ignored), else as it is."""
    decompressor = zlib.decompressobj()
    try:
        inflated = decompressor.decompress(data) + decompressor.flush()
    except zlib.error:
        return strip_eol(data)
    return inflated if decompressor.eof else strip_eol(data)


def strip_eol(data: bytes) -> bytes:
    """An uncompressed stream's data without the end-of-line before ``endstream`` (data that itself ends in
    ``\\r`` loses it: harmless where the tests only look for bytes inside)."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith((b"\n", b"\r")) else data


def pdf_streams(pdf: bytes) -> list[bytes]:
    """Every stream of ``pdf``, inflated where compressed (object streams, XMP metadata, attachments)."""
    return [inflate(match.group(1)) for match in STREAM.finditer(pdf)]
