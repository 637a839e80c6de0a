"""The re-planner's rolling data: series by absolute slot, time-keyed inputs, carried dispatch.

A :class:`~optisched.replan.Replanner` keeps every per-slot series it was given in
a :class:`SeriesStore`, indexed by *absolute slot* ``a`` = slots since the start
of the first problem (the *origin*). The problem of each update is a window
``[a0, a1)`` of the store; new data (lists from ``now``, or values keyed by
time) is written into the store, may reach past the current end (the horizon
then extends) and never changes the past.

Modules, by role:

:mod:`optisched.rolling.store`
    :class:`SeriesStore` (series by kind and id, copy on write, fill policies)
    and its :class:`~optisched.rolling.store.OutageMask`.
:mod:`optisched.rolling.inputs`
    :func:`parse_series` (new values given as lists from ``now`` or keyed by
    time, checked) and :func:`aware`.
:mod:`optisched.rolling.carry`
    :func:`carry_flows`: the previous plan's dispatch of a node kept across a
    roll, with :func:`top_up` / :func:`draw_down` for the terminal state of charge.
:mod:`optisched.rolling.incremental`
    The incremental index updates :func:`append_jobs`, :func:`drop_jobs`,
    :func:`with_node_rows` and :func:`roll_index`, each equal to
    :func:`~optisched.index.compile_index` of the new problem (the tests compare
    them field by field): eligibility, windows and durations are still decided
    only by :mod:`optisched.index`, here applied to the new jobs or nodes alone.
"""

from optisched.rolling.carry import NodeFlows, carry_flows, draw_down, top_up
from optisched.rolling.incremental import append_jobs, drop_jobs, roll_index, with_node_rows
from optisched.rolling.inputs import SeriesInput, TimeKeyed, aware, parse_series
from optisched.rolling.store import (
    FILL_POLICIES,
    NODE_KINDS,
    SERIES_KINDS,
    SERIES_OWNER,
    TARIFF_KINDS,
    OutageMask,
    SeriesStore,
)

__all__ = [
    "FILL_POLICIES",
    "NODE_KINDS",
    "SERIES_KINDS",
    "SERIES_OWNER",
    "TARIFF_KINDS",
    "NodeFlows",
    "OutageMask",
    "SeriesInput",
    "SeriesStore",
    "TimeKeyed",
    "append_jobs",
    "aware",
    "carry_flows",
    "draw_down",
    "drop_jobs",
    "parse_series",
    "roll_index",
    "top_up",
    "with_node_rows",
]
