"""What happens to one request besides the HTTP: shared by the gateway and ``tokenomy.wrap``.

``Inspector.prepare`` validates (the API's 400s, before anything goes upstream), parses the
body into blocks, links the request to its run, applies optimize-mode rewrites (the opt-in
context rewrites first, then the cache rewrites) and predicts its cache outcome. When
compaction needs a summary, ``prepare`` calls the caller's summarizer outside the lock
(``prepare_async`` awaits it). ``Inspector.finish`` takes what came back, asks the live doctor why the
cache missed, updates the gateway's mirror of the upstream cache, feeds ``/metrics`` and hands
one ``RequestRow`` to the ledger writer. No I/O here besides that hand-off.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from tokenomy.analysis.policies import PlanContext
from tokenomy.blocks import parse_request, scale_to_total
from tokenomy.cache import CacheEngine, CacheResult, effective_breakpoints
from tokenomy.errors import ApiRequestError
from tokenomy.gateway._context import (
    CONTEXT_REWRITES,
    AsyncSummarizer,
    ContextOptions,
    ContextOutcome,
    ContextRewriter,
    ContextStep,
    SyncSummarizer,
)
from tokenomy.gateway._diagnose import Diagnoser
from tokenomy.gateway._errors import new_request_id
from tokenomy.gateway._linking import RunLinker
from tokenomy.gateway._metrics import Metrics
from tokenomy.gateway._optimize import ALL_REWRITES, optimize
from tokenomy.gateway._plan import BreakpointPlanner
from tokenomy.ledger.requests import RequestRow
from tokenomy.model import Request, Turn, Usage
from tokenomy.validate import GATEWAY, MESSAGES_MAX_BYTES, check_body_size, check_messages, parse_json_body

__all__ = ["KNOWN_REWRITES", "Edit", "GatewaySettings", "Inspector", "Prepared", "key_scope"]

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
API_BODY_LIMIT = MESSAGES_MAX_BYTES
KNOWN_REWRITES: frozenset[str] = ALL_REWRITES | CONTEXT_REWRITES

Edit: TypeAlias = str | dict[str, Any]  # a cache rewrite's name, or a context rewrite's record


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Everything ``create_app`` and ``wrap`` need; the CLI builds it from flags."""

    upstream: str = "https://api.anthropic.com"
    db_path: str | None = None  # None: $TOKENOMY_HOME/ledger.db
    ledger: bool = True
    mode: Literal["observe", "optimize"] = "observe"
    rewrites: frozenset[str] = ALL_REWRITES  # the context rewrites (CONTEXT_REWRITES) only when named
    context: ContextOptions = ContextOptions()
    store_bodies: bool = False
    auth_tokens: tuple[str, ...] = ()
    max_body_bytes: int = API_BODY_LIMIT
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0  # to the response headers, and between two chunks of a body
    link_window_s: float = 3600.0
    client: Literal["h1", "aiohttp", "httpx"] = "h1"

    def __post_init__(self) -> None:
        unknown = set(self.rewrites) - KNOWN_REWRITES
        if unknown:
            raise ValueError(f"unknown rewrites {sorted(unknown)}; choose from {sorted(KNOWN_REWRITES)}")


_SALT = os.urandom(16)


def key_scope(api_key: str | None) -> str:
    """An in-memory scope for one API key (caches are per workspace): a salted hash that is
    never written anywhere and means nothing after the process exits."""
    if not api_key:
        return ""
    return hashlib.blake2b(api_key.encode(), key=_SALT, digest_size=8).hexdigest()


@dataclass(slots=True, kw_only=True)
class Prepared:
    """One request on its way: what to send, and what the ledger row needs later."""

    request_id: str
    started_at: float
    method: str
    endpoint: str
    scope: str = ""
    body_out: bytes = b""
    raw_in: bytes = b""
    model: str | None = None
    stream: bool = False
    request: Request | None = None  # as sent (after rewrites)
    run_id: str | None = None
    edits: tuple[Edit, ...] = ()
    prediction: CacheResult | None = None
    turn_index: int = 0
    betas_added: tuple[str, ...] = ()  # the caller adds these to the anthropic-beta it forwards
    internal: bool = False  # a call tokenomy made itself (a compaction summary)
    extra: dict[str, Any] = field(default_factory=dict)

    def headers_out(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` with ``betas_added`` merged into ``anthropic-beta`` (the list itself when
        there is nothing to add)."""
        return with_betas(headers, self.betas_added)


def with_betas(headers: list[tuple[str, str]], betas: tuple[str, ...]) -> list[tuple[str, str]]:
    """Merge ``betas`` into the ``anthropic-beta`` header of ``headers`` (added when missing)."""
    if not betas:
        return headers
    out: list[tuple[str, str]] = []
    merged = False
    for k, v in headers:
        if k.lower() == "anthropic-beta" and not merged:
            have = [b.strip() for b in v.split(",") if b.strip()]
            v = ",".join(have + [b for b in betas if b not in have])
            merged = True
        out.append((k, v))
    if not merged:
        out.append(("anthropic-beta", ",".join(betas)))
    return out


class Inspector:
    """Per-process state behind the gateway (or one wrapped client): runs, mirror cache, doctor."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        sink: Callable[[RequestRow], None] | None = None,
        metrics: Metrics | None = None,
        source: str = "gateway",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.metrics = metrics or Metrics()
        self.source = source
        self.clock = clock
        self.engine = CacheEngine(clock=clock)
        self.linker = RunLinker(window_s=settings.link_window_s, clock=clock)
        self.doctor = Diagnoser()
        self.planner = (
            BreakpointPlanner(
                place="breakpoints" in settings.rewrites, allow_1h="ttl_1h" in settings.rewrites
            )
            if settings.mode == "optimize"
            else None
        )
        context = settings.rewrites & CONTEXT_REWRITES
        self.context = (
            ContextRewriter(context, settings.context) if settings.mode == "optimize" and context else None
        )
        self._turns: OrderedDict[str, int] = OrderedDict()  # run id -> requests seen, bounded
        self._lock = threading.Lock()

    # -- before upstream -------------------------------------------------------------------

    def prepare(
        self,
        method: str,
        endpoint: str,
        raw: bytes,
        *,
        scope: str = "",
        run_header: str | None = None,
        betas: tuple[str, ...] = (),
        summarize: SyncSummarizer | None = None,
        add_betas: bool = False,
        internal: bool = False,
    ) -> Prepared:
        """Everything the gateway does before sending; raises ``ApiRequestError`` for bad input.

        ``summarize`` writes a compaction summary (without it, compaction never starts);
        ``add_betas`` says the caller forwards ``Prepared.betas_added`` (without it, context
        editing, which needs its beta header, stays off). ``internal`` marks a call tokenomy
        makes itself: it is recorded but never rewritten.
        """
        p, body, request = self._admit(method, endpoint, raw, scope, run_header, betas, internal)
        if body is None or request is None:
            return p
        step = self._context_start(p, body, request, betas, summarize is not None, add_betas)
        text = error = None
        if step is not None and step.call is not None and summarize is not None:
            try:
                text = summarize(step.call)
            except Exception as e:  # a failed summary never fails the request
                error = f"{type(e).__name__}: {e}"[:500]
            except BaseException as e:  # interrupted while the summary was written: still one row
                self._abandon(step)
                p.request = request
                self.finish(p, status=None, outcome="aborted", error=f"{type(e).__name__}: {e}")
                raise
        self._complete(p, body, request, betas, step, text, error)
        return p

    async def prepare_async(
        self,
        method: str,
        endpoint: str,
        raw: bytes,
        *,
        scope: str = "",
        run_header: str | None = None,
        betas: tuple[str, ...] = (),
        summarize: AsyncSummarizer | None = None,
        add_betas: bool = False,
    ) -> Prepared:
        """``prepare`` for an event loop: the summary call, when one is due, is awaited."""
        p, body, request = self._admit(method, endpoint, raw, scope, run_header, betas, False)
        if body is None or request is None:
            return p
        step = self._context_start(p, body, request, betas, summarize is not None, add_betas)
        text = error = None
        if step is not None and step.call is not None and summarize is not None:
            try:
                text = await summarize(step.call)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"[:500]
            except BaseException as e:  # cancelled while the summary was written: still one row
                self._abandon(step)
                p.request = request
                self.finish(p, status=None, outcome="aborted", error=f"{type(e).__name__}: {e}")
                raise
        self._complete(p, body, request, betas, step, text, error)
        return p

    def _admit(
        self,
        method: str,
        endpoint: str,
        raw: bytes,
        scope: str,
        run_header: str | None,
        betas: tuple[str, ...],
        internal: bool,
    ) -> tuple[Prepared, dict[str, Any] | None, Request | None]:
        """Validate, parse and link; the body and request only for Messages calls."""
        p = Prepared(
            request_id=new_request_id(),
            started_at=self.clock(),
            method=method,
            endpoint=endpoint,
            scope=scope,
            body_out=raw,
            raw_in=raw,
            internal=internal,
        )
        if method != "POST" or endpoint not in (MESSAGES, COUNT_TOKENS):
            if method == "POST" and raw:
                parse_json_body(raw)  # a batch or other JSON body must at least be JSON
            return p, None, None
        check_body_size(len(raw), self.settings.max_body_bytes)
        body = parse_json_body(raw)
        check_messages(body, GATEWAY, count_tokens=endpoint == COUNT_TOKENS)
        request = parse_request(body, betas=betas)
        effective_breakpoints(request)  # >4 breakpoints, TTL order: the API's 400, from the engine
        p.model = request.model
        p.stream = request.stream
        if endpoint == COUNT_TOKENS:
            return p, None, None
        with self._lock:
            p.run_id = self.linker.link(request, scope=scope, explicit=run_header)
            p.turn_index = self._turns.get(p.run_id, 0)
        return p, body, request

    def _context_start(
        self,
        p: Prepared,
        body: dict[str, Any],
        request: Request,
        betas: tuple[str, ...],
        can_summarize: bool,
        add_betas: bool,
    ) -> ContextStep | None:
        if self.context is None or p.internal or p.run_id is None:
            return None
        with self._lock:
            step = self.context.start(
                body,
                request,
                run_id=p.run_id,
                scope=p.scope,
                at=p.started_at,
                betas=betas,
                can_summarize=can_summarize,
                can_add_betas=add_betas,
            )
        return step

    def _abandon(self, step: ContextStep) -> None:
        assert self.context is not None
        with self._lock:
            self.context.abandon(step)

    def _complete(
        self,
        p: Prepared,
        body: dict[str, Any],
        request: Request,
        betas: tuple[str, ...],
        step: ContextStep | None,
        text: str | None,
        error: str | None,
    ) -> None:
        """Context rewrites (finished), then the cache rewrites on their result, then the
        prediction. Sets what ``p`` sends."""
        edits: list[Edit] = []
        current, sent_betas = body, betas
        if step is not None and self.context is not None:
            with self._lock:
                outcome = self.context.complete(step, text, error)
            edits.extend(outcome.entries)
            if outcome.changed and self._still_valid(outcome, edits):
                current, request, sent_betas = outcome.body, outcome.request, betas + outcome.betas_added
                p.betas_added = outcome.betas_added
        if self.planner is not None and self.settings.rewrites & ALL_REWRITES and not p.internal:
            planner = self.planner
            ctx = PlanContext(run_id=p.run_id or "", turn_index=p.turn_index, at=p.started_at)
            with self._lock:
                rw = optimize(
                    current,
                    request,
                    self.settings.rewrites,
                    parse=lambda b: parse_request(b, betas=sent_betas),
                    plan=lambda b, r: planner.plan(b, r, scope=p.scope, ctx=ctx),
                )
            if rw is not None:
                current = rw.body
                edits.extend(rw.edits)
                request = parse_request(current, betas=sent_betas)
                effective_breakpoints(request)
        if current is not body:
            p.body_out = json.dumps(current, ensure_ascii=False, separators=(",", ":")).encode()
        p.edits = tuple(edits)
        p.request = request
        with self._lock:
            try:
                p.prediction = self.engine.peek(request, workspace=p.scope, at=p.started_at)
            except ApiRequestError:
                p.prediction = None

    @staticmethod
    def _still_valid(outcome: ContextOutcome, edits: list[Edit]) -> bool:
        """A context rewrite must never turn a valid request into one the API refuses: check
        the result as the API would, and forward the client's body when it fails."""
        try:
            check_messages(outcome.body, GATEWAY)
            effective_breakpoints(outcome.request)
        except ApiRequestError as e:
            edits.append(
                {"rewrite": "context", "error": f"rewritten body refused ({e.message}); sent unchanged"}
            )
            return False
        return True

    def reject(self, p: Prepared | None, method: str, endpoint: str, err: ApiRequestError, raw: bytes) -> str:
        """Record a request the gateway refused itself (nothing went upstream); returns its id."""
        rid = p.request_id if p is not None else new_request_id()
        started = p.started_at if p is not None else self.clock()
        self.metrics.observe_request(endpoint, err.status, None, None, self.clock() - started, None)
        self._emit(
            RequestRow(
                request_id=rid,
                started_at=started,
                source=self.source,
                method=method,
                endpoint=endpoint,
                status=err.status,
                outcome="rejected",
                error_type=err.error_type,
                error=err.message,
                latency_s=self.clock() - started,
                mode=self.settings.mode,
                request_body=raw if self.settings.store_bodies and len(raw) <= API_BODY_LIMIT else None,
            )
        )
        return rid

    # -- after upstream --------------------------------------------------------------------

    def finish(
        self,
        p: Prepared,
        *,
        status: int | None,
        outcome: str,
        usage: Mapping[str, Any] | None = None,
        ttft_s: float | None = None,
        upstream_request_id: str | None = None,
        message_id: str | None = None,
        error_type: str | None = None,
        error: str | None = None,
        response_body: bytes | None = None,
    ) -> dict[str, Any] | None:
        """Diagnose, update the mirror cache, count, and queue the ledger row. Returns the
        diagnosis (a JSON-able dict) when the request was a Messages call that got usage."""
        latency = self.clock() - p.started_at
        u = Usage.from_api(usage) if usage else None
        diagnosis: dict[str, Any] | None = None
        if p.request is not None and u is not None and p.run_id is not None:
            diagnosis = self._observe(p, u, ttft_s, latency, status)
        self.metrics.observe_request(p.endpoint, status, p.model, u, latency, ttft_s)
        if outcome in ("upstream_error", "unreachable", "timeout", "dropped"):
            self.metrics.upstream_error(outcome)
        self._emit(
            RequestRow(
                request_id=p.request_id,
                started_at=p.started_at,
                source=self.source,
                run_id=p.run_id,
                method=p.method,
                endpoint=p.endpoint,
                model=p.model,
                stream=p.stream,
                status=status,
                outcome=outcome,
                error_type=error_type,
                error=error,
                input_tokens=u.input_tokens if u else 0,
                cache_write_5m=u.cache_write_5m if u else 0,
                cache_write_1h=u.cache_write_1h if u else 0,
                cache_read=u.cache_read if u else 0,
                output_tokens=u.output_tokens if u else 0,
                service_tier=u.service_tier if u else None,
                inference_geo=u.inference_geo if u else None,
                latency_s=latency,
                ttft_s=ttft_s,
                upstream_request_id=upstream_request_id,
                message_id=message_id,
                mode=self.settings.mode,
                rewrites=json.dumps(list(p.edits)) if p.edits else None,
                miss_cause=diagnosis.get("cause") if diagnosis else None,
                miss_tokens=diagnosis.get("tokens_rewritten") if diagnosis else None,
                diagnosis=json.dumps(diagnosis) if diagnosis else None,
                blocks=_blocks_json(p.request) if p.request is not None else None,
                request_body=p.body_out if self.settings.store_bodies else None,
                response_body=response_body if self.settings.store_bodies else None,
            )
        )
        return diagnosis

    def _observe(
        self, p: Prepared, u: Usage, ttft_s: float | None, latency: float, status: int | None
    ) -> dict[str, Any] | None:
        assert p.request is not None and p.run_id is not None
        request = scale_to_total(p.request, u.prompt_tokens) if u.prompt_tokens else p.request
        turn = Turn(
            model=p.request.model,
            usage=u,
            request=request,
            started_at=p.started_at,
            latency_s=latency,
            ttft_s=ttft_s,
            request_id=p.request_id,
            status=status,
        )
        ttft = ttft_s if ttft_s is not None else latency
        with self._lock:
            result: CacheResult | None
            try:
                result = self.engine.process(request, workspace=p.scope, at=p.started_at, ttft=ttft)
            except ApiRequestError:
                result = None
            if self.planner is not None and result is not None and not p.internal:
                ctx = PlanContext(run_id=p.run_id, turn_index=p.turn_index, at=p.started_at, ttft=ttft)
                self.planner.observe(request, scope=p.scope, ctx=ctx, result=result)
            if self.context is not None and not p.internal:
                self.context.observe(p.run_id, u, p.started_at)
            diagnosis = self.doctor.feed(turn, run_id=p.run_id)
            self._turns[p.run_id] = self._turns.get(p.run_id, 0) + 1
            self._turns.move_to_end(p.run_id)
            while len(self._turns) > 20_000:
                self._turns.popitem(last=False)
        return diagnosis

    def _emit(self, row: RequestRow) -> None:
        if self.sink is not None:
            self.sink(row)


def _blocks_json(request: Request) -> str:
    return json.dumps(
        [[b.prefix_hash.hex(), b.tokens, len(b.data), b.section, b.kind] for b in request.blocks],
        separators=(",", ":"),
    )


def cache_header(
    usage: Mapping[str, Any] | None, diagnosis: Mapping[str, Any] | None, prediction: CacheResult | None
) -> str:
    """The ``x-tokenomy-cache`` value. From the response when we have it (non-streaming);
    for streams, whose headers leave before any usage, the mirror cache's prediction."""
    if usage is not None:
        u = Usage.from_api(usage)
        parts = [
            "source=response",
            f"read={u.cache_read}",
            f"write={u.cache_creation_input_tokens}",
            f"input={u.input_tokens}",
        ]
        cause = diagnosis.get("cause") if diagnosis else None
        parts.append(f"miss={cause}" if cause else "miss=none")
        return "; ".join(parts)
    if prediction is not None:
        pu = prediction.usage
        return "; ".join(
            [
                "source=predicted",
                f"read={pu.cache_read}",
                f"write={pu.cache_creation_input_tokens}",
                f"input={pu.input_tokens}",
            ]
        )
    return "source=none"
