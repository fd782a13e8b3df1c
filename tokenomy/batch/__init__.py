"""The Message Batches API without the chores (spec §4): half price for work that can wait.

- ``read_input(path)``: a JSONL file of requests, every line checked before anything is sent.
- ``BatchRunner``: split into batches (≤100,000 requests / 256 MB), submit, poll, collect,
  retry errored and expired lines once, warm a shared prefix; every step kept in the ledger so
  a killed process resumes without duplicating or losing a request.
- ``BatchQueue``: ``queue.create(**params) -> Future`` for code, flushed by size or age.
- ``job_cost_report``: what a job cost, and what the same requests would have cost live.

docs/batch.md has the input format, the lane rule and the crash-safety argument.
"""

from __future__ import annotations

from tokenomy.batch._client import BatchInfo, Upstream, UpstreamError, make_client
from tokenomy.batch._costs import CostReport, build_cost_report
from tokenomy.batch._input import (
    CUSTOM_ID_RE,
    DEFAULT_LIVE_DEADLINE_S,
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    BatchInput,
    BatchInputError,
    Item,
    Limits,
    choose_lane,
    chunk_items,
    read_input,
)
from tokenomy.batch._queue import BatchQueue, BatchRequestError
from tokenomy.batch._runner import (
    BatchRunner,
    Checkpoints,
    SubmitOptions,
    job_cost_report,
    load_job,
    result_lines,
)
from tokenomy.batch._state import Store
from tokenomy.batch._warm import SharedPrefix, find_shared_prefixes

__all__ = [
    "CUSTOM_ID_RE",
    "DEFAULT_LIVE_DEADLINE_S",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "BatchInfo",
    "BatchInput",
    "BatchInputError",
    "BatchQueue",
    "BatchRequestError",
    "BatchRunner",
    "Checkpoints",
    "CostReport",
    "Item",
    "Limits",
    "SharedPrefix",
    "Store",
    "SubmitOptions",
    "Upstream",
    "UpstreamError",
    "build_cost_report",
    "choose_lane",
    "chunk_items",
    "find_shared_prefixes",
    "job_cost_report",
    "load_job",
    "make_client",
    "read_input",
    "result_lines",
]
