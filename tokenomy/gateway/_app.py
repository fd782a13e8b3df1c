"""The gateway as a pure ASGI app: every ``/v1/*`` path proxied, plus ``/metrics`` and ``/healthz``.

Pure ASGI (no framework routing, no middleware stack) because every microsecond here is added
to every request. Streams pass through chunk by chunk as they arrive while a tap reads usage on
the side; non-streaming responses are read whole (they are one JSON object) so their
``x-tokenomy-cache`` header can carry the real outcome. Every request ends in exactly one
ledger row, whatever happened: refused, upstream error, timeout, dropped stream, client gone.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from tokenomy.errors import ApiRequestError
from tokenomy.gateway._context import upstream_summarizer
from tokenomy.gateway._errors import api_error_body, error_body, new_request_id, sse_error_event
from tokenomy.gateway._pipeline import MESSAGES, GatewaySettings, Inspector, Prepared, cache_header, key_scope
from tokenomy.gateway._sse import SSETap
from tokenomy.gateway._upstream import Upstream, UpstreamDropped, UpstreamTimeout, UpstreamUnreachable
from tokenomy.ledger.requests import LedgerWriter

__all__ = ["GatewayApp"]

log = logging.getLogger("tokenomy.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# RFC 9110 §7.6.1 hop-by-hop headers, plus what the proxy recomputes itself
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
_OURS = frozenset({b"x-tokenomy-run", b"x-tokenomy-token"})  # for the gateway, never forwarded
_SKIP = _HOP | _OURS
_JSON = [(b"content-type", b"application/json")]


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (408, 429) or status >= 500:
        return "upstream_error"
    return "client_error"


class GatewayApp:
    """``create_app`` builds one; ``close()`` flushes the ledger when no ASGI lifespan runs."""

    def __init__(
        self, settings: GatewaySettings, upstream: Upstream, writer: LedgerWriter | None, inspector: Inspector
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.writer = writer
        self.inspector = inspector
        self.base = settings.upstream.rstrip("/")
        self._tokens = tuple(t.encode() for t in settings.auth_tokens)

    async def aclose(self) -> None:
        await self.upstream.aclose()
        if self.writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.writer.close)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if path == "/healthz":
            await _reply(send, 200, b'{"status":"ok"}', _JSON)
            return
        if self._tokens and not self._authorized(headers):
            rid = new_request_id()
            msg = "tokenomy gateway: missing or wrong gateway token; send it as the x-tokenomy-token header"
            await _reply(send, 401, error_body(401, msg, rid), [*_JSON, (b"request-id", rid.encode())])
            return
        if path == "/metrics":
            body = self.inspector.metrics.render().encode()
            await _reply(send, 200, body, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])
            return
        if not path.startswith("/v1/"):
            rid = new_request_id()
            msg = f"tokenomy gateway: no route for {path!r}; the gateway serves /v1/*, /metrics and /healthz"
            await _reply(send, 404, error_body(404, msg, rid), [*_JSON, (b"request-id", rid.encode())])
            return
        await self._proxy(scope, receive, send, path, headers)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"x-tokenomy-token" or name == b"proxy-authorization":
                given = value[7:] if value.lower().startswith(b"bearer ") else value
                if any(hmac.compare_digest(given, t) for t in self._tokens):
                    return True
        return False

    async def _read_body(self, receive: Receive, limit: int) -> bytes | None:
        """The whole request body, or None once it passes ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    return None
                parts.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(parts)

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, path: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        method: str = scope["method"]
        api_key: str | None = None
        run_header: str | None = None
        betas: tuple[str, ...] = ()
        forward: list[tuple[str, str]] = []
        messages_call = path.startswith(MESSAGES)
        for name, value in headers:
            if name in _SKIP:
                if name == b"x-tokenomy-run":
                    run_header = value.decode("latin-1")[:200] or None
                continue
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"authorization" and api_key is None:
                api_key = value.decode("latin-1")
            elif name == b"anthropic-beta":
                betas += tuple(b.strip() for b in value.decode("latin-1").split(",") if b.strip())
            elif name == b"accept-encoding" and messages_call:
                continue  # usage must be readable on the way back; compression is pointless on loopback
            forward.append((name.decode("latin-1"), value.decode("latin-1")))
        limit = self.settings.max_body_bytes if method == "POST" else 1 << 20
        if path.startswith("/v1/messages/batches"):
            limit = 256 * 1024 * 1024  # spec §7.1
        raw = await self._read_body(receive, limit)
        endpoint = path
        if raw is None:
            err = ApiRequestError(
                f"Request exceeds the maximum allowed number of bytes ({limit}).",
                status=413,
                error_type="request_too_large",
            )
            rid = self.inspector.reject(None, method, endpoint, err, b"")
            await _reply(send, 413, api_error_body(err, rid), [*_JSON, (b"request-id", rid.encode())])
            return
        try:
            p = await self.inspector.prepare_async(
                method,
                endpoint,
                raw,
                scope=key_scope(api_key),
                run_header=run_header,
                betas=betas,
                summarize=upstream_summarizer(self.inspector, self.upstream, self.base + MESSAGES, forward)
                if self.inspector.context is not None
                else None,
                add_betas=True,
            )
        except ApiRequestError as err:
            rid = self.inspector.reject(None, method, endpoint, err, raw)
            await _reply(send, err.status, api_error_body(err, rid), [*_JSON, (b"request-id", rid.encode())])
            return
        forward = p.headers_out(forward)  # the beta header context editing needs
        if messages_call:
            forward.append(("accept-encoding", "identity"))
        qs: bytes = scope.get("query_string", b"")
        url = self.base + path + ("?" + qs.decode("latin-1") if qs else "")
        await self._forward(p, url, forward, receive, send)

    async def _forward(
        self, p: Prepared, url: str, headers: list[tuple[str, str]], receive: Receive, send: Send
    ) -> None:
        finished = False
        try:
            resp = await self.upstream.send(p.method, url, headers, p.body_out)
        except UpstreamUnreachable as e:
            await self._fail(p, send, 502, "unreachable", f"tokenomy gateway: upstream unreachable: {e}")
            return
        except UpstreamTimeout as e:
            await self._fail(p, send, 504, "timeout", f"tokenomy gateway: upstream timed out: {e}")
            return
        try:
            out_headers, is_sse, upstream_rid = _response_headers(resp.headers)
            if p.run_id is not None:
                out_headers.append((b"x-tokenomy-run", p.run_id.encode()))
            if is_sse and resp.status == 200:
                finished = True
                await self._stream(p, resp, out_headers, upstream_rid, receive, send)
                return
            try:
                body = await resp.read()
            except UpstreamTimeout as e:
                finished = True
                await self._fail(p, send, 504, "timeout", f"tokenomy gateway: upstream timed out: {e}")
                return
            except UpstreamDropped as e:
                finished = True
                await self._fail(
                    p, send, 502, "dropped", f"tokenomy gateway: upstream dropped the response: {e}"
                )
                return
            usage, mid = _usage_of(body) if p.request is not None and resp.status == 200 else (None, None)
            err_type, err_msg = _error_of(body) if resp.status >= 400 else (None, None)
            finished = True
            diagnosis = self.inspector.finish(
                p,
                status=resp.status,
                outcome=_outcome(resp.status),
                usage=usage,
                upstream_request_id=upstream_rid,
                message_id=mid,
                error_type=err_type,
                error=err_msg,
                response_body=body,
            )
            if p.request is not None:
                out_headers.append(
                    (b"x-tokenomy-cache", cache_header(usage, diagnosis, p.prediction).encode())
                )
            out_headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": resp.status, "headers": out_headers})
            await send({"type": "http.response.body", "body": body})
        except BaseException as e:  # cancelled at shutdown included: the row is still written
            if not finished:
                self.inspector.finish(p, status=None, outcome="aborted", error=f"{type(e).__name__}: {e}")
            raise
        finally:
            await resp.aclose()

    async def _stream(
        self,
        p: Prepared,
        resp: Any,
        out_headers: list[tuple[bytes, bytes]],
        upstream_rid: str | None,
        receive: Receive,
        send: Send,
    ) -> None:
        if p.request is not None:
            out_headers.append((b"x-tokenomy-cache", cache_header(None, None, p.prediction).encode()))
        tap = SSETap()
        ttft: float | None = None
        outcome = "ok"
        error: str | None = None
        error_type: str | None = None
        kept: list[bytes] | None = [] if self.settings.store_bodies else None
        disconnected = asyncio.Event()
        held = b""
        # One watcher per stream (not one ``asyncio.wait`` per chunk): when the client leaves, it
        # cancels this task while the chunk loop runs, so a stalled upstream cannot hold us.
        main = asyncio.current_task()
        pumping = False

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    disconnected.set()
                    if pumping and main is not None:
                        main.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            pumping = True
            try:
                await send({"type": "http.response.start", "status": 200, "headers": out_headers})
                async for chunk in resp.chunks():
                    if ttft is None:
                        ttft = time.time() - p.started_at
                    tap.feed(chunk)
                    if kept is not None:
                        kept.append(chunk)
                    # pass on whole lines only: a stream cut mid-line must not hand the client half
                    # a JSON object before the error event (the tail is almost always empty)
                    data = held + chunk if held else chunk
                    cut = data.rfind(b"\n") + 1
                    held = data[cut:]
                    if cut:
                        await send({"type": "http.response.body", "body": data[:cut], "more_body": True})
            except asyncio.CancelledError:
                if not disconnected.is_set() or main is None:
                    raise
                main.uncancel()
                outcome, error = "aborted", "client disconnected mid-stream"
            finally:
                pumping = False
            if outcome == "ok":
                outcome, error_type, error = _stream_outcome(tap, disconnected.is_set())
                if outcome == "dropped" and error is not None:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": sse_error_event("api_error", error),
                            "more_body": True,
                        }
                    )
            if not disconnected.is_set():
                await send({"type": "http.response.body", "body": held if tap.stopped else b""})
        except UpstreamTimeout as e:
            outcome, error_type, error = (
                "timeout",
                "timeout_error",
                f"tokenomy gateway: upstream timed out: {e}",
            )
            await _try_send(send, sse_error_event("timeout_error", error))
        except UpstreamDropped as e:
            outcome, error_type = "dropped", "api_error"
            error = f"tokenomy gateway: the upstream dropped the stream: {e}"
            await _try_send(send, sse_error_event("api_error", error))
        except OSError as e:  # the client went away while we wrote
            outcome, error = "aborted", f"client connection lost: {e}"
        finally:
            watcher.cancel()
            self.inspector.finish(
                p,
                status=200,
                outcome=outcome,
                usage=tap.usage or None,
                ttft_s=ttft,
                upstream_request_id=upstream_rid,
                message_id=tap.message_id,
                error_type=error_type,
                error=error,
                response_body=b"".join(kept) if kept is not None else None,
            )

    async def _fail(self, p: Prepared, send: Send, status: int, outcome: str, message: str) -> None:
        log.warning("%s %s -> %d (%s)", p.method, p.endpoint, status, outcome)
        etype = "timeout_error" if status == 504 else "api_error"
        self.inspector.finish(p, status=status, outcome=outcome, error_type=etype, error=message)
        body = error_body(status, message, p.request_id, etype)
        await _reply(send, status, body, [*_JSON, (b"request-id", p.request_id.encode())])


def _stream_outcome(tap: SSETap, disconnected: bool) -> tuple[str, str | None, str | None]:
    """(outcome, error type, error) of a stream that ended without an exception."""
    if disconnected:
        return "aborted", None, "client disconnected mid-stream"
    if tap.error is not None:
        return "upstream_error", str(tap.error.get("type")), str(tap.error.get("message"))
    if not tap.stopped:
        return "dropped", "api_error", "tokenomy gateway: the upstream stream ended before message_stop"
    return "ok", None, None


def _response_headers(
    raw: Sequence[tuple[bytes, bytes]],
) -> tuple[list[tuple[bytes, bytes]], bool, str | None]:
    """One pass over the upstream's headers: what to pass on, whether it is SSE, its request id."""
    out: list[tuple[bytes, bytes]] = []
    is_sse = False
    rid: str | None = None
    for k, v in raw:
        k = k.lower()
        if k in _HOP:
            continue
        if k == b"content-type":
            is_sse = v.startswith(b"text/event-stream")
        elif k == b"request-id":
            rid = v.decode("latin-1")
        out.append((k, v))
    return out, is_sse, rid


async def _try_send(send: Send, chunk: bytes) -> None:
    try:
        await send({"type": "http.response.body", "body": chunk, "more_body": False})
    except OSError:
        pass


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _usage_of(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        obj = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    usage = obj.get("usage")
    mid = obj.get("id")
    return (usage if isinstance(usage, dict) else None), (mid if isinstance(mid, str) else None)


def _error_of(body: bytes) -> tuple[str | None, str | None]:
    try:
        obj = json.loads(body)
    except ValueError:
        return "api_error", body[:200].decode("utf-8", "replace")
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("type")), str(err.get("message"))[:2000]
    return None, None
