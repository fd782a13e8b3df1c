"""Prices and per-model facts, read from the one data file ``prices.toml`` beside this module.

- ``all_models()`` / ``resolve(id)`` / ``model_info(id)``: what the price table knows about a model.
- ``cost(usage, model)``: the dollars one response bills (spec §1), or ``None`` when the price is
  unknown. Pricing never fails a run and never prices an unknown model at $0.
- ``pricing_notes()``: every approximation made so far (an unknown id priced as a relative, a price
  that is unknown), for reports to print at the end.

Resolving an id: an exact id or alias; else the id without a trailing ``-YYYYMMDD``; else the id
without platform decorations (``anthropic.`` / ``us.anthropic.`` prefixes, ``-v1:0`` Bedrock and
``@date`` Vertex suffixes, ``provider/`` prefixes, Claude Code's ``[1m]``); else the longest known id
that prefixes it (not counting a following version number); else the same family's nearest version
at or below the one asked for (or the family's newest when no version can be read).
"""

from __future__ import annotations

import functools
import logging
import pkgutil
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tokenomy.errors import PricingError
from tokenomy.model import Usage

__all__ = [
    "Cost",
    "ModelInfo",
    "Resolution",
    "all_models",
    "clear_pricing_notes",
    "cost",
    "fees",
    "model_info",
    "multipliers",
    "pricing_notes",
    "resolve",
]

log = logging.getLogger("tokenomy.pricing")

FAMILIES = ("opus", "sonnet", "haiku", "fable", "mythos")
PRICE_KEYS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
_STATUSES = ("active", "deprecated", "retired")
_TOKENIZERS = ("legacy", "v2")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """One model of the price table. Prices are USD per million tokens; ``None`` when unknown."""

    id: str
    name: str
    family: str
    aliases: tuple[str, ...]
    input: float | None
    output: float | None
    cache_write_5m: float | None
    cache_write_1h: float | None
    cache_read: float | None
    price_known: bool
    min_cacheable_tokens: int
    tokenizer: str  # "legacy" | "v2"
    context_window: int | None
    max_output: int | None
    geo_us_multiplier_applies: bool
    long_context_threshold: int | None
    long_context_input: float | None
    long_context_output: float | None
    tool_overhead_auto: int | None
    tool_overhead_forced: int | None
    status: str
    released: str | None
    deprecated: str | None
    retired: str | None
    source: str
    checked: str
    retire_not_before: str | None = None
    default_effort: str | None = None  # output_config.effort when omitted (spec §3.8)
    fixed_sampling: bool = False  # refuses non-default temperature / top_p / top_k (Claude 4.7+)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """How a model id was matched: ``info`` is ``None`` when nothing matched at all."""

    info: ModelInfo | None
    exact: bool
    note: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """Dollars per token class (multipliers already applied) plus server-tool fees."""

    input: float = 0.0
    cache_write_5m: float = 0.0
    cache_write_1h: float = 0.0
    cache_read: float = 0.0
    output: float = 0.0
    web_search: float = 0.0

    @property
    def total(self) -> float:
        return (
            self.input
            + self.cache_write_5m
            + self.cache_write_1h
            + self.cache_read
            + self.output
            + self.web_search
        )

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            input=self.input + other.input,
            cache_write_5m=self.cache_write_5m + other.cache_write_5m,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
            cache_read=self.cache_read + other.cache_read,
            output=self.output + other.output,
            web_search=self.web_search + other.web_search,
        )


# ----------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True, slots=True)
class _Table:
    models: tuple[ModelInfo, ...]
    by_name: Mapping[str, ModelInfo]  # ids and aliases, lower case
    by_base: Mapping[str, ModelInfo]  # ids and aliases without their date suffix
    multipliers: Mapping[str, float]
    fees: Mapping[str, float]


_DATE = re.compile(r"-\d{8}$")


def _fail(where: str, what: str) -> PricingError:
    return PricingError(
        f"bad price data in tokenomy/pricing/prices.toml ({where}): {what}; "
        "the package is damaged, reinstall tokenomy"
    )


def _get(
    entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, *, required: bool
) -> Any:
    if key not in entry:
        if required:
            raise _fail(where, f"missing key {key!r}")
        return None
    value = entry[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(where, f"{key} = {value!r} has the wrong type")
    if not isinstance(value, kind):
        raise _fail(where, f"{key} = {value!r} has the wrong type")
    return value


def _num(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> float | None:
    value = _get(entry, key, (int, float), where, required=required)
    if value is None:
        return None
    if value < 0:
        raise _fail(where, f"{key} = {value!r} is negative")
    return float(value)


def _int(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> int | None:
    value = _get(entry, key, int, where, required=required)
    return int(value) if value is not None else None


def _str(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = _get(entry, key, str, where, required=required)
    return str(value) if value is not None else None


def _parse_model(entry: Mapping[str, Any], index: int, default_checked: str) -> ModelInfo:
    where = f"models[{index}]"
    model_id = _str(entry, "id", where, required=True)
    assert model_id is not None
    where = f"model {model_id!r}"
    aliases = _get(entry, "aliases", list, where, required=False) or []
    if not all(isinstance(a, str) for a in aliases):
        raise _fail(where, "aliases must be strings")
    family = _str(entry, "family", where, required=True)
    if family not in FAMILIES:
        raise _fail(where, f"family {family!r} is not one of {', '.join(FAMILIES)}")
    price_known = _get(entry, "price_known", bool, where, required=False)
    price_known = True if price_known is None else bool(price_known)
    prices = {k: _num(entry, k, where, required=price_known) for k in PRICE_KEYS}
    if not price_known and any(v is not None for v in prices.values()):
        raise _fail(where, "price_known = false but price keys are present")
    tokenizer = _str(entry, "tokenizer", where, required=True)
    if tokenizer not in _TOKENIZERS:
        raise _fail(where, f"tokenizer {tokenizer!r} is not one of {', '.join(_TOKENIZERS)}")
    status = _str(entry, "status", where, required=True)
    if status not in _STATUSES:
        raise _fail(where, f"status {status!r} is not one of {', '.join(_STATUSES)}")
    lc = _get(entry, "long_context", dict, where, required=False)
    lc_where = f"{where} long_context"
    min_cache = _int(entry, "min_cacheable_tokens", where, required=True)
    assert min_cache is not None
    return ModelInfo(
        id=model_id,
        name=_str(entry, "name", where, required=True) or model_id,
        family=family,
        aliases=tuple(aliases),
        input=prices["input"],
        output=prices["output"],
        cache_write_5m=prices["cache_write_5m"],
        cache_write_1h=prices["cache_write_1h"],
        cache_read=prices["cache_read"],
        price_known=price_known,
        min_cacheable_tokens=min_cache,
        tokenizer=tokenizer,
        context_window=_int(entry, "context_window", where),
        max_output=_int(entry, "max_output", where),
        geo_us_multiplier_applies=bool(_get(entry, "geo_us_multiplier_applies", bool, where, required=True)),
        long_context_threshold=_int(lc, "threshold", lc_where, required=True) if lc else None,
        long_context_input=_num(lc, "input", lc_where, required=True) if lc else None,
        long_context_output=_num(lc, "output", lc_where, required=True) if lc else None,
        tool_overhead_auto=_int(entry, "tool_overhead_auto", where),
        tool_overhead_forced=_int(entry, "tool_overhead_forced", where),
        status=status,
        released=_str(entry, "released", where),
        deprecated=_str(entry, "deprecated", where),
        retired=_str(entry, "retired", where),
        retire_not_before=_str(entry, "retire_not_before", where),
        default_effort=_str(entry, "default_effort", where),
        fixed_sampling=entry.get("fixed_sampling") is True,
        source=_str(entry, "source", where, required=True) or "",
        checked=_str(entry, "checked", where) or default_checked,
    )


def _float_table(data: Mapping[str, Any], key: str) -> Mapping[str, float]:
    table = data.get(key)
    if not isinstance(table, dict):
        raise _fail(key, f"missing [{key}] table")
    return MappingProxyType({k: float(_num(table, k, key, required=True) or 0.0) for k in table})


def _build(data: Mapping[str, Any]) -> _Table:
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise _fail("models", "no [[models]] entries")
    default_checked = str(data.get("checked", ""))
    models = tuple(_parse_model(e, i, default_checked) for i, e in enumerate(entries))
    by_name: dict[str, ModelInfo] = {}
    by_base: dict[str, ModelInfo] = {}
    for m in models:
        for name in (m.id, *m.aliases):
            key = name.lower()
            if key in by_name:
                raise _fail(f"model {m.id!r}", f"id or alias {name!r} is listed twice")
            by_name[key] = m
    for m in models:
        for name in (m.id, *m.aliases):
            base = _DATE.sub("", name.lower())
            if base not in by_name and by_base.get(base, m) is m:
                by_base[base] = m
    mult = _float_table(data, "multipliers")
    for k in ("cache_write_5m", "cache_write_1h", "cache_read", "batch", "geo_us"):
        if k not in mult:
            raise _fail("multipliers", f"missing key {k!r}")
    fee = _float_table(data, "fees")
    if "web_search_per_1000" not in fee:
        raise _fail("fees", "missing key 'web_search_per_1000'")
    return _Table(
        models=models,
        by_name=MappingProxyType(by_name),
        by_base=MappingProxyType(by_base),
        multipliers=mult,
        fees=fee,
    )


@functools.cache
def _table() -> _Table:
    # pkgutil, not importlib.resources: the same loader underneath, without the ~5 ms of imports
    # (tempfile, shutil, zipfile) that a report would pay on every run
    try:
        raw = pkgutil.get_data(__name__, "prices.toml")
        if raw is None:
            raise OSError("the package's loader cannot read prices.toml")
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise _fail("file", str(e)) from e
    return _build(data)


def all_models() -> tuple[ModelInfo, ...]:
    """Every model in the price table, in file order (current first, then retired, then unpriced)."""
    return _table().models


def multipliers() -> Mapping[str, float]:
    """The billing multipliers (``cache_write_5m``, ``cache_write_1h``, ``cache_read``, ``batch``, ``geo_us``)."""
    return _table().multipliers


def fees() -> Mapping[str, float]:
    """Non-token fees in USD (``web_search_per_1000``)."""
    return _table().fees


# ----------------------------------------------------------------------------------------------
# Resolving ids

# anthropic., us.anthropic., eu.anthropic., global.anthropic. (Bedrock model ids and inference profiles)
_PLATFORM_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")  # -v1:0, -v2:0, -v1
_VERTEX_SUFFIX = re.compile(r"@[\w.-]*$")  # @20250514, @default
_BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")  # Claude Code's [1m]
_VERSION_PART = re.compile(r"^\d{1,2}$")


def _platform_strip(name: str) -> str:
    name = name.rsplit("/", 1)[-1]  # anthropic/…, bedrock/…, vertex_ai/…
    name = _PLATFORM_PREFIX.sub("", name)
    name = _VERTEX_SUFFIX.sub("", name)
    name = _BEDROCK_SUFFIX.sub("", name)
    return name


def _family_version(name: str) -> tuple[str | None, tuple[int, ...]]:
    """Family and version read off an id: ``claude-opus-4-8`` → (opus, (4, 8)); ``claude-3-5-haiku`` → (haiku, (3, 5))."""
    parts = name.split("-")
    for i, part in enumerate(parts):
        if part in FAMILIES:
            after: list[int] = []
            for p in parts[i + 1 :]:
                if not _VERSION_PART.match(p):
                    break
                after.append(int(p))
            before: list[int] = []
            for p in reversed(parts[:i]):
                if not _VERSION_PART.match(p):
                    break
                before.insert(0, int(p))
            return part, tuple(after or before)
    return None, ()


def _padded(version: tuple[int, ...]) -> tuple[int, int]:
    major = version[0] if version else 0
    minor = version[1] if len(version) > 1 else 0
    return (major, minor)


def _prefix_match(name: str, table: _Table) -> ModelInfo | None:
    best: tuple[int, ModelInfo] | None = None
    for known, info in table.by_name.items():
        if not name.startswith(known + "-"):
            continue
        following = name[len(known) + 1 :].split("-", 1)[0]
        if _VERSION_PART.match(following):  # claude-opus-5-7 is not a kind of claude-opus-5
            continue
        if best is None or len(known) > best[0]:
            best = (len(known), info)
    return best[1] if best else None


def _family_match(name: str, table: _Table) -> tuple[ModelInfo, str] | None:
    family, version = _family_version(name)
    if family is None:
        return None
    members = [
        (_padded(_family_version(m.id)[1]), i, m) for i, m in enumerate(table.models) if m.family == family
    ]
    if not members:
        return None
    if version:
        want = _padded(version)
        below = [t for t in members if t[0] <= want]
        if below:  # the newest at or below the version asked for; file order breaks ties
            return max(below, key=lambda t: (t[0], -t[1]))[2], f"nearest {family} version"
        return min(members, key=lambda t: (t[0], t[1]))[2], f"oldest {family}"
    return max(members, key=lambda t: (t[0], -t[1]))[2], f"newest {family}"


def _resolve(model_id: str) -> tuple[Resolution, bool]:
    """The resolution and whether it is a guess worth a warning."""
    table = _table()
    name = model_id.strip().lower()
    name = _BRACKET_SUFFIX.sub("", name).strip()
    hit = table.by_name.get(name)
    if hit is not None:
        return Resolution(info=hit, exact=name == model_id.strip().lower(), note=None), False
    undated = _DATE.sub("", name)
    hit = table.by_name.get(undated) or table.by_base.get(undated)
    if hit is not None:
        how = "date suffix ignored" if undated != name else "undated form"
        return Resolution(info=hit, exact=False, note=f"model '{model_id}' priced as {hit.id} ({how})"), False
    stripped = _platform_strip(name)
    plain = _DATE.sub("", stripped)
    hit = table.by_name.get(stripped) or table.by_name.get(plain) or table.by_base.get(plain)
    if hit is not None:
        note = (
            f"model '{model_id}' priced as {hit.id} (platform id; regional or multi-region endpoint "
            "surcharges are not included)"
        )
        return Resolution(info=hit, exact=False, note=note), False
    hit = _prefix_match(plain, table)
    if hit is not None:
        note = f"unknown model '{model_id}': priced as {hit.id} (family prefix)"
        return Resolution(info=hit, exact=False, note=note), True
    fam = _family_match(plain, table)
    if fam is not None:
        note = f"unknown model '{model_id}': priced as {fam[0].id} ({fam[1]})"
        return Resolution(info=fam[0], exact=False, note=note), True
    note = f"unknown model '{model_id}': not in the price table, its cost is left out"
    return Resolution(info=None, exact=False, note=note), True


_lock = threading.Lock()
_cache: dict[str, tuple[Resolution, bool]] = {}
_notes: dict[str, None] = {}
_warned: set[str] = set()


def _lookup(model_id: str) -> tuple[Resolution, bool]:
    found = _cache.get(model_id)
    if found is None:
        found = _resolve(model_id)
        with _lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[model_id] = found
    if found[0].note is not None and found[0].note not in _notes:
        with _lock:
            _notes[found[0].note] = None
    return found


def _warn_once(key: str, message: str) -> None:
    if key in _warned:
        return
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("%s", message)


def resolve(model_id: str) -> Resolution:
    """Match a model id (API, alias, dated, Bedrock or Vertex form) against the price table."""
    return _lookup(model_id)[0]


def model_info(model_id: str) -> ModelInfo | None:
    """``resolve(model_id).info``; a guessed or unknown id logs one warning per id."""
    res, guess = _lookup(model_id)
    if guess and res.note is not None:
        _warn_once(model_id, res.note)
    return res.info


def pricing_notes() -> list[str]:
    """The distinct notes produced so far, oldest first (reports print them at the end)."""
    with _lock:
        return list(_notes)


def clear_pricing_notes() -> None:
    """Forget the notes and the warnings already given (for a new report, and for tests)."""
    with _lock:
        _notes.clear()
        _warned.clear()


# ----------------------------------------------------------------------------------------------
# Cost


def cost(usage: Usage, model: str, *, tier: str | None = None, geo: str | None = None) -> Cost | None:
    """What ``usage`` costs on ``model`` in USD (spec §1), or ``None`` when no price is known.

    ``tier`` defaults to ``usage.service_tier`` ("batch" halves every token class); ``geo``
    defaults to ``usage.inference_geo`` ("us" adds 10% on models where that applies). Above a
    model's long-context threshold every token is billed at the long-context rates, with the
    cache multipliers on top. Web search is $10 per 1,000 requests, without multipliers.
    """
    info = model_info(model)
    if info is None:
        return None
    if not info.price_known:
        note = f"price of {info.id} ({info.name}) is unknown: its cost is left out"
        with _lock:
            _notes.setdefault(note, None)
        _warn_once(f"price:{info.id}", note)
        return None
    table = _table()
    mult = table.multipliers
    p_in, p_w5, p_w1, p_read, p_out = (
        info.input,
        info.cache_write_5m,
        info.cache_write_1h,
        info.cache_read,
        info.output,
    )
    assert p_in is not None and p_w5 is not None and p_w1 is not None
    assert p_read is not None and p_out is not None
    if (
        info.long_context_threshold is not None
        and info.long_context_input is not None
        and info.long_context_output is not None
        and usage.prompt_tokens > info.long_context_threshold
    ):
        p_in = info.long_context_input
        p_out = info.long_context_output
        p_w5 = p_in * mult["cache_write_5m"]
        p_w1 = p_in * mult["cache_write_1h"]
        p_read = p_in * mult["cache_read"]
    factor = 1.0
    if (tier if tier is not None else usage.service_tier) == "batch":
        factor *= mult["batch"]
    if info.geo_us_multiplier_applies and (geo if geo is not None else usage.inference_geo) == "us":
        factor *= mult["geo_us"]

    def dollars(tokens: int, price: float) -> float:
        return tokens * price * factor / 1e6

    return Cost(
        input=dollars(usage.input_tokens, p_in),
        cache_write_5m=dollars(usage.cache_write_5m, p_w5),
        cache_write_1h=dollars(usage.cache_write_1h, p_w1),
        cache_read=dollars(usage.cache_read, p_read),
        output=dollars(usage.output_tokens, p_out),
        web_search=usage.web_search_requests * table.fees["web_search_per_1000"] / 1000,
    )
