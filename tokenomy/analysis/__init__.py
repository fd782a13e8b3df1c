"""Analyses over recorded runs: the doctor (why the cache missed), the simulator and planner.

Each asks the one ``CacheEngine`` and the price table; none re-implements a caching rule.
"""

from __future__ import annotations

from tokenomy.analysis.doctor import (
    CAUSES,
    DoctorOptions,
    DoctorReport,
    LiveDoctor,
    Miss,
    RunDiagnosis,
    diagnose,
    diagnose_run,
)

__all__ = [
    "CAUSES",
    "DoctorOptions",
    "DoctorReport",
    "LiveDoctor",
    "Miss",
    "RunDiagnosis",
    "diagnose",
    "diagnose_run",
]
