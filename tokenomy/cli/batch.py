"""``tokenomy batch``: submit a JSONL file of requests to the Message Batches API, and follow it.

Like the SDK, the commands read ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` (``--base-url``
wins), so they run against the API, the gateway or ``tokenomy emulate``. State lives in the
ledger (``$TOKENOMY_HOME/ledger.db``): running ``submit`` again on the same file resumes it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from tokenomy.errors import UserError

_RETRY_CHOICES = ("errored", "expired", "canceled")


def _store() -> Any:
    from tokenomy.batch import Store
    from tokenomy.ledger import connect

    return Store(connect())


def _upstream(base_url: str | None) -> Any:
    from tokenomy.batch import Upstream, make_client

    url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
    return Upstream(make_client(api_key=os.environ.get("ANTHROPIC_API_KEY"), base_url=url))


def _parse_retry(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    kinds = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    bad = [k for k in kinds if k not in _RETRY_CHOICES]
    if bad:
        raise UserError(
            f"--retry {value!r}: unknown kind {bad[0]!r}; use a comma list of errored, expired, canceled"
        )
    return kinds


def _write_jsonl(lines: Iterable[dict[str, Any]], out: str | None) -> int:
    n = 0
    if out is None:
        for line in lines:
            click.echo(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
            n += 1
        return n
    path = Path(out)
    tmp = path.with_name(path.name + ".partial")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
        tmp.replace(path)
    except OSError as e:
        raise UserError(
            f"--out {out}: cannot write ({e.strerror}); check the directory exists and is writable"
        ) from None
    return n


@click.group("batch")
def batch() -> None:
    """Run requests through the Message Batches API at half price: split, submit, poll, resume, cost."""


@batch.command("submit")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Poll until every batch has ended, then collect the results.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the results (JSONL, input order) here; implies --wait.",
)
@click.option("--warm", is_flag=True, help="Cache a long shared prefix with one live request first (1h TTL).")
@click.option(
    "--retry",
    "retry",
    metavar="KINDS",
    help="Resubmit lines that ended so, once (implies --wait): e.g. errored,expired.",
)
@click.option("--base-url", help="API base URL (default: $ANTHROPIC_BASE_URL, else the SDK's).")
@click.option(
    "--lane",
    type=click.Choice(["batch", "auto", "live"]),
    default="batch",
    show_default=True,
    help="auto: lines that declare a person waiting go live, the rest to the batch.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(1, 100_000),
    default=100_000,
    show_default=True,
    help="Requests per batch.",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(1024),
    default=256 * 1024 * 1024,
    show_default=True,
    help="Bytes per batch.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.0),
    default=2.0,
    show_default=True,
    help="First poll delay, seconds.",
)
@click.option(
    "--poll-max",
    type=click.FloatRange(0.0),
    default=60.0,
    show_default=True,
    help="Longest poll delay, seconds.",
)
@click.option("--new-job", is_flag=True, help="Start a new job even if this file was submitted before.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def submit(
    file: Path,
    wait: bool,
    out: str | None,
    warm: bool,
    retry: str | None,
    base_url: str | None,
    lane: str,
    max_requests: int,
    max_bytes: int,
    poll_interval: float,
    poll_max: float,
    new_job: bool,
    as_json: bool,
) -> None:
    """Submit FILE.jsonl (or resume it, if it was submitted before)."""
    from tokenomy.batch import BatchRunner, Checkpoints, Limits, SubmitOptions, read_input

    retry_kinds = _parse_retry(retry)
    wait = wait or out is not None or bool(retry_kinds)
    limits = Limits(max_requests=max_requests, max_bytes=max_bytes)
    inp = read_input(file, limits=limits, lane=lane)  # type: ignore[arg-type]
    opts = SubmitOptions(
        limits=limits,
        lane=lane,  # type: ignore[arg-type]
        warm=warm,
        retry=retry_kinds,
        wait=wait,
        poll_initial_s=poll_interval,
        poll_max_s=max(poll_max, poll_interval),
        new_job=new_job,
    )
    store = _store()
    runner = BatchRunner(
        _upstream(base_url),
        store,
        checkpoint=Checkpoints(os.environ.get("TOKENOMY_BATCH_CRASH_AT")),
        notes=lambda msg: click.echo(f"note: {msg}", err=True),
    )
    progress = _progress_display()
    if progress is not None:
        runner.progress = progress
        with progress:
            job = runner.run(inp, opts)
    else:
        job = runner.run(inp, opts)
    _after_submit(store, job, inp, wait=wait, out=out, as_json=as_json)


def _progress_display() -> Any:
    if not sys.stderr.isatty():
        return None
    from rich.console import Console

    from tokenomy.batch._progress import LiveProgress

    return LiveProgress(Console(stderr=True))


def _after_submit(store: Any, job: Any, inp: Any, *, wait: bool, out: str | None, as_json: bool) -> None:
    from tokenomy.batch import job_cost_report, result_lines

    chunks = [c for c in store.chunks(job.id) if c.batch_id and c.state != "foreign"]
    counts = store.status_counts(job.id)
    summary: dict[str, Any] = {
        "job": job.id,
        "file": job.path,
        "requests": job.n_items,
        "batches": [c.batch_id for c in chunks],
        "status": counts,
    }
    written = None
    if out is not None:
        written = _write_jsonl(result_lines(store, job), out)
        summary["results"] = {"path": out, "lines": written}
    report = job_cost_report(store, job, inp) if wait else None
    if report is not None:
        summary["report"] = report.to_json()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"job {job.id}: {job.n_items} request(s) in {len(chunks)} batch(es) from {job.path}")
    for c in chunks:
        click.echo(f"  {c.batch_id}  try {c.attempt + 1}  {c.n} request(s)  {c.processing_status or c.state}")
    if report is not None:
        for line in report.lines():
            click.echo(line)
    if written is not None:
        click.echo(f"results: {written} line(s) written to {out}")
    elif not wait:
        click.echo(
            f"follow it with `tokenomy batch status {job.id}`; collect with `tokenomy batch results {job.id} --out FILE`"
        )


@batch.command("status")
@click.argument("ident", metavar="[ID]", required=False)
@click.option("--base-url", help="API base URL (default: $ANTHROPIC_BASE_URL).")
@click.option("--offline", is_flag=True, help="Show the ledger only; do not ask the API.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(ident: str | None, base_url: str | None, offline: bool, as_json: bool) -> None:
    """Where a job (or every job) stands: its batches and its requests by status."""
    from tokenomy.batch import BatchRunner, load_job

    store = _store()
    jobs = [load_job(store, ident)] if ident else store.jobs()
    if ident and not offline:
        BatchRunner(_upstream(base_url), store).refresh(jobs[0], collect=True)
    rows = []
    for job in jobs:
        chunks = [c for c in store.chunks(job.id) if c.state != "foreign"]
        rows.append(
            {
                "job": job.id,
                "file": job.path,
                "requests": job.n_items,
                "status": store.status_counts(job.id),
                "batches": [
                    {
                        "id": c.batch_id,
                        "attempt": c.attempt + 1,
                        "requests": c.n,
                        "state": c.state,
                        "processing_status": c.processing_status,
                        "request_counts": c.counts,
                    }
                    for c in chunks
                ],
            }
        )
    if as_json:
        click.echo(json.dumps(rows if not ident else rows[0], indent=2))
        return
    if not rows:
        click.echo("no batch jobs yet; start one with `tokenomy batch submit FILE.jsonl`")
    for r in rows:
        st = ", ".join(f"{k} {v}" for k, v in sorted(r["status"].items()))
        click.echo(f"job {r['job']}: {r['requests']} request(s) ({st})  {r['file']}")
        for b in r["batches"]:
            counts = " ".join(f"{k}={v}" for k, v in b["request_counts"].items())
            click.echo(
                f"  {b['id'] or '(not created)'}  try {b['attempt']}  {b['processing_status'] or b['state']}  {counts}"
            )


@batch.command("results")
@click.argument("ident", metavar="ID")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the JSONL here instead of stdout.")
@click.option("--base-url", help="API base URL (default: $ANTHROPIC_BASE_URL).")
@click.option("--offline", is_flag=True, help="Use the ledger only; do not ask the API.")
def results(ident: str, out: str | None, base_url: str | None, offline: bool) -> None:
    """Results of a job (or of any batch id) as JSONL, in input order for a job."""
    from tokenomy.batch import BatchRunner, load_job, result_lines

    store = _store()
    if ident.startswith("msgbatch_") and store.chunk_by_batch(ident) is None:
        n = _write_jsonl(_upstream(base_url).results(ident), out)
        if out:
            click.echo(f"{n} line(s) written to {out}", err=True)
        return
    job = load_job(store, ident)
    if not offline:
        BatchRunner(_upstream(base_url), store).refresh(job, collect=True)
    n = _write_jsonl(result_lines(store, job), out)
    open_ = sum(v for k, v in store.status_counts(job.id).items() if k in ("pending", "submitted", "sending"))
    if open_:
        click.echo(
            f"note: {open_} request(s) have no result yet; run this again when their batches end", err=True
        )
    if out:
        click.echo(f"{n} line(s) written to {out}", err=True)


@batch.command("cancel")
@click.argument("ident", metavar="ID")
@click.option("--base-url", help="API base URL (default: $ANTHROPIC_BASE_URL).")
def cancel(ident: str, base_url: str | None) -> None:
    """Cancel a job's open batches (or one batch id)."""
    from tokenomy.batch import BatchRunner, load_job

    store = _store()
    upstream = _upstream(base_url)
    if ident.startswith("msgbatch_") and store.chunk_by_batch(ident) is None:
        infos = [upstream.cancel(ident)]
    else:
        infos = BatchRunner(upstream, store).cancel(load_job(store, ident))
    if not infos:
        click.echo("nothing to cancel: every batch of this job has ended")
    for info in infos:
        click.echo(f"{info.id}: {info.processing_status}")


@batch.command("list")
@click.option("--remote", is_flag=True, help="List the API's batches instead of the ledger's jobs.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="With --remote: how many."
)
@click.option("--base-url", help="API base URL (default: $ANTHROPIC_BASE_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(remote: bool, limit: int, base_url: str | None, as_json: bool) -> None:
    """The batch jobs in the ledger, newest last (or the API's batches with --remote)."""
    store = _store()
    if remote:
        infos = _upstream(base_url).list_batches(limit=limit)
        rows: list[dict[str, Any]] = []
        for b in infos:
            chunk = store.chunk_by_batch(b.id)
            rows.append(
                {
                    "id": b.id,
                    "processing_status": b.processing_status,
                    "request_counts": dict(b.counts),
                    "job": chunk.job_id if chunk else None,
                }
            )
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            counts = " ".join(f"{k}={v}" for k, v in r["request_counts"].items())
            job = f"job {r['job']}" if r["job"] is not None else "not from tokenomy"
            click.echo(f"{r['id']}  {r['processing_status']}  {counts}  ({job})")
        return
    jobs = []
    for job in store.jobs():
        chunks = [c for c in store.chunks(job.id) if c.batch_id and c.state != "foreign"]
        jobs.append(
            {
                "job": job.id,
                "file": job.path,
                "requests": job.n_items,
                "batches": len(chunks),
                "status": store.status_counts(job.id),
            }
        )
    if as_json:
        click.echo(json.dumps(jobs, indent=2))
        return
    if not jobs:
        click.echo("no batch jobs yet; start one with `tokenomy batch submit FILE.jsonl`")
    for j in jobs:
        st = ", ".join(f"{k} {v}" for k, v in sorted(j["status"].items()))
        click.echo(
            f"job {j['job']}: {j['requests']} request(s), {j['batches']} batch(es) ({st})  {j['file']}"
        )
