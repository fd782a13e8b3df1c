"""The one small interface between the batch machinery and the API: the official SDK underneath.

Everything upstream goes through ``Upstream``: create / retrieve / list / cancel batches, stream
their results, and send one live Messages request. Bodies stay plain dicts; the SDK's models are
turned into dicts at this edge only. ``anthropic`` is imported when a client is built, so
``tokenomy --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tokenomy.errors import UserError

__all__ = ["COUNT_KEYS", "BatchInfo", "Upstream", "UpstreamError", "make_client"]

COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


class UpstreamError(UserError):
    """The API refused or failed a call, after the SDK's own retries."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchInfo:
    """The parts of a ``MessageBatch`` the batch machinery reads (spec §4.4)."""

    id: str
    processing_status: str
    counts: Mapping[str, int] = field(default_factory=dict)
    created_at: float | None = None
    ended_at: float | None = None
    expires_at: float | None = None

    @property
    def total(self) -> int:
        return sum(int(self.counts.get(k, 0)) for k in COUNT_KEYS)

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"


def _ts(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _info(batch: Any) -> BatchInfo:
    rc = batch.request_counts
    return BatchInfo(
        id=batch.id,
        processing_status=batch.processing_status,
        counts={k: int(getattr(rc, k, 0) or 0) for k in COUNT_KEYS},
        created_at=_ts(batch.created_at),
        ended_at=_ts(batch.ended_at),
        expires_at=_ts(batch.expires_at),
    )


def make_client(
    *, api_key: str | None, base_url: str | None, max_retries: int = 2, timeout: float = 600.0
) -> Any:
    """An ``anthropic.Anthropic`` client; the key comes from the caller (the CLI reads the env)."""
    try:
        import anthropic
    except ImportError:  # pragma: no cover - anthropic is a declared extra
        raise UserError("the batch commands need the anthropic SDK: pip install 'tokenomy[sdk]'") from None
    if not api_key:
        raise UserError("no API key: set ANTHROPIC_API_KEY (or pass a client with an api_key)")
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)


class Upstream:
    """Batches and live calls over an ``anthropic.Anthropic`` client; SDK errors become ``UpstreamError``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import anthropic

        try:
            return fn(*args, **kwargs)
        except anthropic.APIStatusError as e:
            raise UpstreamError(f"{what} failed: HTTP {e.status_code}: {_message(e)}") from e
        except anthropic.APIConnectionError as e:
            base = getattr(self.client, "base_url", "")
            raise UpstreamError(
                f"{what} failed: cannot reach {base} ({e}); check ANTHROPIC_BASE_URL / --base-url"
            ) from e

    def create_batch(self, requests: Sequence[Mapping[str, Any]]) -> BatchInfo:
        return _info(
            self._call("creating a batch", self.client.messages.batches.create, requests=list(requests))
        )

    def retrieve(self, batch_id: str) -> BatchInfo:
        return _info(self._call(f"retrieving {batch_id}", self.client.messages.batches.retrieve, batch_id))

    def cancel(self, batch_id: str) -> BatchInfo:
        return _info(self._call(f"canceling {batch_id}", self.client.messages.batches.cancel, batch_id))

    def newest_batch_id(self) -> str:
        """The id of the newest batch in the workspace, or '' when there is none."""
        page = self._call("listing batches", self.client.messages.batches.list, limit=1)
        data = list(page.data)
        return str(data[0].id) if data else ""

    def batches_since(self, watermark: str, *, limit: int = 100) -> list[BatchInfo]:
        """Batches newer than ``watermark`` (newest first); every batch when the watermark is ''."""
        out: list[BatchInfo] = []
        page = self._call("listing batches", self.client.messages.batches.list, limit=limit)
        for batch in page:  # the SDK pages on with after_id
            if watermark and batch.id == watermark:
                break
            out.append(_info(batch))
        return out

    def list_batches(self, *, limit: int = 20) -> list[BatchInfo]:
        page = self._call("listing batches", self.client.messages.batches.list, limit=limit)
        return [_info(b) for b in page.data]

    def results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Each ``{"custom_id", "result"}`` line of an ended batch, as plain dicts."""
        decoder = self._call(
            f"downloading results of {batch_id}", self.client.messages.batches.results, batch_id
        )
        for line in decoder:
            yield line.to_dict()

    def create_message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One live Messages call; returns the response body as a dict."""
        msg = self._call("a live request", self.client.messages.create, **dict(params))
        out: dict[str, Any] = msg.to_dict()
        return out

    def live_result(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One live call, answered in a batch result's shape: ``succeeded`` or ``errored``.

        A refused request is an ``errored`` line like in a batch; only an unreachable upstream raises.
        """
        import anthropic

        try:
            msg = self.client.messages.create(**dict(params))
        except anthropic.APIStatusError as e:
            body = e.body if isinstance(e.body, Mapping) else None
            err = body.get("error") if body else None
            if not isinstance(err, Mapping):
                err = {"type": "api_error", "message": _message(e)}
            return {
                "type": "errored",
                "error": {"type": "error", "error": dict(err), "request_id": e.request_id},
            }
        except anthropic.APIConnectionError as e:
            base = getattr(self.client, "base_url", "")
            raise UpstreamError(
                f"a live request failed: cannot reach {base} ({e}); check ANTHROPIC_BASE_URL"
            ) from e
        return {"type": "succeeded", "message": msg.to_dict()}


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping) and isinstance(err.get("message"), str):
            return str(err["message"])
    return str(getattr(e, "message", e))
