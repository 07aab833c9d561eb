"""How deep a JSON document nests, measured before anything parses it.

Python's `json` module recurses once per nesting level: a few thousand levels end in a
`RecursionError` (a 500) and every level costs a frame and an object. This check runs in
C-speed primitives (two regex passes and a running sum), linear in the body's size.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

# Inside strings, an escape is a backslash and one character; removed first, a string is
# then a quote, anything but a quote, a quote. Outside strings JSON has no backslash, so a
# body where these passes disagree with a JSON parser is invalid JSON, and a parser stops
# at the first such place: up to there both see the same brackets.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def nesting_depth(document: bytes | str) -> int:
    """The deepest nesting of arrays and objects (0 for a scalar); an upper bound for
    a body that is not valid JSON."""
    data = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else document
    if b"[" not in data and b"{" not in data:
        return 0
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", data)).translate(None, _NOT_BRACKETS)
    steps = array("b", brackets.translate(_OPEN_CLOSE))  # +1 opens, -1 closes
    return max(accumulate(steps), default=0)
