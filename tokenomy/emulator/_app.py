"""The emulator's ASGI app: a raw ASGI callable, no framework.

Raw ASGI because the emulator must never be the bottleneck of a gateway benchmark: the
request path is one dict lookup, one JSON parse, the cache engine and one JSON dump
(``bench/bench_emulator.py`` compares it with a Starlette app doing the same work).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tokenomy.blocks import parse_request
from tokenomy.cache import CacheEngine, CacheOptions
from tokenomy.emulator._batches import BatchStore, rfc3339
from tokenomy.emulator._clock import Latency, VirtualClock, parse_latency
from tokenomy.emulator._faults import ERROR_FAULTS, Fault, FaultPlan, Triggered, draw_header, parse_faults
from tokenomy.emulator._messages import (
    PING_EVENT,
    Diagnostics,
    generate,
    message_body,
    new_id,
    sse_events,
)
from tokenomy.emulator._responses import Responder, load_responder
from tokenomy.errors import ApiRequestError, UserError
from tokenomy.model import Usage
from tokenomy.pricing import all_models
from tokenomy.tokens import DEFAULT_COUNTER, TokenCounter
from tokenomy.validate import (
    BATCH_MAX_BYTES,
    BATCH_MAX_REQUESTS,
    MESSAGES_MAX_BYTES,
    Rules,
    check_batch_entry,
    check_body_size,
    check_messages,
    known_model,
    parse_json_body,
)

__all__ = ["EmulatorApp", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FAULT_HEADER = b"x-tokenomy-fault"
RATE_LIMITS = {
    "requests": 1_000,
    "input-tokens": 2_000_000,
    "output-tokens": 400_000,
}  # Start tier (spec §7.6)
_JSON = (b"content-type", b"application/json")


@dataclass(slots=True)
class _Ctx:
    request_id: str
    workspace: str
    headers: dict[bytes, bytes]
    query: bytes
    route: str  # "METHOD path", the key of EmulatorApp.stats


class _Window:
    """One minute of one workspace's traffic, for the anthropic-ratelimit-* headers."""

    __slots__ = ("input", "output", "requests", "reset", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.requests = 0
        self.input = 0
        self.output = 0
        self.reset = (rfc3339(start + 60.0) or "").encode()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _round_thousand(n: int) -> int:
    return max(0, round(n / 1000) * 1000)


class EmulatorApp:
    """An Anthropic-compatible API whose usage numbers come from the cache engine.

    One ``CacheEngine`` serves every request; its entries are scoped by workspace (a hash of
    the API key, never the key) and by model. ``stats`` counts responses by
    ``"METHOD path status"`` for tests.
    """

    def __init__(
        self,
        *,
        responder: Responder,
        latency: Latency,
        faults: tuple[Fault, ...],
        clock: Callable[[], float] | None,
        batch_time: Literal["virtual", "wall"],
        batch_duration: float,
        cache_options: CacheOptions | None,
        counter: TokenCounter,
        allow_retired: bool,
        fault_seed: int | None,
    ) -> None:
        self.responder = responder
        self.latency = latency
        self.fault_plan = FaultPlan(faults=faults, seed=fault_seed)
        self.clock: Callable[[], float] = clock or time.time
        self.sleeps = clock is None or not isinstance(clock, VirtualClock)
        self.counter = counter
        self.allow_retired = allow_retired
        self.rules = Rules(models="exact", allow_retired=allow_retired)
        self.engine = CacheEngine(cache_options, clock=self.clock)
        self.diagnostics = Diagnostics()
        self.batches = BatchStore(
            self._run_batch_request, clock=self.clock, duration=batch_duration, time_mode=batch_time
        )
        self.stats: dict[str, int] = {}
        self._windows: dict[str, _Window] = {}
        self._rng = random.Random(fault_seed)

    # -- ASGI entry --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.lower(): v for k, v in scope["headers"]}
        ctx = _Ctx(new_id("req_011C"), "", headers, scope.get("query_string", b""), f"{method} {path}")
        try:
            await self._route(method, path, ctx, receive, send)
        except ApiRequestError as e:
            await self._error(send, ctx, e.status, e.error_type, e.message)

    def _count(self, ctx: _Ctx, status: int) -> None:
        """Counted before the response goes out, so a client that saw it sees the count."""
        key = f"{ctx.route} {status}"
        self.stats[key] = self.stats.get(key, 0) + 1

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, method: str, path: str, ctx: _Ctx, receive: Receive, send: Send) -> int:
        path = path.rstrip("/") or "/"
        if path.startswith("/_tokenomy/clock"):
            return await self._clock_control(method, path, ctx, receive, send)
        if not path.startswith("/v1/"):
            raise ApiRequestError("Not Found", status=404, error_type="not_found_error")
        self._authenticate(ctx)
        if path == "/v1/messages":
            self._allow(method, "POST")
            return await self._messages(ctx, receive, send)
        if path == "/v1/messages/count_tokens":
            self._allow(method, "POST")
            return await self._count_tokens(ctx, receive, send)
        if path == "/v1/messages/batches":
            if method == "POST":
                return await self._batch_create(ctx, receive, send)
            self._allow(method, "GET")
            return await self._batch_list(ctx, send)
        if path.startswith("/v1/messages/batches/"):
            return await self._batch_item(method, path[len("/v1/messages/batches/") :], ctx, send)
        if path == "/v1/models":
            self._allow(method, "GET")
            return await self._models(ctx, send)
        if path.startswith("/v1/models/"):
            self._allow(method, "GET")
            return await self._model(path[len("/v1/models/") :], ctx, send)
        raise ApiRequestError("Not Found", status=404, error_type="not_found_error")

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiRequestError(f"Method {method} not allowed; use {allowed}", status=405)

    def _authenticate(self, ctx: _Ctx) -> None:
        key = ctx.headers.get(b"x-api-key")
        if not key:
            auth = ctx.headers.get(b"authorization", b"")
            key = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
        if not key:
            raise ApiRequestError(
                "x-api-key header is required", status=401, error_type="authentication_error"
            )
        if b"anthropic-version" not in ctx.headers:
            raise ApiRequestError("anthropic-version: header is required")
        # the workspace stands in for the key: a hash, never the key itself
        ws = ctx.headers.get(b"anthropic-workspace-id", b"")
        ctx.workspace = hashlib.blake2b(key + b"\x00" + ws, digest_size=12).hexdigest()

    # -- responses ---------------------------------------------------------------------------

    def _common_headers(self, ctx: _Ctx, usage: Usage | None = None) -> list[tuple[bytes, bytes]]:
        now = self.clock()
        start = int(now // 60 * 60)
        win = self._windows.get(ctx.workspace)
        if win is None or win.start != start:
            win = self._windows[ctx.workspace] = _Window(start)
        win.requests += 1
        if usage is not None:
            win.input += usage.input_tokens + usage.cache_creation_input_tokens  # reads don't count (§2.11)
            win.output += usage.output_tokens
        lim_r, lim_i, lim_o = (
            RATE_LIMITS["requests"],
            RATE_LIMITS["input-tokens"],
            RATE_LIMITS["output-tokens"],
        )
        rem_i = _round_thousand(lim_i - win.input)
        rem_o = _round_thousand(lim_o - win.output)
        return [
            (b"request-id", ctx.request_id.encode()),
            (b"anthropic-organization-id", b"00000000-0000-0000-0000-00000000e41a"),
            (b"anthropic-ratelimit-requests-limit", str(lim_r).encode()),
            (b"anthropic-ratelimit-requests-remaining", str(max(lim_r - win.requests, 0)).encode()),
            (b"anthropic-ratelimit-requests-reset", win.reset),
            (b"anthropic-ratelimit-input-tokens-limit", str(lim_i).encode()),
            (b"anthropic-ratelimit-input-tokens-remaining", str(rem_i).encode()),
            (b"anthropic-ratelimit-input-tokens-reset", win.reset),
            (b"anthropic-ratelimit-output-tokens-limit", str(lim_o).encode()),
            (b"anthropic-ratelimit-output-tokens-remaining", str(rem_o).encode()),
            (b"anthropic-ratelimit-output-tokens-reset", win.reset),
            (b"anthropic-ratelimit-tokens-limit", str(lim_i + lim_o).encode()),
            (
                b"anthropic-ratelimit-tokens-remaining",
                str(_round_thousand(lim_i + lim_o - win.input - win.output)).encode(),
            ),
            (b"anthropic-ratelimit-tokens-reset", win.reset),
        ]

    async def _send_body(
        self,
        send: Send,
        ctx: _Ctx,
        status: int,
        body: bytes,
        *,
        usage: Usage | None = None,
        content_type: bytes = b"application/json",
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> int:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers += (
            self._common_headers(ctx, usage) if ctx.workspace else [(b"request-id", ctx.request_id.encode())]
        )
        headers.extend(extra)
        self._count(ctx, status)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _clock_control(self, method: str, path: str, ctx: _Ctx, receive: Receive, send: Send) -> int:
        """``GET /_tokenomy/clock`` tells the time; ``POST /_tokenomy/clock/advance`` with
        ``{"seconds": N}`` jumps a virtual clock ahead, so a dry run can cross a TTL or finish a
        batch without waiting (``tokenomy emulate --clock virtual``)."""
        virtual = isinstance(self.clock, VirtualClock)
        if method == "GET" and path == "/_tokenomy/clock":
            return await self._json(send, ctx, {"now": self.clock(), "virtual": virtual})
        if method == "POST" and path == "/_tokenomy/clock/advance":
            if not isinstance(self.clock, VirtualClock):
                raise ApiRequestError(
                    "the clock is wall time; start the emulator with --clock virtual to advance it"
                )
            body = await self._read_json(receive, 1024 * 1024)
            seconds = body.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 10**9:
                raise ApiRequestError('seconds: give a number of seconds >= 0, e.g. {"seconds": 301}')
            return await self._json(send, ctx, {"now": self.clock.advance(float(seconds)), "virtual": True})
        raise ApiRequestError("Not Found", status=404, error_type="not_found_error")

    async def _json(
        self, send: Send, ctx: _Ctx, obj: Any, *, status: int = 200, usage: Usage | None = None
    ) -> int:
        return await self._send_body(send, ctx, status, _dumps(obj), usage=usage)

    async def _error(
        self,
        send: Send,
        ctx: _Ctx,
        status: int,
        error_type: str,
        message: str,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> int:
        body = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": ctx.request_id,
        }
        return await self._send_body(send, ctx, status, _dumps(body), extra=extra)

    async def _read_json(self, receive: Receive, limit: int) -> dict[str, Any]:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ApiRequestError("client disconnected", status=499)
            chunk = msg.get("body", b"")
            size += len(chunk)
            check_body_size(size, limit)
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return parse_json_body(b"".join(chunks))

    # -- faults ------------------------------------------------------------------------------

    def _draw_faults(self, ctx: _Ctx, *, streaming_faults: bool) -> Triggered:
        raw = ctx.headers.get(FAULT_HEADER)
        if raw:
            try:
                faults = parse_faults(raw.decode("latin-1"), where="x-tokenomy-fault")
            except UserError as e:
                raise ApiRequestError(str(e)) from None
            try:
                attempt = int(ctx.headers.get(b"x-stainless-retry-count", b"0"))
            except ValueError:
                attempt = 0
            return draw_header(faults, attempt, self._rng, streaming_faults=streaming_faults)
        return self.fault_plan.draw(streaming_faults=streaming_faults)

    async def _fault_error(self, send: Send, ctx: _Ctx, fault: Fault) -> int:
        status, error_type, message = ERROR_FAULTS[fault.kind]
        extra: list[tuple[bytes, bytes]] = []
        if fault.kind == "429":
            ra = fault.retry_after
            extra.append((b"retry-after", (str(int(ra)) if ra == int(ra) else repr(ra)).encode()))
        return await self._error(send, ctx, status, error_type, message, extra)

    # -- messages ----------------------------------------------------------------------------

    def _betas(self, ctx: _Ctx) -> tuple[str, ...]:
        raw = ctx.headers.get(b"anthropic-beta", b"").decode("latin-1")
        return tuple(sorted(b.strip() for b in raw.split(",") if b.strip()))

    def _price(
        self,
        body: Mapping[str, Any],
        workspace: str,
        betas: tuple[str, ...],
        *,
        at: float,
        ttft: float,
        tier: Literal["standard", "batch"],
        msg_id: str,
    ) -> tuple[dict[str, Any], Usage]:
        """Validate, answer and price one Messages body; the one path live and batch requests share."""
        info = check_messages(body, self.rules)
        assert info is not None  # exact rules: an unknown model was a 404
        request = parse_request(body, counter=self.counter, betas=betas)
        gen = generate(self.responder.reply(body), body, self.counter, info.tokenizer)
        geo = body.get("inference_geo")
        result = self.engine.process(
            request,
            workspace=workspace,
            at=at,
            ttft=ttft,
            output_tokens=gen.output_tokens,
            service_tier=tier,
            inference_geo=geo if geo == "us" else "global",
        )
        diag: Mapping[str, Any] | None | bool = False
        opt_in = body.get("diagnostics")
        if isinstance(opt_in, Mapping):
            diag = self.diagnostics.diagnose(opt_in.get("previous_message_id"), request, workspace)
            self.diagnostics.remember(msg_id, request, workspace)
        return message_body(msg_id, info.id, gen, result.usage, diag), result.usage

    async def _messages(self, ctx: _Ctx, receive: Receive, send: Send) -> int:
        at = self.clock()
        trig = self._draw_faults(ctx, streaming_faults=True)
        if trig.error is not None:
            return await self._fault_error(send, ctx, trig.error)
        body = await self._read_json(receive, MESSAGES_MAX_BYTES)
        slow = trig.slow.delay if trig.slow is not None else 0.0
        ttft = self.latency.ttft + slow
        message, usage = self._price(
            body, ctx.workspace, self._betas(ctx), at=at, ttft=ttft, tier="standard", msg_id=new_id("msg_01")
        )
        if body.get("stream") is True:
            return await self._stream(send, ctx, message, usage, trig)
        wait = (ttft if self.sleeps else slow) + (
            self.latency.generation_seconds(usage.output_tokens) if self.sleeps else 0
        )
        if wait > 0:
            await asyncio.sleep(wait)
        if trig.cut is not None:
            return await self._cut_json(send, ctx, message, usage, trig.cut)
        return await self._json(send, ctx, message, usage=usage)

    async def _cut_json(
        self, send: Send, ctx: _Ctx, message: Mapping[str, Any], usage: Usage, cut: Fault
    ) -> int:
        body = _dumps(message)
        headers = [_JSON, (b"content-length", str(len(body)).encode()), *self._common_headers(ctx, usage)]
        self._count(ctx, 200)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        if cut.kind == "truncate":  # a short body: the client sees fewer bytes than content-length
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200  # drop: return without completing; the server closes the connection

    async def _stream(
        self, send: Send, ctx: _Ctx, message: Mapping[str, Any], usage: Usage, trig: Triggered
    ) -> int:
        events = sse_events(message)
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            *self._common_headers(ctx, usage),
        ]
        self._count(ctx, 200)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        ttft = self.latency.ttft if self.sleeps else 0.0
        per_event = 0.0
        if self.sleeps and self.latency.tokens_per_second > 0:
            per_event = self.latency.generation_seconds(usage.output_tokens) / max(len(events) - 2, 1)
        slow = trig.slow.delay if trig.slow is not None else 0.0
        if ttft <= 0 and slow <= 0 and per_event <= 0 and trig.cut is None:
            await send({"type": "http.response.body", "body": b"".join(events)})
            return 200
        cut_at = len(events)
        if trig.cut is not None:
            cut_at = trig.cut.after if trig.cut.after is not None else len(events) // 2
            cut_at = min(cut_at, len(events) - 1)
        await send({"type": "http.response.body", "body": events[0], "more_body": True})
        await self._wait_first_token(send, ttft + slow)
        for i in range(1, cut_at):
            if per_event > 0 and i > 1:
                await asyncio.sleep(per_event)
            await send({"type": "http.response.body", "body": events[i], "more_body": i < len(events) - 1})
        if trig.cut is None or cut_at <= 0:
            return 200
        if trig.cut.kind == "truncate":
            partial = events[cut_at][: max(len(events[cut_at]) // 2, 1)]
            await send({"type": "http.response.body", "body": partial, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200  # drop: return mid-stream; the server closes the connection

    async def _wait_first_token(self, send: Send, seconds: float) -> None:
        """Sleep until the first token, with a ping every 5 s so idle proxies keep the stream."""
        while seconds > 0:
            step = min(seconds, 5.0)
            await asyncio.sleep(step)
            seconds -= step
            if seconds > 0:
                await send({"type": "http.response.body", "body": PING_EVENT, "more_body": True})

    async def _count_tokens(self, ctx: _Ctx, receive: Receive, send: Send) -> int:
        trig = self._draw_faults(ctx, streaming_faults=False)
        if trig.error is not None:
            return await self._fault_error(send, ctx, trig.error)
        body = await self._read_json(receive, MESSAGES_MAX_BYTES)
        check_messages(body, self.rules, count_tokens=True)
        request = parse_request(body, counter=self.counter, betas=self._betas(ctx))
        return await self._json(send, ctx, {"input_tokens": request.total_tokens})

    # -- batches -----------------------------------------------------------------------------

    def _run_batch_request(
        self, params: Mapping[str, Any], workspace: str, at: float, ttft: float
    ) -> dict[str, Any]:
        message, _ = self._price(
            params, workspace, (), at=at, ttft=ttft, tier="batch", msg_id=new_id("msg_01")
        )
        return message

    async def _batch_create(self, ctx: _Ctx, receive: Receive, send: Send) -> int:
        trig = self._draw_faults(ctx, streaming_faults=False)
        if trig.error is not None:
            return await self._fault_error(send, ctx, trig.error)
        body = await self._read_json(receive, BATCH_MAX_BYTES)
        reqs = body.get("requests")
        if not isinstance(reqs, list):
            raise ApiRequestError(
                "requests: Field required" if reqs is None else "requests: Input should be a valid list"
            )
        if not reqs:
            raise ApiRequestError("requests: List should have at least 1 item after validation, not 0")
        if len(reqs) > BATCH_MAX_REQUESTS:
            raise ApiRequestError(
                f"requests: a batch may hold at most {BATCH_MAX_REQUESTS} requests, got {len(reqs)}",
                status=413,
                error_type="request_too_large",
            )
        seen: set[str] = set()
        items = [check_batch_entry(i, item, seen) for i, item in enumerate(reqs)]
        batch = self.batches.create(new_id("msgbatch_01"), ctx.workspace, items)
        return await self._json(send, ctx, batch.to_api(self.clock()))

    async def _batch_list(self, ctx: _Ctx, send: Send) -> int:
        query = _parse_query(ctx.query)
        limit = _limit(query.get("limit"))
        batches = self.batches.list(ctx.workspace)
        page = _paginate([b.id for b in batches], query, limit)
        now = self.clock()
        by_id = {b.id: b for b in batches}
        data = [by_id[i].to_api(now) for i in page[0]]
        return await self._json(send, ctx, _page(data, page[1]))

    async def _batch_item(self, method: str, rest: str, ctx: _Ctx, send: Send) -> int:
        batch_id, _, action = rest.partition("/")
        now = self.clock()
        if action == "":
            if method == "DELETE":
                self.batches.delete(batch_id, ctx.workspace)
                return await self._json(send, ctx, {"id": batch_id, "type": "message_batch_deleted"})
            self._allow(method, "GET")
            return await self._json(send, ctx, self.batches.get(batch_id, ctx.workspace).to_api(now))
        if action == "cancel":
            self._allow(method, "POST")
            return await self._json(send, ctx, self.batches.cancel(batch_id, ctx.workspace).to_api(now))
        if action == "results":
            self._allow(method, "GET")
            data = self.batches.results(batch_id, ctx.workspace)
            return await self._send_body(send, ctx, 200, data, content_type=b"application/x-jsonl")
        raise ApiRequestError("Not Found", status=404, error_type="not_found_error")

    # -- models ------------------------------------------------------------------------------

    def _model_entries(self) -> list[dict[str, Any]]:
        models = sorted(all_models(), key=lambda m: m.released or "", reverse=True)
        return [_model_entry(m) for m in models if self.allow_retired or m.status != "retired"]

    async def _models(self, ctx: _Ctx, send: Send) -> int:
        query = _parse_query(ctx.query)
        entries = self._model_entries()
        ids, more = _paginate([e["id"] for e in entries], query, _limit(query.get("limit")))
        by_id = {e["id"]: e for e in entries}
        return await self._json(send, ctx, _page([by_id[i] for i in ids], more))

    async def _model(self, model_id: str, ctx: _Ctx, send: Send) -> int:
        info = known_model(model_id)
        if info is None:
            raise ApiRequestError(f"model: {model_id}", status=404, error_type="not_found_error")
        return await self._json(send, ctx, _model_entry(info))


def _model_entry(m: Any) -> dict[str, Any]:
    def day(d: str | None) -> str | None:
        return f"{d}T00:00:00Z" if d else None

    return {
        "type": "model",
        "id": m.id,
        "display_name": m.name,
        "created_at": day(m.released) or "1970-01-01T00:00:00Z",
        "lifecycle": m.status,
        "deprecated_at": day(m.deprecated),
        "retires_at": day(m.retired),
        "line": m.family,
        "max_input_tokens": m.context_window,
        "max_tokens": m.max_output,
    }


def _parse_query(raw: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(raw.decode("latin-1")))


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    try:
        n = int(raw)
    except ValueError:
        raise ApiRequestError("limit: Input should be a valid integer") from None
    if not 1 <= n <= 1000:
        raise ApiRequestError("limit: Input should be between 1 and 1000")
    return n


def _paginate(ids: list[str], query: Mapping[str, str], limit: int) -> tuple[list[str], bool]:
    """``after_id`` / ``before_id`` cursors over a newest-first list."""
    if "before_id" in query:
        try:
            end = ids.index(query["before_id"])
        except ValueError:
            return [], False
        start = max(end - limit, 0)
        return ids[start:end], start > 0
    start = 0
    if "after_id" in query:
        try:
            start = ids.index(query["after_id"]) + 1
        except ValueError:
            return [], False
    return ids[start : start + limit], start + limit < len(ids)


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def create_app(
    *,
    responses: str | Responder = "echo",
    latency: str | float | Latency | None = None,
    faults: str | Sequence[Fault] | None = None,
    clock: Callable[[], float] | None = None,
    batch_time: Literal["virtual", "wall"] = "virtual",
    batch_duration: float = 5.0,
    cache_options: CacheOptions | None = None,
    counter: TokenCounter | None = None,
    allow_retired: bool = False,
    fault_seed: int | None = None,
) -> EmulatorApp:
    """Build the emulator's ASGI app.

    ``responses``: ``"echo"``, ``"script:FILE"``, ``"replay:FILE"`` or a ``Responder``.
    ``latency``: seconds to first token, or ``"ttft=0.4,tps=60"``; slept only on a wall clock.
    ``faults``: the fault grammar of ``tokenomy.emulator._faults`` for every request.
    ``clock``: seconds since the epoch; a ``VirtualClock`` lets tests jump past a TTL.
    ``batch_time``: batches progress on that clock (``virtual``) or in real seconds (``wall``);
    each takes ``batch_duration`` seconds. ``allow_retired``: serve retired models too.
    """
    if batch_time not in ("virtual", "wall"):
        raise UserError(f"batch_time {batch_time!r}: use 'virtual' or 'wall'")
    if batch_duration < 0:
        raise UserError(f"batch_duration {batch_duration}: must be >= 0 seconds")
    responder = load_responder(responses) if isinstance(responses, str) else responses
    parsed = parse_faults(faults) if isinstance(faults, str) or faults is None else tuple(faults)
    return EmulatorApp(
        responder=responder,
        latency=parse_latency(latency),
        faults=parsed,
        clock=clock,
        batch_time=batch_time,
        batch_duration=batch_duration,
        cache_options=cache_options,
        counter=counter or DEFAULT_COUNTER,
        allow_retired=allow_retired,
        fault_seed=fault_seed,
    )
