"""What a client's text may contain before anything of ours uses it.

Request fields end up in YouTube searches, cached failure reasons, log lines and HTML. Lone
surrogates (valid in JSON's \\uD800 escapes, invalid in any encoding) made the encoder raise on
the way out; NUL and control characters confuse the search and the logs; a 50,000-character
"name" is nobody's song. Each is refused with a 400 that names the field, before it is used.
"""

from __future__ import annotations

import math
import re

from core.errors import UserFacingError

# Longer than any real title, album or artist name on Spotify (they stay under ~200).
MAX_TEXT = 500
# C0 and C1 control characters (tab, CR and LF included: no field is multi-line), DEL and
# the surrogate range.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class BadRequest(UserFacingError):
    """The request itself is wrong; resending it unchanged will not help."""

    http_status = 400


def check_text(value: str, field: str, max_length: int = MAX_TEXT) -> str:
    """`value` unchanged, or BadRequest when it is too long or holds a forbidden character."""
    if len(value) > max_length:
        raise BadRequest(f"'{field}' is too long (at most {max_length} characters).")
    if _FORBIDDEN.search(value):
        raise BadRequest(
            f"'{field}' contains a control character or invalid Unicode (a lone surrogate)."
        )
    return value


def finite_number(value: object) -> float | None:
    """`value` as a finite float, or None when it is not a number (bools are not numbers).

    JSON integers are unbounded in Python: 10**400 parses, and float() of it overflows.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
