"""``tokenomy.wrap(client)``: the gateway's ledger, live diagnosis and optimize rewrites in-process.

For an ``anthropic.Anthropic`` or ``AsyncAnthropic`` client, with no proxy: the client's own
httpx transport is wrapped, so every request the SDK sends (retries included) goes through the
same ``Inspector`` the gateway uses, then out through the client's original transport::

    client = tokenomy.wrap(anthropic.Anthropic(), mode="optimize")
    ...
    unwrap(client)   # from tokenomy.wrap; or just exit: the ledger drains at exit

The context rewrites (mask, context_editing, compact) run only when named in ``rewrites``;
compaction writes its summary through the wrapped client itself.

A request the API would refuse (5 breakpoints, malformed fields) gets the API's own 400 from
here, which the SDK raises as ``BadRequestError``, and a ledger row; nothing goes out.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import lru_cache
from types import ModuleType
from typing import Any, Literal

from tokenomy.errors import ApiRequestError, UserError
from tokenomy.gateway._context import (
    CONTEXT_REWRITES,
    ContextOptions,
    SummaryCall,
    SummaryError,
    summary_text,
)
from tokenomy.gateway._optimize import ALL_REWRITES
from tokenomy.gateway._pipeline import (
    KNOWN_REWRITES,
    GatewaySettings,
    Inspector,
    Prepared,
    cache_header,
    key_scope,
    with_betas,
)
from tokenomy.gateway._sse import SSETap
from tokenomy.ledger.requests import LedgerWriter

__all__ = ["ALL_REWRITES", "CONTEXT_REWRITES", "ContextOptions", "unwrap", "wrap"]

_ATTR = "_tokenomy_wrap"
_INTERNAL = "x-tokenomy-internal"  # marks the summary calls wrap() makes itself; never forwarded


def _summary_headers(call: SummaryCall) -> dict[str, str]:
    return {"x-tokenomy-run": call.run_id, _INTERNAL: "summary"}


class _Core:
    """What one wrapped client shares between its sync or async transport and ``unwrap``."""

    def __init__(self, settings: GatewaySettings, http: ModuleType, client: Any = None) -> None:
        self.http = http  # httpx, or the httpx2 fork newer SDKs use: same API, distinct classes
        # the client writes compaction summaries; a weak reference, so wrapping keeps nothing alive
        self._client_ref: Callable[[], Any] = weakref.ref(client) if client is not None else lambda: None
        self.writer = LedgerWriter(settings.db_path) if settings.ledger else None
        self.inspector = Inspector(
            settings, sink=self.writer.submit if self.writer is not None else None, source="wrap"
        )
        self._closed = False
        self._lock = threading.Lock()
        atexit.register(self.close)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.writer is not None:
            self.writer.close()

    # -- the shared request logic ----------------------------------------------------------

    def _args(self, request: Any) -> dict[str, Any]:
        api_key = request.headers.get("x-api-key") or request.headers.get("authorization")
        betas = tuple(b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip())
        return {
            "scope": key_scope(api_key),
            "run_header": request.headers.get("x-tokenomy-run"),
            "betas": betas,
            "add_betas": True,
        }

    def _refuse(self, request: Any, err: ApiRequestError, raw: bytes) -> Any:
        rid = self.inspector.reject(None, request.method, request.url.path, err, raw)
        return self.http.Response(
            err.status, json=err.to_api(rid), headers={"request-id": rid}, request=request
        )

    def before(self, request: Any, raw: bytes) -> tuple[Prepared | None, Any]:
        """Prepare a sync client's request: ``(prepared, request to send)`` or ``(None, response)``."""
        path = request.url.path
        if not path.startswith("/v1/"):
            return None, request
        internal = request.headers.get(_INTERNAL) is not None
        try:
            p = self.inspector.prepare(
                request.method,
                path,
                raw,
                summarize=None if internal else self.summarize,
                internal=internal,
                **self._args(request),
            )
        except ApiRequestError as err:
            return None, self._refuse(request, err, raw)
        return p, self._outgoing(request, p)

    async def before_async(self, request: Any, raw: bytes) -> tuple[Prepared | None, Any]:
        """``before`` for an async client: a compaction summary is awaited."""
        path = request.url.path
        if not path.startswith("/v1/"):
            return None, request
        try:
            if request.headers.get(_INTERNAL) is not None:
                p = self.inspector.prepare(request.method, path, raw, internal=True, **self._args(request))
            else:
                p = await self.inspector.prepare_async(
                    request.method, path, raw, summarize=self.summarize_async, **self._args(request)
                )
        except ApiRequestError as err:
            return None, self._refuse(request, err, raw)
        return p, self._outgoing(request, p)

    def _outgoing(self, request: Any, p: Prepared) -> Any:
        path = request.url.path
        drop = (b"content-length", b"x-tokenomy-run", _INTERNAL.encode())
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in drop]
        if p.betas_added:
            merged = with_betas(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers], p.betas_added
            )
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged]
        if path.startswith("/v1/messages"):
            headers = [(k, v) for k, v in headers if k.lower() != b"accept-encoding"]
            headers.append((b"accept-encoding", b"identity"))
        return self.http.Request(
            request.method, request.url, headers=headers, content=p.body_out, extensions=request.extensions
        )

    # -- compaction summaries: through the wrapped client itself ---------------------------

    def _client(self) -> Any:
        client = self._client_ref()
        if client is None:
            raise SummaryError("the wrapped client is gone")
        return client

    def summarize(self, call: SummaryCall) -> str:
        resp = self._client().messages.create(**call.body, extra_headers=_summary_headers(call))
        return summary_text(resp.model_dump())

    async def summarize_async(self, call: SummaryCall) -> str:
        resp = await self._client().messages.create(**call.body, extra_headers=_summary_headers(call))
        return summary_text(resp.model_dump())

    def after_body(self, p: Prepared, response: Any, body: bytes) -> Any:
        usage = mid = None
        err_type = err_msg = None
        if p.request is not None and response.status_code == 200:
            try:
                obj = json.loads(body)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                u = obj.get("usage")
                usage = u if isinstance(u, dict) else None
                mid = obj.get("id") if isinstance(obj.get("id"), str) else None
        elif response.status_code >= 400:
            try:
                err = json.loads(body).get("error", {})
                err_type, err_msg = str(err.get("type")), str(err.get("message"))
            except (ValueError, AttributeError):
                err_type, err_msg = "api_error", body[:200].decode("utf-8", "replace")
        status = response.status_code
        outcome = (
            "ok"
            if status < 400
            else ("upstream_error" if status in (408, 429) or status >= 500 else "client_error")
        )
        diagnosis = self.inspector.finish(
            p,
            status=status,
            outcome=outcome,
            usage=usage,
            upstream_request_id=response.headers.get("request-id"),
            message_id=mid,
            error_type=err_type,
            error=err_msg,
            response_body=body,
        )
        headers = [
            (k, v)
            for k, v in response.headers.raw
            if k.lower() not in (b"content-length", b"transfer-encoding")
        ]
        if p.request is not None:
            headers.append((b"x-tokenomy-cache", cache_header(usage, diagnosis, p.prediction).encode()))
        if p.run_id is not None:
            headers.append((b"x-tokenomy-run", p.run_id.encode()))
        return self.http.Response(status, headers=headers, content=body, extensions=response.extensions)

    def stream_headers(self, p: Prepared, response: Any) -> list[tuple[bytes, bytes]]:
        headers = list(response.headers.raw)
        if p.request is not None:
            headers.append((b"x-tokenomy-cache", cache_header(None, None, p.prediction).encode()))
        if p.run_id is not None:
            headers.append((b"x-tokenomy-run", p.run_id.encode()))
        return headers


class _Tee:
    """Usage and outcome of one stream, finished exactly once (end, error or close)."""

    def __init__(self, core: _Core, p: Prepared, response: Any) -> None:
        self.core, self.p, self.response = core, p, response
        self.tap = SSETap()
        self.ttft: float | None = None
        self.kept: list[bytes] | None = [] if core.inspector.settings.store_bodies else None
        self.done = False

    def chunk(self, data: bytes) -> None:
        if self.ttft is None:
            self.ttft = time.time() - self.p.started_at
        self.tap.feed(data)
        if self.kept is not None:
            self.kept.append(data)

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        tap = self.tap
        outcome, etype, msg = "ok", None, None
        if error is not None:
            outcome, msg = "aborted", f"{type(error).__name__}: {error}"
        elif tap.error is not None:
            outcome, etype, msg = "upstream_error", str(tap.error.get("type")), str(tap.error.get("message"))
        elif not tap.stopped:
            outcome, msg = "aborted", "stream closed before message_stop"
        self.core.inspector.finish(
            self.p,
            status=self.response.status_code,
            outcome=outcome,
            usage=tap.usage or None,
            ttft_s=self.ttft,
            upstream_request_id=self.response.headers.get("request-id"),
            message_id=tap.message_id,
            error_type=etype,
            error=msg,
            response_body=b"".join(self.kept) if self.kept is not None else None,
        )


def _is_sse(response: Any) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


@lru_cache(maxsize=4)
def _sync_transport(http: ModuleType) -> type:
    """The sync transport, built on the client's own httpx module's base classes (httpx
    asserts a response stream is its own ``SyncByteStream``)."""

    class SyncStream(http.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, tee: _Tee) -> None:
            self.inner, self.tee = inner, tee

        def __iter__(self) -> Iterator[bytes]:
            try:
                for data in self.inner.iter_raw():
                    self.tee.chunk(data)
                    yield data
            except BaseException as e:
                self.tee.finish(e)
                raise
            self.tee.finish()

        def close(self) -> None:
            try:
                self.inner.close()
            finally:
                self.tee.finish()

    class SyncTransport(http.BaseTransport):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, core: _Core) -> None:
            self.inner, self.core = inner, core

        def handle_request(self, request: Any) -> Any:
            p, out = self.core.before(request, request.read())
            if isinstance(out, http.Response):
                return out
            if p is None:
                return self.inner.handle_request(out)
            try:
                response = self.inner.handle_request(out)
            except Exception as e:
                self.core.inspector.finish(
                    p, status=None, outcome="unreachable", error=f"{type(e).__name__}: {e}"
                )
                raise
            if _is_sse(response) and response.status_code == 200:
                tee = _Tee(self.core, p, response)
                headers = self.core.stream_headers(p, response)
                return http.Response(200, headers=headers, stream=SyncStream(response, tee), request=out)
            body = response.read()
            response.close()
            return self.core.after_body(p, response, body)

        def close(self) -> None:
            self.inner.close()

    return SyncTransport


@lru_cache(maxsize=4)
def _async_transport(http: ModuleType) -> type:
    """The async transport, on the client's own httpx module's base classes."""

    class AsyncStream(http.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, tee: _Tee) -> None:
            self.inner, self.tee = inner, tee

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for data in self.inner.aiter_raw():
                    self.tee.chunk(data)
                    yield data
            except BaseException as e:
                self.tee.finish(e)
                raise
            self.tee.finish()

        async def aclose(self) -> None:
            try:
                await self.inner.aclose()
            finally:
                self.tee.finish()

    class AsyncTransport(http.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, core: _Core) -> None:
            self.inner, self.core = inner, core

        async def handle_async_request(self, request: Any) -> Any:
            p, out = await self.core.before_async(request, await request.aread())
            if isinstance(out, http.Response):
                return out
            if p is None:
                return await self.inner.handle_async_request(out)
            try:
                response = await self.inner.handle_async_request(out)
            except Exception as e:
                self.core.inspector.finish(
                    p, status=None, outcome="unreachable", error=f"{type(e).__name__}: {e}"
                )
                raise
            if _is_sse(response) and response.status_code == 200:
                tee = _Tee(self.core, p, response)
                headers = self.core.stream_headers(p, response)
                return http.Response(200, headers=headers, stream=AsyncStream(response, tee), request=out)
            body = await response.aread()
            await response.aclose()
            return self.core.after_body(p, response, body)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return AsyncTransport


def _httpx_module(http: Any) -> ModuleType | None:
    """The httpx module (httpx, or the httpx2 fork newer SDKs use) the client is built on."""
    for cls in type(http).__mro__:
        root = cls.__module__.split(".")[0]
        if cls.__name__ in ("Client", "AsyncClient") and root.startswith("httpx"):
            return sys.modules.get(root)
    return None


def wrap(
    client: Any,
    *,
    db: str | None = None,
    mode: Literal["observe", "optimize"] = "observe",
    rewrites: Iterable[str] = ALL_REWRITES,
    context: ContextOptions | None = None,
    store_bodies: bool = False,
    ledger: bool = True,
) -> Any:
    """Route ``client``'s requests through tokenomy in-process; returns the same client.

    ``db``: the ledger file (default ``$TOKENOMY_HOME/ledger.db``). ``mode="optimize"`` turns
    on the rewrites named in ``rewrites``: by default the cache rewrites (``ALL_REWRITES``:
    stable_prefix, breakpoints, ttl_1h); the context rewrites (``CONTEXT_REWRITES``: mask,
    context_editing, compact) change what the model sees and run only when named, e.g.
    ``rewrites=ALL_REWRITES | {"mask"}``. ``context`` tunes them; compaction summaries are
    written through ``client`` itself (each gets its own ledger row).
    """
    http: Any = getattr(client, "_client", None)
    mod = _httpx_module(http)
    if mod is None:
        raise UserError(
            f"tokenomy.wrap: {type(client).__name__} is not an anthropic.Anthropic or AsyncAnthropic "
            "client; pass the client itself, e.g. tokenomy.wrap(anthropic.Anthropic())"
        )
    if isinstance(rewrites, str):
        rewrites = (rewrites,)
    names = frozenset(rewrites)
    unknown = sorted(names - KNOWN_REWRITES)
    if unknown:
        raise UserError(
            f"tokenomy.wrap: unknown rewrite(s) {', '.join(unknown)}; choose from {', '.join(sorted(KNOWN_REWRITES))}"
        )
    if mode != "optimize" and names & CONTEXT_REWRITES:
        raise UserError(
            f"tokenomy.wrap: rewrites {', '.join(sorted(names & CONTEXT_REWRITES))} need mode='optimize' "
            f"(mode is {mode!r})"
        )
    if getattr(client, _ATTR, None) is not None:
        return client
    settings = GatewaySettings(
        upstream=str(getattr(client, "base_url", "")),
        db_path=db,
        mode=mode,
        rewrites=names,
        context=context or ContextOptions(),
        store_bodies=store_bodies,
        ledger=ledger,
    )
    core = _Core(settings, mod, client)
    inner = http._transport
    cls = _async_transport(mod) if isinstance(http, mod.AsyncClient) else _sync_transport(mod)
    http._transport = cls(inner, core)
    setattr(client, _ATTR, (core, inner))
    return client


def unwrap(client: Any) -> None:
    """Give ``client`` its own transport back and drain its ledger rows to disk."""
    state = getattr(client, _ATTR, None)
    if state is None:
        return
    core, inner = state
    client._client._transport = inner
    setattr(client, _ATTR, None)
    core.close()


def inspector_of(client: Any) -> Inspector | None:
    """The ``Inspector`` behind a wrapped client (its metrics, its runs), or None."""
    state = getattr(client, _ATTR, None)
    return state[0].inspector if state is not None else None
