"""What a log line may say about an unexpected error: its type and where it was raised.

Never its message, its repr or a traceback: those can carry a prompt, an answer or a key
(a `UnicodeEncodeError`'s repr holds the whole string it failed on). One line per error.
"""

from __future__ import annotations

import os
import traceback

MAX_FRAMES = 6


def error_fields(exc: BaseException) -> dict[str, str]:
    """`error`: the exception's type; `at`: the innermost frames, `file:line in function`."""
    frames = traceback.extract_tb(exc.__traceback__)[-MAX_FRAMES:]
    at = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in reversed(frames))
    return {"error": type(exc).__name__, "at": at}
