"""Context discipline that respects the prompt cache: send fewer tokens without paying more.

- ``prune``: shrink one tool output to a token budget, keeping errors, paths and test names;
- ``mask``: replace old tool results by placeholders, in chunks that repay the cache re-write;
- ``editing``: a cache-aware trigger for the API's server-side ``clear_tool_uses_20250919``;
- ``compact``: replace old turns by a model-written summary when that pays.

Each is a pure function of a Messages body and a small per-conversation state (``mask_body``,
``context_editing_body``, ``compact_body``), for the gateway and ``wrap()``; ``SIMULATE_TRANSFORMS``
holds the same three as ``tokenomy simulate`` policies (each followed by the ``tokenomy`` planner).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tokenomy.context.compact import (
    CompactEdit,
    CompactOptions,
    CompactState,
    CompactTransform,
    compact_body,
    make_summarizer,
)
from tokenomy.context.editing import (
    ClearingEdit,
    EditingOptions,
    EditingState,
    EditingTransform,
    context_editing_body,
    server_clear,
)
from tokenomy.context.mask import (
    MaskEdit,
    MaskOptions,
    MaskState,
    MaskTransform,
    TurnEstimator,
    mask_body,
)
from tokenomy.context.prune import PruneResult, head_tail, prune

__all__ = [
    "CONTEXT_POLICIES",
    "SIMULATE_TRANSFORMS",
    "ClearingEdit",
    "CompactEdit",
    "CompactOptions",
    "CompactState",
    "CompactTransform",
    "EditingOptions",
    "EditingState",
    "EditingTransform",
    "MaskEdit",
    "MaskOptions",
    "MaskState",
    "MaskTransform",
    "PruneResult",
    "TurnEstimator",
    "compact_body",
    "context_editing_body",
    "head_tail",
    "make_summarizer",
    "mask_body",
    "prune",
    "server_clear",
]

# name -> a fresh transform; ``tokenomy simulate`` runs each before the ``tokenomy`` planner.
SIMULATE_TRANSFORMS: Mapping[str, Callable[[], Any]] = {
    "mask": lambda: MaskTransform(name="mask"),
    "mask_naive": lambda: MaskTransform(MaskOptions(aware=False), name="mask_naive"),
    "context_editing": EditingTransform,
    "compact": CompactTransform,
}
CONTEXT_POLICIES: tuple[str, ...] = tuple(SIMULATE_TRANSFORMS)
