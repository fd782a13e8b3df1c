"""The gateway's upstream client behind one small interface, so tests and benchmarks can swap it.

Two implementations: aiohttp (the default: on these machines it added about 4x less latency
than httpx, see docs/gateway.md) and httpx (used when a test injects an
``httpx.AsyncBaseTransport``). Both pass bytes through untouched: no decompression, no
re-encoding. Timeouts everywhere: connecting, waiting for the response headers, and between
two chunks of a body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = [
    "UpstreamDropped",
    "UpstreamTimeout",
    "AiohttpUpstream",
    "HttpxUpstream",
    "Upstream",
    "UpstreamResponse",
    "UpstreamUnreachable",
]

Headers = Sequence[tuple[str, str]]


class UpstreamUnreachable(Exception):
    """Could not connect (refused, DNS, TLS)."""


class UpstreamTimeout(Exception):
    """Connected, but the upstream did not answer in time."""


class UpstreamDropped(Exception):
    """The upstream closed the connection in the middle of a response body."""


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def send(self, method: str, url: str, headers: Headers, body: bytes) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


# -- aiohttp -------------------------------------------------------------------------------------


class _AiohttpResponse:
    def __init__(self, resp: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = list(resp.raw_headers)
        self._read_timeout = read_timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        import aiohttp

        content = self._resp.content
        while True:
            try:
                data = await asyncio.wait_for(content.readany(), self._read_timeout)
            except TimeoutError:
                raise UpstreamTimeout(f"no data from upstream for {self._read_timeout:g}s") from None
            except aiohttp.ClientError as e:
                raise UpstreamDropped(f"{type(e).__name__}: {e}") from None
            if not data:
                return
            yield data

    async def aclose(self) -> None:
        self._resp.release()


class AiohttpUpstream:
    """One ``aiohttp.ClientSession`` per event loop, created on first use."""

    def __init__(
        self, *, connect_timeout: float = 10.0, read_timeout: float = 600.0, limit: int = 1000
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.connect_timeout, sock_read=self.read_timeout
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(self, method: str, url: str, headers: Headers, body: bytes) -> UpstreamResponse:
        import aiohttp

        session = self._get_session()
        try:
            try:
                resp = await session.request(
                    method, url, headers=list(headers), data=body or None, allow_redirects=False
                )
            except aiohttp.ServerDisconnectedError:
                # a pooled keep-alive connection the upstream closed as we reused it: nothing was
                # answered on it, so one more try on a fresh connection is safe
                resp = await session.request(
                    method, url, headers=list(headers), data=body or None, allow_redirects=False
                )
        except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as e:
            raise UpstreamUnreachable(str(e)) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise UpstreamTimeout(str(e) or f"no response from upstream in {self.read_timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise UpstreamUnreachable(f"{type(e).__name__}: {e}") from None
        return _AiohttpResponse(resp, self.read_timeout)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- httpx ---------------------------------------------------------------------------------------


class _HttpxResponse:
    def __init__(self, resp: httpx.Response, read_timeout: float) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers = list(resp.headers.raw)
        self._read_timeout = read_timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        import httpx

        if self._resp.is_stream_consumed:  # a transport that read the body already (MockTransport)
            if self._resp.content:
                yield self._resp.content
            return
        it = self._resp.aiter_raw().__aiter__()
        while True:
            try:
                data = await asyncio.wait_for(it.__anext__(), self._read_timeout)
            except StopAsyncIteration:
                return
            except (TimeoutError, httpx.TimeoutException):
                raise UpstreamTimeout(f"no data from upstream for {self._read_timeout:g}s") from None
            except httpx.HTTPError as e:
                raise UpstreamDropped(f"{type(e).__name__}: {e}") from None
            if data:
                yield data

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxUpstream:
    """httpx, optionally over an injected transport (``httpx.MockTransport``, ``ASGITransport``)."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
    ) -> None:
        self.transport = transport
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            kwargs: dict[str, Any] = {}
            if self.transport is not None:
                kwargs["transport"] = self.transport
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
                follow_redirects=False,
                trust_env=False,
                **kwargs,
            )
        return self._client

    async def send(self, method: str, url: str, headers: Headers, body: bytes) -> UpstreamResponse:
        import httpx

        client = self._get_client()
        req = client.build_request(method, url, headers=list(headers), content=body or None)
        try:
            resp = await client.send(req, stream=True)
        except httpx.ConnectError as e:
            raise UpstreamUnreachable(str(e)) from None
        except httpx.TimeoutException as e:
            raise UpstreamTimeout(str(e) or "upstream timed out") from None
        except httpx.HTTPError as e:
            raise UpstreamUnreachable(f"{type(e).__name__}: {e}") from None
        return _HttpxResponse(resp, self.read_timeout)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
