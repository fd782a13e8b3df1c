"""Leave out of a block of Claude Code lines what a usage report never reads, before decoding it.

Most of a transcript's bytes are ``user`` lines (prompts and tool results), ``progress`` lines
(hook and tool progress) and the content blocks of ``assistant`` messages; usage lives in a few
fields of each assistant line. Decoding is the bulk of a scan, and a decoder that declares few
fields still has to scan every byte, so the lines are sifted first. Unless the content is wanted
(``keep_content``: the per-request visible-token estimate reads it):

- a ``progress`` line is dropped (nothing of it is used; dropped even when content is wanted);
- a ``user`` line is cut to the part before its message, closed with ``}``: that prefix still
  carries the session, agent, cwd, version and branch (``_fold_meta`` reads them), and the line
  still counts as a user line;
- an assistant line whose message opens with ``"content":[`` keeps ``"content":[]`` instead of
  its blocks (C only, below);
- every other line is kept byte for byte.

A line's top-level ``type`` is read off its first bytes without parsing: in valid JSON the bytes
``"type":"`` are always a key (a quote inside a string is escaped), and it is a top-level key when
no ``{`` or ``[`` comes before it. A line is only dropped or cut when it starts with ``{``, ends
with ``}`` (a write cut short is kept, so the decoder counts it as corrupt), its type key starts
within ``MAX_PREFIX`` bytes, and it holds no ``}{`` (two objects written back to back, maybe with
blanks between: the decoder reads both). Anything else is kept, so the sift never loses a valid
line the decoder would have read.

The cut relies on Claude Code writing a user line's session, agent, cwd, version and branch before
its ``type`` (every version in the samples does); a field written after it is not read.

What the sift changes in the counts: a dropped or cut line is checked for its shape only, so a
progress or user line damaged inside but still ending in ``}`` is no longer counted as corrupt
(it held no usage either way), and the C skim reads the usage of an assistant line whose content
blocks are damaged, which the decoder would have refused whole.

``_csift`` is the rule in C (built by ``make install`` where a compiler is at hand). It also skims
the content blocks, which needs a string-aware walk to the array's closing bracket: cheap in C,
too slow in Python. ``sift_py`` is the rest of the rule, the fallback without a compiler; both give
the same decoded lines for valid JSON, since the decoder does not read ``content`` either. The
tests hold the C code to a byte-at-a-time model of the whole rule and both sifts to the unsifted
scan's results on the real samples.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_PREFIX = 4096  # the type key must start within this many bytes of the line's start
_TYPE_KEY = b'"type":"'
_TRAILING = b" \t\r"
_GLUED = re.compile(rb"\}[ \t\r]*\{")


def sift_py(block: bytes, keep_content: bool) -> tuple[bytes, int]:
    """``block`` with progress lines dropped and (unless ``keep_content``) user lines cut to their
    prefix; and how many lines were dropped."""
    out: list[bytes] = []
    find = block.find
    n = len(block)
    keep_from = 0
    dropped = 0
    p = 0
    while p < n:
        eol = find(b"\n", p)
        if eol < 0:
            eol = n
        cut = _classify(block, p, eol, keep_content)
        if cut is not None:
            out.append(block[keep_from:p])
            if cut < 0:
                dropped += 1
            else:
                out.append(block[p:cut] + b"}\n")
            keep_from = eol + 1
        p = eol + 1
    out.append(block[keep_from:])
    return b"".join(out), dropped


def _classify(block: bytes, line: int, eol: int, keep_content: bool) -> int | None:
    """None: keep the line; -1: drop it; else the offset where its kept prefix ends."""
    if eol - line < 2 or block[line] != 0x7B:  # "{"
        return None
    last = eol
    while last > line and block[last - 1] in _TRAILING:
        last -= 1
    if last - line < 2 or block[last - 1] != 0x7D:  # "}"
        return None
    limit = min(line + 1 + MAX_PREFIX, eol)
    for opener in (b"{", b"["):
        at = block.find(opener, line + 1, limit)
        if at >= 0:
            limit = at
    m = block.find(_TYPE_KEY, line + 1, limit)
    if m < 0:
        return None
    v = m + len(_TYPE_KEY)
    if block.startswith(b'progress"', v) and v + 9 <= eol:
        return None if _glued(block, line, eol) else -1
    if not keep_content and block.startswith(b'user"', v) and v + 5 <= eol:
        return None if _glued(block, line, eol) else v + 5
    return None


def _glued(block: bytes, line: int, eol: int) -> bool:
    """Whether a ``}`` is followed, past blanks, by a ``{``: two objects on one line."""
    return _GLUED.search(block, line, eol) is not None


def _native() -> Callable[[bytes, bool], tuple[bytes, int]] | None:
    try:
        from tokenomy.sources._csift import sift as native
    except ImportError:  # built without a C compiler: the reference does the same, slower
        return None
    return native


NATIVE = _native()
sift: Callable[[bytes, bool], tuple[bytes, int]] = NATIVE or sift_py
