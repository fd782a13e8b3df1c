"""Token counting behind one interface.

Every part of tokenomy that needs a token count asks a ``TokenCounter``. The default is
``OfflineEstimator``: no network, no vocabulary file, calibrated against the exact counts in the
pydantic-ai cassettes (``docs/tokens.md`` has its measured error). Exact numbers always win over
estimates: ``ApiCounter`` asks the API's free ``count_tokens`` endpoint when a key is given,
``RecordedCounter`` answers from recorded usage, and ``scale_to_total`` in ``tokenomy.blocks``
spreads such an exact total over a request's blocks. Both expose ``count_request(body)``, which
returns an exact prompt total or ``None``.

The newer tokenizer (Claude Opus 4.7 and later, Fable, Mythos, Sonnet 5) yields about 1.3x the
tokens of the legacy one for the same text (spec §3.3); the model's ``tokenizer`` family comes
from the price data.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol

from tokenomy.errors import UserError
from tokenomy.pricing import all_models, model_info

# Calibration constants, fitted by bench/calibrate_tokens.py --fit on the pydantic-ai cassettes
# (152 requests; docs/tokens.md has the error table and the command). Legacy tokenizer unless
# noted. Pre-tokenizer (grid search):
SHORT_WORD_CHARS = 7  # a word up to this long is one token
CHARS_PER_TOKEN_WORD = 5.0  # longer words and identifiers split into pieces of about this many chars
CHARS_PER_TOKEN_PUNCT = 2.2  # punctuation and symbol runs (JSON's `":"`, `"},{"` ...)
CHARS_PER_TOKEN_DIGITS = 2.0  # digit runs
# Framing (least squares on relative error, lower bound 0). The fit puts the per-message and
# per-block framing at 0: on these requests it is absorbed by REQUEST_OVERHEAD and the tool
# round-trip framing. TOOL_USE and TOOL_RESULT always come in pairs there, so only their sum
# (54) is measured; it is split evenly.
V2_FACTOR = 1.3  # newer tokenizer vs legacy: spec §3.3, pinned (the cassettes cannot separate it)
MESSAGE_OVERHEAD = 0  # role framing per message
BLOCK_OVERHEAD = 0  # per content block
REQUEST_OVERHEAD = 8  # start/end framing of every request
REQUEST_OVERHEAD_V2_DELTA = 2  # the v2 tokenizer's request frame is this much larger
TOOL_DEF_OVERHEAD = 0  # framing per tool definition (beyond its JSON)
TOOL_USE_OVERHEAD = 27  # framing of a tool_use block (the rendered call around name and input)
TOOL_RESULT_OVERHEAD = 27  # framing of a tool_result block
THINKING_OVERHEAD = 28  # thinking system prompt, legacy-tokenizer models (thinking enabled/adaptive)
THINKING_OVERHEAD_V2 = 0  # the same on v2 models: not measurable on the cassettes (Opus 4.7+: ~0)
OUTPUT_FORMAT_OVERHEAD = 184  # structured-output (output_config.format json_schema) system prompt
# Not fitted: no cassette measures it.
IMAGE_TOKENS = 1600  # an image of unknown size: about the API's cap for a 1.15 MP image

# Above this size a text is counted in slices, so one huge tool result neither fills the cache
# with a single entry nor builds a list of millions of regex matches.
_SLICE = 50_000
_PIECE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]+|_+|\s+", re.UNICODE)


class TokenCounter(Protocol):
    """Counts tokens of text, and the fixed per-request overheads the API adds."""

    def count_text(self, text: str, tokenizer: str = "legacy") -> int: ...

    def request_overhead(
        self,
        model: str,
        *,
        has_tools: bool,
        forced_tool_choice: bool,
        n_messages: int,
        thinking: bool = False,
        output_format: bool = False,
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
            n += 1.0 if len(piece) <= SHORT_WORD_CHARS else len(piece) / CHARS_PER_TOKEN_WORD
            if not piece.isascii():
                n += sum(1 for ch in piece if ord(ch) > 0x2FF) * 0.6
        elif c.isdigit():
            n += math.ceil(len(piece) / CHARS_PER_TOKEN_DIGITS)
        else:
            n += max(1.0, len(piece) / CHARS_PER_TOKEN_PUNCT)
    return math.ceil(n)


@lru_cache(maxsize=1)
def default_tool_system_prompt() -> int:
    """The tool-use system prompt for a model the price data has no figure for: the median of
    the figures it does have (spec §3.7 ranges from 264 to 675 tokens)."""
    known = [m.tool_overhead_auto for m in all_models() if m.tool_overhead_auto is not None]
    return round(statistics.median(known)) if known else 0


class OfflineEstimator:
    """The default counter: a pre-tokenizing heuristic, no vocabulary, no network, deterministic."""

    def count_text(self, text: str, tokenizer: str = "legacy") -> int:
        if not text:
            return 0
        if len(text) > 4 * _SLICE:
            n = sum(_legacy_count(text[i : i + _SLICE]) for i in range(0, len(text), _SLICE))
        else:
            n = _legacy_count(text)
        return math.ceil(n * V2_FACTOR) if tokenizer == "v2" else n

    def request_overhead(
        self,
        model: str,
        *,
        has_tools: bool,
        forced_tool_choice: bool,
        n_messages: int,
        thinking: bool = False,
        output_format: bool = False,
    ) -> int:
        info = model_info(model)
        v2 = info is not None and info.tokenizer == "v2"
        n = REQUEST_OVERHEAD + MESSAGE_OVERHEAD * n_messages
        if v2:
            n += REQUEST_OVERHEAD_V2_DELTA
        if thinking:
            n += THINKING_OVERHEAD_V2 if v2 else THINKING_OVERHEAD
        if output_format:
            n += OUTPUT_FORMAT_OVERHEAD
        if has_tools:
            auto = info.tool_overhead_auto if info else None
            forced = info.tool_overhead_forced if info else None
            if forced_tool_choice and forced is not None:
                n += forced
            elif auto is not None:
                n += auto
            else:
                n += default_tool_system_prompt()
        return n

    def count_request(self, body: Mapping[str, Any]) -> int | None:
        """No exact count offline: ``tokenomy.blocks.parse_request`` gives the estimate."""
        return None


DEFAULT_COUNTER: TokenCounter = OfflineEstimator()


def tokenizer_for(model: str) -> str:
    """The tokenizer family of a model ("legacy" or "v2"), from the price data."""
    info = model_info(model)
    return info.tokenizer if info else "legacy"


# ---------------------------------------------------------------------------------------------
# Exact counts: the API's count_tokens endpoint, and recorded usage
# ---------------------------------------------------------------------------------------------

# Body keys count_tokens accepts (spec §5.1); generation parameters are dropped before asking.
_COUNT_KEYS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "output_format"}
)
# Keys that do not change the prompt, ignored when matching a body against recorded usage.
_NON_PROMPT_KEYS = frozenset(
    {"max_tokens", "stream", "temperature", "top_p", "top_k", "metadata", "stop_sequences", "service_tier"}
)

CountFn = Callable[[Mapping[str, Any]], int]


def count_tokens_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Messages body that ``count_tokens`` takes (it rejects generation params)."""
    return {k: v for k, v in body.items() if k in _COUNT_KEYS}


def _newest_model(tokenizer: str) -> str | None:
    models = [m for m in all_models() if m.tokenizer == tokenizer and m.status == "active"]
    dated = [m for m in models if m.released]
    if dated:
        return max(dated, key=lambda m: m.released or "").id
    return models[0].id if models else None


class _FallbackOverhead:
    """Per-request overheads come from the fallback estimator: no API reports them separately."""

    _fallback: TokenCounter

    def request_overhead(
        self,
        model: str,
        *,
        has_tools: bool,
        forced_tool_choice: bool,
        n_messages: int,
        thinking: bool = False,
        output_format: bool = False,
    ) -> int:
        return self._fallback.request_overhead(
            model,
            has_tools=has_tools,
            forced_tool_choice=forced_tool_choice,
            n_messages=n_messages,
            thinking=thinking,
            output_format=output_format,
        )


class ApiCounter(_FallbackOverhead):
    """Exact counts from the API's ``count_tokens`` endpoint (free, rate-limited; spec §5.1).

    ``count_fn`` takes a count_tokens body and returns its ``input_tokens``; build one from an
    ``anthropic.Anthropic`` client with ``ApiCounter.from_client``. ``count_request`` is the
    exact path (one call per request). ``count_text`` asks for a one-message body and subtracts
    the measured framing, so it is exact up to the framing; answers are cached. Per-request
    overheads come from the offline estimator, which only matters for ``count_text`` users.
    The key stays inside the client: this class never sees or stores it.
    """

    def __init__(
        self,
        count_fn: CountFn,
        *,
        models: Mapping[str, str] | None = None,
        cache_size: int = 4096,
        fallback: OfflineEstimator | None = None,
    ) -> None:
        self._count = count_fn
        self._models = dict(models) if models else {}
        self._cache: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._cache_size = cache_size
        self._frames: dict[str, int] = {}
        self._lock = threading.Lock()
        self._fallback = fallback or OfflineEstimator()

    @classmethod
    def from_client(cls, client: Any, **kwargs: Any) -> ApiCounter:
        """Use an ``anthropic.Anthropic`` client (its key, base URL and retries)."""

        def count(body: Mapping[str, Any]) -> int:
            import anthropic

            try:
                result = client.messages.count_tokens(**count_tokens_body(body))
            except anthropic.APIStatusError as e:
                raise UserError(
                    f"count_tokens failed with HTTP {e.status_code} for model {body.get('model')!r}: "
                    f"{e.message}; check the API key and model, or count offline (the default)"
                ) from e
            except anthropic.APIConnectionError as e:
                raise UserError(
                    f"count_tokens could not reach the API ({e}); check the network or base URL, "
                    "or count offline (the default)"
                ) from e
            return int(result.input_tokens)

        return cls(count, **kwargs)

    def count_request(self, body: Mapping[str, Any]) -> int | None:
        """The exact prompt tokens of a Messages body, as the API counts them."""
        return self._count(count_tokens_body(body))

    def _model_for(self, tokenizer: str) -> str:
        model = self._models.get(tokenizer) or _newest_model(tokenizer)
        if model is None:
            raise UserError(f"no model with tokenizer {tokenizer!r} to count with; pass models={{...}}")
        self._models[tokenizer] = model
        return model

    def _frame(self, model: str) -> int:
        # "a" is one token in both tokenizers; the rest of a one-message count is framing
        if model not in self._frames:
            n = self._count({"model": model, "messages": [{"role": "user", "content": "a"}]})
            self._frames[model] = max(0, n - 1)
        return self._frames[model]

    def count_text(self, text: str, tokenizer: str = "legacy") -> int:
        if not text:
            return 0
        key = (tokenizer, text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        model = self._model_for(tokenizer)
        n = self._count({"model": model, "messages": [{"role": "user", "content": text}]})
        n = max(0, n - self._frame(model))
        with self._lock:
            self._cache[key] = n
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return n


def _strip_markers(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_markers(v) for v in value]
    return value


def prompt_key(body: Mapping[str, Any]) -> str:
    """A digest of what a body's token count depends on: generation parameters, cache markers
    and key order do not change the count, so they do not change the key."""
    prompt = {k: v for k, v in body.items() if k not in _NON_PROMPT_KEYS}
    data = json.dumps(_strip_markers(prompt), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(data.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class RecordedCounter(_FallbackOverhead):
    """Exact counts from recorded usage (logs, cassettes, the ledger); the estimator otherwise.

    ``record(body, total)`` stores the prompt total a response reported (input + cache writes
    + cache reads); ``count_request`` returns it for any body with the same prompt.
    """

    def __init__(
        self,
        records: Iterable[tuple[Mapping[str, Any], int]] = (),
        *,
        fallback: TokenCounter | None = None,
    ) -> None:
        self._totals: dict[str, int] = {}
        self._fallback: TokenCounter = fallback or DEFAULT_COUNTER
        for body, total in records:
            self.record(body, total)

    def __len__(self) -> int:
        return len(self._totals)

    def record(self, body: Mapping[str, Any], total: int) -> None:
        if total < 0:
            raise ValueError(f"a recorded prompt total cannot be negative (got {total})")
        self._totals[prompt_key(body)] = total

    def count_request(self, body: Mapping[str, Any]) -> int | None:
        return self._totals.get(prompt_key(body))

    def count_text(self, text: str, tokenizer: str = "legacy") -> int:
        return self._fallback.count_text(text, tokenizer)
