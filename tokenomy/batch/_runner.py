"""Submit, resume, poll, collect and retry one input file's requests: ``BatchRunner``.

The order of every step is what makes a crash harmless (see ``_state``): the intent is written
before each call that creates something upstream, and a batch that was created but never
recorded is found again by listing the batches newer than the intent's watermark. Named
checkpoints (``planned``, ``before_create``, ``after_create``, ``after_record``, ``mid_collect``,
``after_collect``, ``before_live``, ``after_warm``) let a test kill the process at each of them.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from tokenomy.batch._client import BatchInfo, Upstream
from tokenomy.batch._costs import CostReport, Line, build_cost_report, cost_json, line_cost
from tokenomy.batch._input import BatchInput, Item, LaneMode, Limits, chunk_items, request_bytes
from tokenomy.batch._state import FINAL, Chunk, Job, Store
from tokenomy.batch._warm import SharedPrefix, find_shared_prefixes, mark_prefix, warm_body
from tokenomy.errors import UserError

__all__ = ["RETRYABLE", "BatchRunner", "Checkpoints", "Prepared", "SubmitOptions", "prepare"]

RETRYABLE = ("errored", "expired", "canceled")


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOptions:
    """How ``BatchRunner.run`` behaves; the CLI maps its flags onto this."""

    limits: Limits = field(default_factory=Limits)
    lane: LaneMode = "batch"
    warm: bool = False
    retry: tuple[str, ...] = ()
    wait: bool = False
    poll_initial_s: float = 2.0
    poll_max_s: float = 60.0
    poll_factor: float = 1.5
    live_concurrency: int = 4
    new_job: bool = False


class Checkpoints:
    """Named steps; ``crash_at`` ("step" or "step#n" for its n-th passage) SIGKILLs the process there.

    Only for crash tests: the CLI passes ``TOKENOMY_BATCH_CRASH_AT`` in.
    """

    def __init__(self, crash_at: str | None = None) -> None:
        step, _, nth = (crash_at or "").partition("#")
        self.step = step
        self.nth = int(nth) if nth else 1
        self.seen: dict[str, int] = {}

    def __call__(self, step: str) -> None:
        self.seen[step] = self.seen.get(step, 0) + 1
        if step == self.step and self.seen[step] == self.nth:
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """What is sent for each item (the shared prefix marked when warming), and the warm plan."""

    wire: dict[int, dict[str, Any]]
    sizes: dict[int, int]
    prefixes: tuple[SharedPrefix, ...] = ()
    marked: frozenset[int] = frozenset()

    def warm_plan(self) -> dict[str, Any] | None:
        if not self.prefixes:
            return None
        return {"prefixes": [p.to_json() for p in self.prefixes], "marked": len(self.marked)}


def prepare(inp: BatchInput, *, warm: bool) -> Prepared:
    """Decide the wire params of every item; with ``warm``, mark the shared prefix where allowed."""
    wire = {it.index: it.params for it in inp.items}
    sizes = {it.index: it.size for it in inp.items}
    if not warm:
        return Prepared(wire=wire, sizes=sizes)
    batch_items = [(it.index, it.params) for it in inp.items if it.lane == "batch"]
    prefixes = tuple(find_shared_prefixes(batch_items))
    by_idx = {it.index: it for it in inp.items}
    marked: set[int] = set()
    for p in prefixes:
        for idx in p.members:
            new = mark_prefix(wire[idx], p)
            if new is not None:
                wire[idx] = new
                sizes[idx] = request_bytes(by_idx[idx].custom_id, new)
                marked.add(idx)
    return Prepared(wire=wire, sizes=sizes, prefixes=prefixes, marked=frozenset(marked))


def _result_status(result: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    kind = str(result.get("type", "errored"))
    if kind not in FINAL:
        kind = "errored"
    usage = None
    if kind == "succeeded":
        msg = result.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
            usage = msg["usage"]
    return kind, usage


Progress = Callable[[Job, Sequence[Chunk]], None]


class BatchRunner:
    """Drives one job against ``upstream``, keeping every step in ``store``."""

    def __init__(
        self,
        upstream: Upstream,
        store: Store,
        *,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
        checkpoint: Callable[[str], None] | None = None,
        notes: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.store = store
        self.sleep = sleep
        self.progress = progress
        self.checkpoint = checkpoint or Checkpoints()
        self.note = notes or (lambda _msg: None)

    # -- the whole flow --------------------------------------------------------------------

    def open_job(self, inp: BatchInput, opts: SubmitOptions) -> tuple[Job, Prepared, bool]:
        """Find the job for this file (resume) or record a new one with its chunks planned."""
        job = None if opts.new_job else self.store.find_job(inp.path, inp.content_hash)
        if job is not None:
            prepared = prepare(inp, warm=job.warm is not None)
            if opts.lane != job.lane_mode or opts.warm != (job.warm is not None):
                self.note(
                    f"resuming job {job.id} with the choices it was started with "
                    f"(--lane {job.lane_mode}{', --warm' if job.warm is not None else ''})"
                )
            return job, prepared, True
        prepared = prepare(inp, warm=opts.warm)
        batch_items = [it for it in inp.items if it.lane == "batch"]
        chunks = [
            (self._chunk_bytes(part, prepared), 0, [it.index for it in part])
            for part in chunk_items(self._sized(batch_items, prepared), opts.limits)
        ]
        job = self.store.create_job(
            path=inp.path,
            content_hash=inp.content_hash,
            lane_mode=opts.lane,
            warm=prepared.warm_plan() if opts.warm else None,
            items=[(it.index, it.line, it.custom_id, it.model, it.lane) for it in inp.items],
            chunks=chunks,
        )
        return job, prepared, False

    @staticmethod
    def _sized(items: list[Item], prepared: Prepared) -> list[Item]:
        from dataclasses import replace

        return [
            replace(it, size=prepared.sizes[it.index]) if prepared.sizes[it.index] != it.size else it
            for it in items
        ]

    @staticmethod
    def _chunk_bytes(part: Sequence[Item], prepared: Prepared) -> int:
        return len(b'{"requests":[]}') + sum(prepared.sizes[it.index] for it in part) + max(len(part) - 1, 0)

    def run(self, inp: BatchInput, opts: SubmitOptions) -> Job:
        """Submit what is not submitted yet; with ``opts.wait``, see it through to the end."""
        job, prepared, _resumed = self.open_job(inp, opts)
        self.checkpoint("planned")
        if job.warm is not None and job.warm_result is None:
            self._warm(job, inp, prepared)
            job = self.store.job(job.id) or job
        self._send_live(job, prepared, opts.live_concurrency)
        custom_ids = {it.index: it.custom_id for it in inp.items}
        while True:
            self.submit_planned(job, prepared, custom_ids)
            if not opts.wait:
                return job
            self.wait(job, opts)
            chunker = self._retry_chunker(inp, prepared, opts.limits)
            if not opts.retry or self.store.plan_retries(job.id, opts.retry, chunker) == 0:
                return job

    def _retry_chunker(
        self, inp: BatchInput, prepared: Prepared, limits: Limits
    ) -> Callable[[list[int]], list[tuple[int, list[int]]]]:
        by_idx = {it.index: it for it in inp.items}

        def chunker(idxs: list[int]) -> list[tuple[int, list[int]]]:
            items = self._sized([by_idx[i] for i in idxs], prepared)
            return [
                (self._chunk_bytes(part, prepared), [it.index for it in part])
                for part in chunk_items(items, limits)
            ]

        return chunker

    # -- warm-up and the live lane ---------------------------------------------------------

    def _warm(self, job: Job, inp: BatchInput, prepared: Prepared) -> None:
        by_idx = {it.index: it for it in inp.items}
        sent: list[dict[str, Any]] = []
        for p in prepared.prefixes:
            body = warm_body(by_idx[p.source].params, p)
            if body is None:
                self.note(
                    f"--warm: the shared prefix of {p.model} reaches into the messages of requests that use "
                    "thinking, a forced tool or an output format, which max_tokens 0 refuses; not warmed"
                )
                continue
            result = self.upstream.live_result(body)
            kind, usage = _result_status(result)
            if kind != "succeeded":
                err = result.get("error", {}).get("error", {})
                self.note(
                    f"--warm: the warm-up request for {p.model} failed ({err.get('message', kind)}); continuing"
                )
            sent.append({"model": p.model, "status": kind, "usage": usage, "tokens": p.tokens})
        self.store.set_warm_result(job.id, {"requests": sent})
        self.checkpoint("after_warm")

    def _send_live(self, job: Job, prepared: Prepared, concurrency: int) -> None:
        pending = self.store.live_pending(job.id)
        if not pending:
            return
        self.store.mark_sending(job.id, [it.idx for it in pending])
        self.checkpoint("before_live")
        with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
            futures = {pool.submit(self.upstream.live_result, prepared.wire[it.idx]): it for it in pending}
            for fut in as_completed(futures):
                it = futures[fut]
                result = fut.result()
                kind, usage = _result_status(result)
                self.store.record_live(job.id, it.idx, kind, usage, result)

    # -- batches ---------------------------------------------------------------------------

    def submit_planned(self, job: Job, prepared: Prepared, custom_ids: dict[int, str]) -> None:
        for chunk in self.store.chunks(job.id):
            if chunk.state in ("planned", "creating"):
                self._submit_chunk(chunk, prepared, custom_ids)

    def _submit_chunk(self, chunk: Chunk, prepared: Prepared, custom_ids: dict[int, str]) -> None:
        if chunk.state == "creating":
            found = self._reconcile(chunk)
            if found is not None:
                self.note(f"found batch {found.id} created before an interruption; adopting it")
                self.store.mark_submitted(chunk.id, found.id, found.processing_status, dict(found.counts))
                return
            watermark = chunk.watermark or ""
        else:
            watermark = self.upstream.newest_batch_id()
        self.store.mark_creating(chunk.id, watermark)
        idxs = [it.idx for it in self.store.chunk_items(chunk.id)]
        requests = [{"custom_id": custom_ids[i], "params": prepared.wire[i]} for i in idxs]
        self.checkpoint("before_create")
        info = self.upstream.create_batch(requests)
        self.checkpoint("after_create")
        self.store.mark_submitted(chunk.id, info.id, info.processing_status, dict(info.counts))
        self.checkpoint("after_record")

    def _reconcile(self, chunk: Chunk) -> BatchInfo | None:
        """The batch this chunk's interrupted create call made, if it made one."""
        claimed = self.store.claimed_batch_ids()
        candidates = [
            b
            for b in self.upstream.batches_since(chunk.watermark or "")
            if b.id not in claimed and b.total == chunk.n
        ]
        return candidates[-1] if candidates else None

    def refresh(self, job: Job, *, collect: bool) -> list[Chunk]:
        """Ask upstream about every submitted chunk; collect the ended ones when ``collect``."""
        for chunk in self.store.chunks(job.id):
            if chunk.state != "submitted" or chunk.batch_id is None:
                continue
            if chunk.processing_status != "ended" or not collect:
                info = self.upstream.retrieve(chunk.batch_id)
                self.store.update_progress(chunk.id, info.processing_status, dict(info.counts), info.ended_at)
                ended = info.ended
            else:
                ended = True
            if ended and collect:
                self._collect(self.store.chunk(chunk.id))
        return self.store.chunks(job.id)

    def wait(self, job: Job, opts: SubmitOptions) -> None:
        """Poll with backoff until every submitted chunk is ended and collected."""
        delay = opts.poll_initial_s
        while True:
            chunks = self.refresh(job, collect=True)
            if self.progress is not None:
                self.progress(job, chunks)
            if not any(c.state == "submitted" for c in chunks):
                return
            self.sleep(delay)
            delay = min(delay * opts.poll_factor, opts.poll_max_s)

    def _collect(self, chunk: Chunk) -> None:
        assert chunk.batch_id is not None
        items = {it.custom_id: it.idx for it in self.store.chunk_items(chunk.id)}
        rows: list[tuple[int, str, dict[str, Any] | None, dict[str, Any]]] = []
        foreign = False
        with tempfile.TemporaryFile() as spool:
            for line in self.upstream.results(chunk.batch_id):
                spool.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            spool.seek(0)
            seen = 0
            for raw in spool:
                line = json.loads(raw)
                idx = items.get(str(line.get("custom_id")))
                if idx is None:
                    foreign = True
                    break
                result = line.get("result") if isinstance(line.get("result"), dict) else {"type": "errored"}
                kind, usage = _result_status(result)
                rows.append((idx, kind, usage, result))
                seen += 1
        if foreign or seen != len(items):
            self.note(f"batch {chunk.batch_id} does not hold this job's requests; submitting them again")
            self.store.mark_foreign(chunk)
            return
        self.store.collect(chunk.id, rows, checkpoint=self.checkpoint)
        self.checkpoint("after_collect")

    def cancel(self, job: Job) -> list[BatchInfo]:
        out = []
        for chunk in self.store.chunks(job.id):
            if chunk.state == "submitted" and chunk.batch_id and chunk.processing_status != "ended":
                info = self.upstream.cancel(chunk.batch_id)
                self.store.update_progress(chunk.id, info.processing_status, dict(info.counts), info.ended_at)
                out.append(info)
        return out


# -- reading a job back ------------------------------------------------------------------------


def result_lines(store: Store, job: Job) -> Iterator[dict[str, Any]]:
    """The job's results in input order: custom_id, status, response or error, usage, cost."""
    for it in store.items(job.id):
        result = it.result or {}
        response = result.get("message") if it.status == "succeeded" else None
        error = result.get("error") if it.status == "errored" else None
        c = line_cost(it.usage, it.model, it.lane)
        yield {
            "custom_id": it.custom_id,
            "line": it.line,
            "lane": it.lane,
            "status": it.status,
            "response": response,
            "error": error,
            "usage": it.usage,
            "cost": cost_json(c),
            "attempts": it.attempt + 1,
        }


def job_cost_report(store: Store, job: Job, inp: BatchInput | None) -> CostReport:
    """The cost report from the ledger; the live counterfactuals need the unchanged input file."""
    prepared = prepare(inp, warm=job.warm is not None) if inp is not None else None
    params = {it.index: it.params for it in inp.items} if inp is not None else {}
    lines = [
        Line(
            lane=it.lane,
            model=it.model,
            status=it.status,
            usage=it.usage,
            params=params.get(it.idx),
            marked=prepared.wire[it.idx] if prepared is not None and it.idx in prepared.marked else None,
            retried=it.attempt > 0,
        )
        for it in store.items(job.id)
    ]
    warm = [
        (str(r["model"]), r["usage"])
        for r in (job.warm_result or {}).get("requests", [])
        if isinstance(r, dict) and isinstance(r.get("usage"), dict)
    ]
    return build_cost_report(lines, warm)


def load_job(store: Store, ident: str) -> Job:
    """A job by its number, or by the id of one of its batches."""
    job: Job | None = None
    if ident.isdigit():
        job = store.job(int(ident))
    else:
        chunk = store.chunk_by_batch(ident)
        job = store.job(chunk.job_id) if chunk is not None else None
    if job is None:
        raise UserError(
            f"no batch job {ident!r} in the ledger; `tokenomy batch list` shows the jobs and their batch ids"
        )
    return job
