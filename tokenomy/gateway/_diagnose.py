"""The live doctor behind the gateway: one ``LiveDoctor`` (``tokenomy.analysis.doctor``) fed every
completed Messages turn with its run id; its ``Miss`` becomes a JSON-able dict for the ledger and
the ``x-tokenomy-cache`` header. The diagnosis rules live in the doctor, none here."""

from __future__ import annotations

from typing import Any

from tokenomy.analysis.doctor import LiveDoctor
from tokenomy.model import Turn

__all__ = ["Diagnoser"]


class Diagnoser:
    def __init__(self) -> None:
        self._doctor = LiveDoctor()

    def feed(self, turn: Turn, *, run_id: str) -> dict[str, Any] | None:
        miss = self._doctor.feed(turn, run_id=run_id)
        return None if miss is None else miss.to_json()
