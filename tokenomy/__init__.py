"""tokenomy: token-cost engineering for Claude agents.

The public surface is this module's ``__all__``; everything else is internal. Heavier parts
(sources, analyses, ``wrap``, ``BatchQueue``) load on first use, so ``import tokenomy`` and
``tokenomy --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tokenomy.errors import (
    ApiRequestError,
    CacheControlError,
    InputError,
    PricingError,
    TokenomyError,
    UserError,
)

if TYPE_CHECKING:
    from tokenomy.analysis.doctor import diagnose, diagnose_run
    from tokenomy.analysis.simulate import simulate
    from tokenomy.batch import BatchQueue
    from tokenomy.blocks import parse_request
    from tokenomy.cache import CacheEngine, CacheOptions
    from tokenomy.context.prune import prune
    from tokenomy.model import Block, Request, Run, Turn, Usage
    from tokenomy.pricing import cost, model_info
    from tokenomy.sources import load_runs
    from tokenomy.wrap import unwrap, wrap

__version__ = "0.1.0"

_LAZY = {
    "BatchQueue": "tokenomy.batch",
    "Block": "tokenomy.model",
    "Request": "tokenomy.model",
    "Run": "tokenomy.model",
    "Turn": "tokenomy.model",
    "Usage": "tokenomy.model",
    "CacheEngine": "tokenomy.cache",
    "CacheOptions": "tokenomy.cache",
    "cost": "tokenomy.pricing",
    "diagnose": "tokenomy.analysis.doctor",
    "diagnose_run": "tokenomy.analysis.doctor",
    "load_runs": "tokenomy.sources",
    "model_info": "tokenomy.pricing",
    "parse_request": "tokenomy.blocks",
    "prune": "tokenomy.context.prune",
    "simulate": "tokenomy.analysis.simulate",
    "unwrap": "tokenomy.wrap",
    "wrap": "tokenomy.wrap",
}

__all__ = [
    "ApiRequestError",
    "BatchQueue",
    "Block",
    "CacheControlError",
    "CacheEngine",
    "CacheOptions",
    "InputError",
    "PricingError",
    "Request",
    "Run",
    "TokenomyError",
    "Turn",
    "Usage",
    "UserError",
    "cost",
    "diagnose",
    "diagnose_run",
    "load_runs",
    "model_info",
    "parse_request",
    "prune",
    "simulate",
    "unwrap",
    "wrap",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenomy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
