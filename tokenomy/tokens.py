"""Token counting behind one interface.

Every part of tokenomy that needs a token count asks a ``TokenCounter``. The default is
``OfflineEstimator``: no network, no vocabulary file, calibrated against the exact counts in the
pydantic-ai cassettes (``docs/tokens.md`` has its measured error). Exact numbers from recorded
usage always win over estimates: sources use those when a log has them, and
``scale_to_total`` in ``tokenomy.blocks`` spreads a recorded total over a request's blocks.

The newer tokenizer (Claude Opus 4.7 and later, Fable, Mythos, Sonnet 5) yields about 1.3x the
tokens of the legacy one for the same text (spec §3.3); the model's ``tokenizer`` family comes
from the price data.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Protocol

from tokenomy.pricing import model_info

# Calibration constants: fitted by bench/calibrate_tokens.py on the pydantic-ai cassettes
# (docs/tokens.md reports the error). Legacy tokenizer unless noted.
CHARS_PER_TOKEN_WORD = 6.0  # long identifiers split into pieces of about this many chars
CHARS_PER_TOKEN_PUNCT = 2.2  # punctuation and symbol runs
CHARS_PER_TOKEN_DIGITS = 3.0  # digits group in threes
V2_FACTOR = 1.3  # newer tokenizer vs legacy (spec §3.3, checked on the cassettes)
MESSAGE_OVERHEAD = 3  # role framing per message
BLOCK_OVERHEAD = 1  # per content block
REQUEST_OVERHEAD = 4  # start/end framing of every request
TOOL_DEF_OVERHEAD = 6  # framing per tool definition
TOOL_USE_OVERHEAD = 8  # framing of a tool_use block (id, name)
TOOL_RESULT_OVERHEAD = 6  # framing of a tool_result block (id)
IMAGE_TOKENS = 1600  # an image of unknown size: about the API's cap for a 1.15 MP image
DEFAULT_TOOL_SYSTEM_PROMPT = 500  # when the price data has no figure for the model

_PIECE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]+|_+|\s+", re.UNICODE)


class TokenCounter(Protocol):
    """Counts tokens of text, and the fixed per-request overheads the API adds."""

    def count_text(self, text: str, tokenizer: str = "legacy") -> int: ...

    def request_overhead(
        self, model: str, *, has_tools: bool, forced_tool_choice: bool, n_messages: int
    ) -> int: ...


@lru_cache(maxsize=65536)
def _legacy_count(text: str) -> int:
    n = 0.0
    for m in _PIECE.finditer(text):
        piece = m.group()
        c = piece[0]
        if c.isspace():
            # a single space joins the next word; runs of whitespace (indentation) are tokens
            n += 0 if len(piece) == 1 else max(1.0, len(piece) / 4)
        elif c.isalpha():
            n += 1.0 if len(piece) <= 7 else len(piece) / CHARS_PER_TOKEN_WORD
            if not piece.isascii():
                n += sum(1 for ch in piece if ord(ch) > 0x2FF) * 0.6
        elif c.isdigit():
            n += math.ceil(len(piece) / CHARS_PER_TOKEN_DIGITS)
        else:
            n += max(1.0, len(piece) / CHARS_PER_TOKEN_PUNCT)
    return math.ceil(n)


class OfflineEstimator:
    """The default counter: a pre-tokenizing heuristic, no vocabulary, no network."""

    def count_text(self, text: str, tokenizer: str = "legacy") -> int:
        if not text:
            return 0
        if len(text) > 200_000:
            # very large texts: count in slices so the cache stays useful and memory flat
            n = sum(_legacy_count(text[i : i + 50_000]) for i in range(0, len(text), 50_000))
        else:
            n = _legacy_count(text)
        return math.ceil(n * V2_FACTOR) if tokenizer == "v2" else n

    def request_overhead(
        self, model: str, *, has_tools: bool, forced_tool_choice: bool, n_messages: int
    ) -> int:
        n = REQUEST_OVERHEAD + MESSAGE_OVERHEAD * n_messages
        if has_tools:
            info = model_info(model)
            auto = info.tool_overhead_auto if info else None
            forced = info.tool_overhead_forced if info else None
            if forced_tool_choice and forced is not None:
                n += forced
            elif auto is not None:
                n += auto
            else:
                n += DEFAULT_TOOL_SYSTEM_PROMPT
        return n


DEFAULT_COUNTER: TokenCounter = OfflineEstimator()


def tokenizer_for(model: str) -> str:
    """The tokenizer family of a model ("legacy" or "v2"), from the price data."""
    info = model_info(model)
    return info.tokenizer if info else "legacy"
