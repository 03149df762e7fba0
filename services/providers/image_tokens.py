"""What an image adds to an Anthropic prompt, in tokens, for placing cache breakpoints.

Anthropic bills an image by its pixels, not its bytes: about one token per 750 pixels, after
the image is scaled to fit a 1568-pixel long edge and 1.15 megapixels. The size is read from
the file header (PNG, GIF, WebP, JPEG; a bounded forward walk for JPEG). An image given by URL
is not fetched: it counts as a 1024 x 1024 image. Bytes of no known format (which the API
refuses) have no count here: the caller counts them as it counts any other block.
"""

from __future__ import annotations

import math

MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
PIXELS_PER_TOKEN = 750
URL_IMAGE_SIZE = (1024, 1024)
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def tokens_of_size(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > MAX_LONG_EDGE:
        scale = MAX_LONG_EDGE / max(w, h)
        w, h = w * scale, h * scale
    if w * h > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / (w * h))
        w, h = w * scale, h * scale
    return max(math.ceil(w * h / PIXELS_PER_TOKEN), 1)


def image_tokens(data: bytes) -> int | None:
    """Tokens of an inline image (its bytes), None when they are no image of a known format; of
    a URL image: `tokens_of_size(*URL_IMAGE_SIZE)`."""
    size = image_size(data)
    return tokens_of_size(*size) if size else None


def image_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from the header; None when it is none of the four formats."""
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return _int(raw, 16, 4, "big"), _int(raw, 20, 4, "big")
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        return _int(raw, 6, 2), _int(raw, 8, 2)
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return _webp(raw)
    if raw[:2] == b"\xff\xd8":
        return _jpeg(raw)
    return None


def _webp(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8 " and len(raw) >= 30:
        return _int(raw, 26, 2) & 0x3FFF, _int(raw, 28, 2) & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25:
        bits = _int(raw, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(raw) >= 30:
        return _int(raw, 24, 3) + 1, _int(raw, 27, 3) + 1
    return None


def _jpeg(raw: bytes) -> tuple[int, int] | None:
    """Segment by segment (each length moves strictly forward) to the first frame header."""
    i = 2
    while i + 9 <= len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
        elif marker in _JPEG_FRAMES:
            return _int(raw, i + 7, 2, "big"), _int(raw, i + 5, 2, "big")
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
        else:
            length = _int(raw, i + 2, 2, "big")
            if length < 2:
                return None
            i += 2 + length
    return None


def _int(raw: bytes, at: int, size: int, order: str = "little") -> int:
    return int.from_bytes(raw[at : at + size], order)  # type: ignore[arg-type]
