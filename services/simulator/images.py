"""Images in prompts: their format and size read from the bytes' header, and what they cost in tokens.

Both APIs bill an image by its pixel size, not its bytes: OpenAI in 512-pixel tiles (85 +
170 a tile, 85 at detail "low", after fitting 2048 square and a 768-pixel short side),
Anthropic about one token per 750 pixels after fitting a 1568-pixel long edge and 1.15
megapixels. An image given by URL is not fetched: it counts as `URL_IMAGE_SIZE`. Header
parsing reads a bounded prefix (JPEG: segment by segment, forward only).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from dataclasses import dataclass

MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
URL_IMAGE_SIZE = (1024, 1024)
ANTHROPIC_MAX_BASE64_BYTES = 5 * 1024 * 1024
ANTHROPIC_MAX_DIMENSION = 8000
OPENAI_MAX_IMAGE_BYTES = 20 * 1024 * 1024
IMAGE_TOKEN_BASE = 200_000  # synthetic token ids for images (outside the text vocabulary)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageError(ValueError):
    """An image the APIs refuse. `kind`: "undecodable" | "mismatch" | "too_large" | "dimensions"."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Image:
    media_type: str | None  # None: given by URL, not looked at
    width: int
    height: int
    digest: str  # of the bytes (or of the URL): the same image gives the same prompt tokens

    def token_ids(self, count: int) -> list[int]:
        """`count` synthetic token ids standing for this image in a prompt's token sequence."""
        marks = [IMAGE_TOKEN_BASE + int(self.digest[i : i + 4], 16) for i in range(0, 16, 4)]
        return (marks + [IMAGE_TOKEN_BASE] * count)[:count]


def from_base64(data: str, declared: str | None = None) -> Image:
    """An image from base64 bytes; `declared` (a media type) must match what the bytes are."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("undecodable") from None
    sniffed = sniff(raw)
    if sniffed is None:
        raise ImageError("undecodable")
    media_type, width, height = sniffed
    if declared is not None and declared != media_type:
        raise ImageError("mismatch", media_type)
    return Image(media_type, width, height, hashlib.sha256(raw).hexdigest())


def from_url(url: str) -> Image:
    return Image(None, *URL_IMAGE_SIZE, hashlib.sha256(url.encode()).hexdigest())


def sniff(raw: bytes) -> tuple[str, int, int] | None:
    """(media type, width, height) from the file header; None when it is none of the four formats."""
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return "image/png", _be(raw, 16, 4), _be(raw, 20, 4)
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        return "image/gif", _le(raw, 6, 2), _le(raw, 8, 2)
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return _webp(raw)
    if raw[:2] == b"\xff\xd8":
        return _jpeg(raw)
    return None


def openai_tokens(image: Image, detail: str) -> int:
    if detail == "low":
        return 85
    width, height = float(image.width), float(image.height)
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return 85 + 170 * max(tiles, 1)


def anthropic_tokens(image: Image) -> int:
    width, height = float(image.width), float(image.height)
    if max(width, height) > 1568:
        scale = 1568 / max(width, height)
        width, height = width * scale, height * scale
    if width * height > 1_150_000:
        scale = math.sqrt(1_150_000 / (width * height))
        width, height = width * scale, height * scale
    return max(math.ceil(width * height / 750), 1)


def _webp(raw: bytes) -> tuple[str, int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8 " and len(raw) >= 30:
        return "image/webp", _le(raw, 26, 2) & 0x3FFF, _le(raw, 28, 2) & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25:
        bits = _le(raw, 21, 4)
        return "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(raw) >= 30:
        return "image/webp", _le(raw, 24, 3) + 1, _le(raw, 27, 3) + 1
    return None


def _jpeg(raw: bytes) -> tuple[str, int, int] | None:
    """Walk the segments (each length moves strictly forward) to the first frame header."""
    i = 2
    while i + 9 <= len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return "image/jpeg", _be(raw, i + 7, 2), _be(raw, i + 5, 2)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = _be(raw, i + 2, 2)
        if length < 2:
            return None
        i += 2 + length
    return None


def _be(raw: bytes, at: int, size: int) -> int:
    return int.from_bytes(raw[at : at + size], "big")


def _le(raw: bytes, at: int, size: int) -> int:
    return int.from_bytes(raw[at : at + size], "little")
