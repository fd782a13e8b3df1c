"""Context rewrites in optimize mode: compaction, observation masking, server-side context editing.

Unlike the cache rewrites (``_optimize``), these change what the model sees, so each is off
unless asked for by name (``CONTEXT_REWRITES``). They are the library's own functions
(``tokenomy.context``: ``compact``, ``mask_body``, ``context_editing_body``) run per request with
per-run state, in the order compact → mask → context_editing; the caching planner runs after
them, as ``tokenomy simulate`` runs a context transform and then the planner.

State is kept per gateway run id in an LRU (``ContextOptions.max_runs``), so memory follows the
number of live runs. A run pushed out of it starts over: its next request goes out unmasked and
uncompacted (a cache re-write, never a broken request).

Compaction needs a model call (the summary). ``ContextRewriter.start`` decides; when a summary
is due it hands back a ``SummaryCall`` for the caller to send (the gateway: the upstream, with the
client's own key for that one call; ``wrap()``: the wrapped client itself), outside any lock;
``complete`` applies the text. A failed summary, or any rewrite that raises, leaves the request
as it was before that rewrite and the reason goes into the ledger row.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tokenomy.blocks import parse_request
from tokenomy.context.compact import CompactOptions, CompactState, compact, summary_body
from tokenomy.context.editing import BETA, EditingOptions, EditingState, context_editing_body, server_clear
from tokenomy.context.mask import MaskOptions, MaskState, TurnEstimator, mask_body, tool_results
from tokenomy.model import Request, Usage

if TYPE_CHECKING:
    from tokenomy.gateway._pipeline import Inspector
    from tokenomy.gateway._upstream import Upstream

__all__ = [
    "CONTEXT_REWRITES",
    "AsyncSummarizer",
    "ContextOptions",
    "ContextOutcome",
    "ContextRewriter",
    "ContextStep",
    "RequestEstimator",
    "SummaryCall",
    "SummaryError",
    "SyncSummarizer",
    "summary_text",
    "upstream_summarizer",
]

CONTEXT_REWRITES: frozenset[str] = frozenset({"mask", "context_editing", "compact"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextOptions:
    """The knobs of the three context rewrites, and how many runs' state is kept."""

    mask: MaskOptions = MaskOptions()
    editing: EditingOptions = EditingOptions()
    compact: CompactOptions = CompactOptions()
    max_runs: int = 2048


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryCall:
    """One summary request to send: its Messages body, and the run id its ledger row gets."""

    body: dict[str, Any]
    run_id: str
    scope: str = ""


SyncSummarizer = Callable[[SummaryCall], str]
AsyncSummarizer = Callable[[SummaryCall], Awaitable[str]]


class SummaryError(Exception):
    """The summary call failed; the message says how (status and the API's own message)."""


class RequestEstimator(TurnEstimator):
    """The library's ``TurnEstimator``, counting one turn per request however many rewrites ask
    (each rewrite calls ``seen`` with the request's start time), with its memory bounded: at most
    ``max_finished`` finished-run lengths (the newest) and ``max_runs`` dedup entries."""

    def __init__(
        self, *, max_finished: int = 1000, max_runs: int = 4096, ended_after_s: float = 3600.0
    ) -> None:
        super().__init__(ended_after_s=ended_after_s, history=max_finished)
        self.max_runs = max_runs
        self._counted: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def seen(self, run_id: str, at: float) -> int:
        last = self._counted.get(run_id)
        if last is not None and last[0] == at:
            return last[1]
        n = super().seen(run_id, at)
        self._counted[run_id] = (at, n)
        self._counted.move_to_end(run_id)
        while len(self._counted) > self.max_runs:
            self._counted.popitem(last=False)
        return n


@dataclass(slots=True)
class _RunState:
    mask: MaskState | None = None
    editing: EditingState | None = None
    compact: CompactState | None = None
    summarizing: bool = False  # a summary call of this run is in flight


@dataclass(slots=True, kw_only=True)
class ContextStep:
    """One request between ``start`` and ``complete``: the compaction view so far, and the
    summary call to make, if one is due."""

    run_id: str
    at: float
    body: dict[str, Any]
    request: Request
    betas: tuple[str, ...]
    can_add_betas: bool
    state: _RunState
    view: dict[str, Any]
    view_request: Request
    call: SummaryCall | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextOutcome:
    """What the context rewrites made of one request. ``request`` is parsed with the betas it
    will be sent with (the client's plus ``betas_added``)."""

    body: dict[str, Any]
    request: Request
    changed: bool
    entries: tuple[dict[str, Any], ...]
    betas_added: tuple[str, ...]


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


class _Deferred(Exception):
    """Raised by the capturing summarizer: the summary is made outside, then applied."""


class ContextRewriter:
    """The enabled context rewrites of one gateway (or wrapped client), with per-run state.

    Not thread-safe on its own: the ``Inspector`` calls it under its lock.
    """

    def __init__(self, enabled: frozenset[str], options: ContextOptions | None = None) -> None:
        self.enabled = enabled & CONTEXT_REWRITES
        self.options = options or ContextOptions()
        self.estimator = RequestEstimator(max_runs=2 * self.options.max_runs)
        self._runs: OrderedDict[str, _RunState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def _state(self, run_id: str) -> _RunState:
        st = self._runs.get(run_id)
        if st is None:
            est = self.estimator
            st = self._runs[run_id] = _RunState(
                mask=MaskState(run_id=run_id, estimator=est) if "mask" in self.enabled else None,
                editing=EditingState(run_id=run_id, estimator=est)
                if "context_editing" in self.enabled
                else None,
                compact=CompactState(run_id=run_id, estimator=est) if "compact" in self.enabled else None,
            )
            while len(self._runs) > self.options.max_runs:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return st

    def observe(self, run_id: str, usage: Usage, at: float) -> None:
        """Feed a response's usage to the run's states (how much of the prompt is cached now)."""
        st = self._runs.get(run_id)
        if st is None:
            return
        for s in (st.mask, st.editing, st.compact):
            if s is not None:
                s.observe(usage, at)

    # -- one request -------------------------------------------------------------------------

    def start(
        self,
        body: dict[str, Any],
        request: Request,
        *,
        run_id: str,
        scope: str,
        at: float,
        betas: tuple[str, ...],
        can_summarize: bool,
        can_add_betas: bool = True,
    ) -> ContextStep:
        """Apply the run's current compaction and decide whether a new summary is due
        (``step.call``). Nothing is sent from here."""
        st = self._state(run_id)
        step = ContextStep(
            run_id=run_id,
            at=at,
            body=body,
            request=request,
            betas=betas,
            can_add_betas=can_add_betas,
            state=st,
            view=body,
            view_request=request,
        )
        cs = st.compact
        if cs is None:
            return step
        wanted: list[Sequence[Mapping[str, Any]]] = []

        def capture(messages: Sequence[Mapping[str, Any]]) -> str:
            wanted.append(messages)
            raise _Deferred("summary deferred")

        prior_error = cs.last_error
        try:
            step.view, step.view_request, _ = compact(
                body, cs, summarize=capture, options=self.options.compact, at=at, request=request
            )
        except Exception as e:  # a bug or an odd body: this request goes out uncompacted
            step.entries.append({"rewrite": "compact", "error": _error_text(e)})
            return step
        cs.last_error = prior_error
        if cs.summary is None:
            step.view, step.view_request = body, request  # unchanged: keep the very objects
        if not wanted or st.summarizing:
            return step  # nothing due, or this run's summary is being written by another request
        if not can_summarize:
            step.entries.append({"rewrite": "compact", "error": "compaction due, but no summary client here"})
            return step
        opts = self.options.compact
        step.call = SummaryCall(
            body=summary_body(wanted[0], model=opts.summary_model, max_tokens=opts.summary_max_tokens),
            run_id=f"{run_id}.summary",
            scope=scope,
        )
        st.summarizing = True
        return step

    def complete(
        self, step: ContextStep, text: str | None = None, error: str | None = None
    ) -> ContextOutcome:
        """Apply the summary (when one was made), then masking, then context editing."""
        st = step.state
        body, request = step.view, step.view_request
        cs = st.compact
        if step.call is not None:
            st.summarizing = False
            if cs is not None and text is not None:
                body, request = self._apply_summary(step, cs, text)
            else:
                step.entries.append({"rewrite": "compact", "error": error or "the summary call failed"})
        if cs is not None and cs.summary is not None:
            entry = next(
                (e for e in step.entries if e.get("rewrite") == "compact" and "error" not in e), None
            )
            if entry is None:
                entry = {"rewrite": "compact"}
                step.entries.append(entry)
            entry.update(
                replaced_messages=cs.cut - 1,
                summary_tokens=cs.summary_tokens,
                tokens_removed=step.request.total_tokens - request.total_tokens,
            )
        fresh = body is step.body  # is ``request`` parsed from ``body`` with the betas it is sent with?
        if st.mask is not None:
            masked, after = self._mask(step, st.mask, body, request)
            if masked is not body:
                body, request, fresh = masked, after, True
        added: tuple[str, ...] = ()
        if st.editing is not None:
            edited, added = self._edit(step, st.editing, body, request)
            if edited is not body:
                body, fresh = edited, False
        changed = body is not step.body
        if changed and not fresh:
            request = parse_request(body, betas=step.betas + added)
        return ContextOutcome(
            body=body, request=request, changed=changed, entries=tuple(step.entries), betas_added=added
        )

    def abandon(self, step: ContextStep) -> None:
        """The request went away while its summary was being written."""
        if step.call is not None:
            step.state.summarizing = False

    def _apply_summary(
        self, step: ContextStep, cs: CompactState, text: str
    ) -> tuple[dict[str, Any], Request]:
        # the decision was taken in ``start``; trigger_tokens=0 makes compact() take it again
        # with the text already written (state is unchanged: this run had no other compaction)
        opts = replace(self.options.compact, trigger_tokens=0)
        try:
            view, parsed, edits = compact(
                step.body, cs, summarize=lambda _m: text, options=opts, at=step.at, request=step.request
            )
        except Exception as e:
            step.entries.append({"rewrite": "compact", "error": _error_text(e)})
            return step.view, step.view_request
        if not edits:
            step.entries.append({"rewrite": "compact", "error": "summary written but not applied"})
            return step.view, step.view_request
        step.entries.append({"rewrite": "compact", "new": True, "compactions": cs.compactions})
        return view, parsed

    def _mask(
        self, step: ContextStep, ms: MaskState, body: dict[str, Any], request: Request
    ) -> tuple[dict[str, Any], Request]:
        try:
            out, edits = mask_body(body, ms, options=self.options.mask, at=step.at, request=request)
        except Exception as e:
            step.entries.append({"rewrite": "mask", "error": _error_text(e)})
            return body, request
        if not ms.masked:
            return body, request
        after = parse_request(out, betas=step.betas)
        present = sum(1 for r in tool_results(out, after) if r.tool_use_id in ms.masked)
        if not present:
            return body, request
        entry: dict[str, Any] = {
            "rewrite": "mask",
            "masked": present,
            "tokens_removed": request.total_tokens - after.total_tokens,
        }
        if edits:
            entry["new"] = [
                {
                    "path": e.path,
                    "tool_use_id": e.tool_use_id,
                    "tokens_before": e.tokens_before,
                    "tokens_after": e.tokens_after,
                }
                for e in edits
            ]
        step.entries.append(entry)
        return out, after

    def _edit(
        self, step: ContextStep, es: EditingState, body: dict[str, Any], request: Request
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        if "context_management" in body:
            return body, ()  # the client's own choice: left alone
        try:
            out, edits = context_editing_body(
                body, es, options=self.options.editing, at=step.at, request=request
            )
        except Exception as e:
            step.entries.append({"rewrite": "context_editing", "error": _error_text(e)})
            return body, ()
        cfg = out.get("context_management")
        if cfg is None:
            return body, ()
        if BETA not in step.betas and not step.can_add_betas:
            step.entries.append(
                {
                    "rewrite": "context_editing",
                    "error": "due, but its beta header cannot be added here; not sent",
                }
            )
            return body, ()
        edit = cfg["edits"][0]
        _, cleared, tokens = server_clear(out, request)
        entry: dict[str, Any] = {
            "rewrite": "context_editing",
            "trigger": edit["trigger"]["value"],
            "clear_at_least": edit["clear_at_least"]["value"],
            "cleared_tool_uses_modelled": cleared,
            "tokens_removed_modelled": tokens,
        }
        if edits:
            entry["new"] = True
            entry["clearable_tokens"] = edits[0].clearable_tokens
        step.entries.append(entry)
        return out, (() if BETA in step.betas else (BETA,))


# -- the summary call ----------------------------------------------------------------------------


def summary_text(response: Mapping[str, Any]) -> str:
    """The text of a Messages response; ``SummaryError`` when it has none."""
    content = response.get("content")
    text = ""
    if isinstance(content, list):
        text = "".join(
            str(b.get("text", "")) for b in content if isinstance(b, Mapping) and b.get("type") == "text"
        )
    if not text.strip():
        raise SummaryError(f"the summary call returned no text (stop_reason {response.get('stop_reason')!r})")
    return text


_NOT_FOR_SUMMARY = frozenset({"anthropic-beta", "content-type", "content-length", "accept-encoding"})


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return "upstream_error" if status in (408, 429) or status >= 500 else "client_error"


def upstream_summarizer(
    inspector: Inspector, upstream: Upstream, url: str, headers: Sequence[tuple[str, str]]
) -> AsyncSummarizer:
    """The gateway's summarizer for one client request: POST the summary to ``url`` through the
    gateway's own upstream client with that request's headers (its API key included), for this
    one call. The key lives only as long as the request; the call gets its own ledger row."""
    from tokenomy.gateway._upstream import UpstreamDropped, UpstreamTimeout, UpstreamUnreachable

    async def summarize(call: SummaryCall) -> str:
        raw = json.dumps(call.body, ensure_ascii=False, separators=(",", ":")).encode()
        out = [
            (k, v)
            for k, v in headers
            if k.lower() not in _NOT_FOR_SUMMARY and not k.lower().startswith("x-tokenomy-")
        ]
        out += [("content-type", "application/json"), ("accept-encoding", "identity")]
        p = inspector.prepare(
            "POST", "/v1/messages", raw, scope=call.scope, run_header=call.run_id, internal=True
        )
        try:
            resp = await upstream.send("POST", url, out, raw)
        except (UpstreamUnreachable, UpstreamTimeout) as e:
            inspector.finish(p, status=None, outcome="unreachable", error=_error_text(e))
            raise SummaryError(f"the summary call did not reach the upstream: {e}") from None
        try:
            body = b"".join([c async for c in resp.chunks()])
        except (UpstreamTimeout, UpstreamDropped) as e:
            inspector.finish(p, status=resp.status, outcome="dropped", error=_error_text(e))
            raise SummaryError(f"the summary call's response was cut: {e}") from None
        finally:
            await resp.aclose()
        rid = next((v.decode("latin-1") for k, v in resp.headers if k.lower() == b"request-id"), None)
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        obj = obj if isinstance(obj, dict) else {}
        err = obj.get("error") if isinstance(obj.get("error"), dict) else None
        usage = obj.get("usage") if resp.status == 200 and isinstance(obj.get("usage"), dict) else None
        inspector.finish(
            p,
            status=resp.status,
            outcome=_outcome(resp.status),
            usage=usage,
            upstream_request_id=rid,
            message_id=obj.get("id") if isinstance(obj.get("id"), str) else None,
            error_type=str(err.get("type")) if err else None,
            error=str(err.get("message"))[:2000] if err else None,
            response_body=body,
        )
        if resp.status != 200:
            detail = (
                f"{err.get('type')}: {err.get('message')}" if err else body[:200].decode("utf-8", "replace")
            )
            raise SummaryError(f"the summary call answered {resp.status} ({detail})")
        return summary_text(obj)

    return summarize
