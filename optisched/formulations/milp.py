"""The exact MILP of SPEC §2-3, built in bulk as sparse COO triplets.

One ``define_*`` function per constraint family, called in a fixed order by
:func:`build_milp` (the Pyomo build in :mod:`optisched.formulations.milp_pyomo`
has the same functions in the same order). Each appends a block of columns or
rows to a :class:`MilpBuilder`; nothing is created per variable in Python. The
math, with the names of the families, is in ``docs/formulations/milp.md``.

Notation: ``k`` a start column ``x[o, s]`` (option ``o`` = eligible (job, node)
pair started at slot ``s``), ``n`` node, ``t`` slot, ``r`` resource, ``j`` job,
``Δ`` slot length [h]. Pinned jobs get one column fixed to 1 (a constant).

Scenarios (beyond SPEC v1): the model is the two-stage one. Placement and on/off
(``x``, ``drop``, ``on``, ``up``, ``down``) are first-stage columns; the flows, peaks
and exclusion binaries exist once per scenario ``σ`` (:class:`FlowColumns`), and so do
the rows of constraints 5-7 (``power_balance``, ``battery_*``, ``feeder``,
``demand_peak``), each with that scenario's series. The objective weighs each
scenario's energy cost by its probability; with ``cvar_weight > 0`` the CVaR of the
scenario costs enters by the columns ``η`` and ``z_σ`` and the rows ``cvar``
(``docs/formulations/milp.md``). One scenario gives exactly the model of SPEC v1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.index import Index
from optisched.plan import FlowArrays, Flows

__all__ = [
    "FAMILIES",
    "FlowColumns",
    "MilpBuilder",
    "MilpModel",
    "ModelSets",
    "RowBlock",
    "build_milp",
    "define_assignment",
    "define_battery",
    "define_battery_exclusion",
    "define_capacity",
    "define_cvar",
    "define_demand_peak",
    "define_feeder",
    "define_objective",
    "define_on_link",
    "define_power_balance",
    "define_switching",
    "define_variables",
    "exclusion_nodes",
    "model_sets",
    "recourse_flows",
    "recourse_start",
]


INF = np.inf

FAMILIES = ("assignment", "capacity", "on_link", "startup", "shutdown", "power_balance",
            "battery_soc", "battery_terminal", "battery_exclusion", "feeder", "demand_peak",
            "cvar")
"""Row families, in build order."""


@dataclass(frozen=True)
class ModelSets:
    """Index sets shared by both builds (derived from the compiled index only).

    Attributes
    ----------
    x_opt, x_start : (K,) int
        Option and start slot of each start column ``x[o, s]``; only feasible
        starts of eligible options (``Index.feasible_starts``).
    x_job, x_node : (K,) int
        Job and node of each column.
    x_fixed : (K,) bool
        Column of a pinned job (fixed to 1).
    cov_k, cov_t : (C,) int
        Coverage pairs: column ``k`` occupies slot ``t`` (within the horizon).
    link_o, link_t : (L,) int
        Distinct (option, slot) pairs some start of the option covers.
    link_ptr : (C,) int
        Position in ``link_*`` of each coverage pair.
    """

    x_opt: IntArray
    x_start: IntArray
    x_job: IntArray
    x_node: IntArray
    x_fixed: BoolArray
    cov_k: IntArray
    cov_t: IntArray
    link_o: IntArray
    link_t: IntArray
    link_ptr: IntArray


def model_sets(index: Index, allowed: tuple[IntArray, IntArray] | None = None) -> ModelSets:
    """Start columns over feasible windows only, and their slot coverage (vectorized).

    ``allowed`` = ``(option, start)`` arrays restricts the columns of jobs that are not
    pinned to those pairs (a *restricted master*: every solution of the restricted
    model is a solution of the full one, not the other way round).
    """
    n_opt, T = index.opt_job.size, index.T
    pinned = index.pinned_node[index.opt_job] >= 0
    lo = index.opt_earliest.astype(np.int64)
    hi = index.opt_latest.astype(np.int64)
    cnt = np.maximum(0, hi - lo + 1)
    if allowed is not None:  # enumerate the allowed pairs only (the full grid may not fit)
        cnt = np.where(pinned, cnt, 0)
    opt = np.repeat(np.arange(n_opt, dtype=np.int64), cnt)
    first = np.repeat(np.cumsum(cnt) - cnt, cnt)
    start = lo[opt] + (np.arange(opt.size, dtype=np.int64) - first)
    if allowed is not None:
        a_opt = np.asarray(allowed[0], dtype=np.int64)
        a_start = np.asarray(allowed[1], dtype=np.int64)
        inside = ((a_opt >= 0) & (a_opt < n_opt))
        a_opt, a_start = a_opt[inside], a_start[inside]
        inside = ~pinned[a_opt] & (a_start >= lo[a_opt]) & (a_start <= hi[a_opt])
        pair = np.unique(a_opt[inside] * (T + 1) + a_start[inside])
        opt = np.concatenate([opt, pair // (T + 1)])
        start = np.concatenate([start, pair % (T + 1)])
        order = np.lexsort((start, opt))
        opt, start = opt[order], start[order]
    keep = pinned[opt]
    free = ~keep
    if free.any():
        s_c = np.clip(start[free], 0, max(T - 1, 0))
        keep[free] = index.avail_run[index.opt_node[opt[free]], s_c] >= index.opt_dur[opt[free]]
    opt, start = opt[keep], start[keep]
    # coverage of each column: slots max(0, s) .. min(T, s + d) - 1
    a = np.clip(start, 0, T)
    b = np.clip(start + index.opt_dur[opt], 0, T)
    ln = b - a
    cov_k = np.repeat(np.arange(opt.size, dtype=np.int64), ln)
    off = np.repeat(np.cumsum(ln) - ln, ln)
    cov_t = a[cov_k] + (np.arange(cov_k.size, dtype=np.int64) - off)
    key = opt[cov_k] * max(T, 1) + cov_t
    uniq, inv = np.unique(key, return_inverse=True)
    return ModelSets(
        x_opt=opt, x_start=start, x_job=index.opt_job[opt], x_node=index.opt_node[opt],
        x_fixed=pinned[opt], cov_k=cov_k, cov_t=cov_t,
        link_o=(uniq // max(T, 1)).astype(np.int64), link_t=(uniq % max(T, 1)).astype(np.int64),
        link_ptr=inv.astype(np.int64).reshape(-1),
    )


def exclusion_nodes(index: Index) -> BoolArray:
    """(N,) nodes that get charge/discharge exclusion binaries in every slot.

    Charging and discharging at once burns ``(1 − eff_c·eff_d)`` of the energy;
    that only pays when energy has a negative value, i.e. the node's import cost
    is negative in some slot (PV can always be curtailed, export is optional). On
    every other node an optimum without simultaneous flows exists, and the exact
    dispatch of the final placement restores complementarity at no extra cost.
    """
    has_batt = index.battery_kwh > 0
    neg = (index.import_cost < 0).any(axis=1) if index.T else np.zeros(index.N, dtype=bool)
    return np.asarray(has_batt & neg)


@dataclass
class RowBlock:
    """A block of rows of one constraint family.

    Attributes
    ----------
    family : str
        Name (see :data:`FAMILIES`).
    start, size : int
        Row range.
    job, node, slot, resource : (size,) int
        What each row is about (-1 = not applicable).
    slack_sign : float
        Sign of the elastic slack column in these rows (+1 adds supply/assignment,
        −1 relaxes an upper limit, 0 = never relaxed).
    """

    family: str
    start: int
    size: int
    job: IntArray
    node: IntArray
    slot: IntArray
    resource: IntArray
    slack_sign: float = 0.0


@dataclass
class MilpBuilder:
    """Collects columns and rows as flat arrays (COO triplets for the matrix)."""

    col_lb: list[FloatArray] = field(default_factory=list)
    col_ub: list[FloatArray] = field(default_factory=list)
    col_cost: list[FloatArray] = field(default_factory=list)
    col_int: list[BoolArray] = field(default_factory=list)
    n_cols: int = 0
    rows: list[IntArray] = field(default_factory=list)
    cols: list[IntArray] = field(default_factory=list)
    vals: list[FloatArray] = field(default_factory=list)
    row_lo: list[FloatArray] = field(default_factory=list)
    row_hi: list[FloatArray] = field(default_factory=list)
    n_rows: int = 0
    blocks: list[RowBlock] = field(default_factory=list)

    def add_cols(self, n: int, lb: npt.ArrayLike, ub: npt.ArrayLike, cost: npt.ArrayLike = 0.0,
                 integer: bool = False) -> IntArray:
        """Append ``n`` columns; returns their positions."""
        self.col_lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)).copy())
        self.col_ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)).copy())
        self.col_cost.append(np.broadcast_to(np.asarray(cost, dtype=float), (n,)).copy())
        self.col_int.append(np.full(n, integer, dtype=bool))
        pos = np.arange(self.n_cols, self.n_cols + n, dtype=np.int64)
        self.n_cols += n
        return pos

    def add_rows(self, family: str, n: int, rows: IntArray, cols: IntArray,
                 vals: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike, *,
                 job: IntArray | None = None, node: IntArray | None = None,
                 slot: IntArray | None = None, resource: IntArray | None = None,
                 slack_sign: float = 0.0) -> IntArray:
        """Append ``n`` rows ``lo ≤ Σ vals·x[cols] ≤ hi`` given by local row numbers."""
        rows = np.asarray(rows, dtype=np.int64)
        self.rows.append(rows + self.n_rows)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape).copy())
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)).copy())

        def meta(a: IntArray | None) -> IntArray:
            return np.full(n, -1, dtype=np.int64) if a is None else np.asarray(a, dtype=np.int64)

        self.blocks.append(RowBlock(family, self.n_rows, n, meta(job), meta(node), meta(slot),
                                    meta(resource), slack_sign))
        pos = np.arange(self.n_rows, self.n_rows + n, dtype=np.int64)
        self.n_rows += n
        return pos


@dataclass
class FlowColumns:
    """The recourse columns of one scenario: flows ``(N, T)``, peaks ``(N,)`` and
    exclusion binaries ``(N, T)`` (-1 where none)."""

    pv_used: IntArray
    grid_import: IntArray
    grid_export: IntArray
    charge: IntArray
    discharge: IntArray
    soc: IntArray
    peak: IntArray
    excl: IntArray


@dataclass
class _Cols:
    """Column positions while building (filled by :func:`define_variables`).

    ``scenarios`` holds every scenario's recourse columns; ``pv_used`` … ``excl`` read
    the first scenario's; ``eta`` and ``cvar_z`` are the CVaR columns (-1 and empty when
    ``cvar_weight`` is 0).
    """

    x: IntArray
    drop: IntArray
    on: IntArray
    up: IntArray
    down: IntArray
    down_end: IntArray
    scenarios: list[FlowColumns]
    eta: int
    cvar_z: IntArray

    @property
    def pv_used(self) -> IntArray:
        """PV used ``(N, T)`` of the first scenario."""
        return self.scenarios[0].pv_used

    @property
    def grid_import(self) -> IntArray:
        """Grid import ``(N, T)`` of the first scenario."""
        return self.scenarios[0].grid_import

    @property
    def grid_export(self) -> IntArray:
        """Grid export ``(N, T)`` of the first scenario."""
        return self.scenarios[0].grid_export

    @property
    def charge(self) -> IntArray:
        """Battery charge ``(N, T)`` of the first scenario."""
        return self.scenarios[0].charge

    @property
    def discharge(self) -> IntArray:
        """Battery discharge ``(N, T)`` of the first scenario."""
        return self.scenarios[0].discharge

    @property
    def soc(self) -> IntArray:
        """State of charge ``(N, T)`` of the first scenario."""
        return self.scenarios[0].soc

    @property
    def peak(self) -> IntArray:
        """Peak import ``(N,)`` of the first scenario."""
        return self.scenarios[0].peak

    @property
    def excl(self) -> IntArray:
        """Exclusion binaries ``(N, T)`` of the first scenario (-1 where none)."""
        return self.scenarios[0].excl


@dataclass
class MilpModel(_Cols):
    """The assembled MILP ``min c·x  s.t.  row_lo ≤ A x ≤ row_hi, lb ≤ x ≤ ub``.

    Attributes
    ----------
    sets : ModelSets
        Start columns and coverage.
    A : scipy.sparse.csc_matrix
        Constraint matrix.
    col_lb, col_ub, cost : (ncol,) float
        Column bounds and objective coefficients [money per unit].
    integer : (ncol,) bool
        Integrality.
    row_lo, row_hi : (nrow,) float
        Row bounds.
    blocks : list of RowBlock
        Row families with what each row is about.
    x, drop : int arrays
        Columns of starts ``(K,)`` and drops ``(J,)`` (-1 = none).
    on, up, down, pv_used, grid_import, grid_export, charge, discharge, soc : (N, T) int
        Columns per node and slot (the flows: of the first scenario).
    down_end : (N,) int
        Shut-down after the last slot (-1 when ``end_off`` is false).
    peak : (N,) int
        Peak import column per node.
    excl : (N, T) int
        Exclusion binary (-1 where none).
    scenarios : list of FlowColumns
        The recourse columns of every scenario (beyond SPEC v1; one scenario: those above).
    eta, cvar_z : int, (S,) int
        CVaR columns ``η`` and ``z_σ`` (-1 and empty without a CVaR term).
    slack : (nrow,) int
        Elastic slack column of each row (-1 = none; only when built elastic).
    build_seconds : float
        Build time [s].
    """

    sets: ModelSets
    A: sp.csc_matrix
    col_lb: FloatArray
    col_ub: FloatArray
    cost: FloatArray
    integer: BoolArray
    row_lo: FloatArray
    row_hi: FloatArray
    blocks: list[RowBlock]
    slack: IntArray
    build_seconds: float = 0.0

    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return int(self.col_lb.size)

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.row_lo.size)

    def block_of(self, row: int) -> RowBlock:
        """The row block a row belongs to."""
        for b in self.blocks:
            if b.start <= row < b.start + b.size:
                return b
        raise IndexError(row)


def _grid(b: MilpBuilder, N: int, T: int, lb: npt.ArrayLike, ub: npt.ArrayLike,
          integer: bool = False) -> IntArray:
    lb_a = np.broadcast_to(np.asarray(lb, dtype=float), (N, T)).reshape(-1)
    ub_a = np.broadcast_to(np.asarray(ub, dtype=float), (N, T)).reshape(-1)
    return b.add_cols(N * T, lb_a, ub_a, 0.0, integer).reshape(N, T)


def define_variables(b: MilpBuilder, index: Index, sets: ModelSets) -> _Cols:
    """Columns, bounds and integrality.

    ``x[o,s] ∈ {0,1}`` (pinned: fixed 1); ``drop_j ∈ [0,1]`` for droppable jobs
    (integral through the assignment row); ``on[n,t] ∈ {0,1}`` where the node may
    sleep and is available, else fixed to ``available``; ``up, down ∈ [0,1]``;
    ``0 ≤ pv_used ≤ pv``, ``0 ≤ import ≤ headroom``, ``0 ≤ export ≤ export_kw``,
    ``0 ≤ charge ≤ charge_kw``, ``0 ≤ discharge ≤ discharge_kw``,
    ``soc_min ≤ soc ≤ soc_max`` [kW, kWh]; ``peak_n ≥ 0`` [kW]; ``excl[n,t] ∈ {0,1}``
    on :func:`exclusion_nodes`. The flows, peaks and exclusion binaries once per scenario
    (its own PV and headroom bounds); with ``cvar_weight > 0`` the CVaR columns ``η``
    and ``z_σ ≥ 0``, bounded by the least and largest cost any scenario can have
    (:func:`_cost_range`: bounds no optimum reaches beyond).
    """
    N, T, J = index.N, index.T, index.J
    K = sets.x_opt.size
    x = b.add_cols(K, np.where(sets.x_fixed, 1.0, 0.0), 1.0, 0.0, integer=True)
    droppable = ~index.must_run & ~index.pinned
    drop = np.full(J, -1, dtype=np.int64)
    nd = int(droppable.sum())
    drop[droppable] = b.add_cols(nd, 0.0, 1.0)
    avail = index.available
    free_on = index.can_sleep[:, None] & avail
    on = _grid(b, N, T, np.where(free_on, 0.0, avail.astype(float)), avail.astype(float),
               integer=True)
    up = _grid(b, N, T, 0.0, 1.0)
    down = _grid(b, N, T, 0.0, 1.0)
    down_end = np.full(N, -1, dtype=np.int64)
    down_end[index.end_off] = b.add_cols(int(index.end_off.sum()), 0.0, 1.0)
    scen = [_flow_columns(b, index.scenario(s)) for s in range(index.S)]
    c = _Cols(x=x, drop=drop, on=on, up=up, down=down, down_end=down_end, scenarios=scen,
              eta=-1, cvar_z=np.zeros(0, dtype=np.int64))
    if index.scenarios.cvar_weight > 0:
        lo, hi = _cost_range(b, index, sets, c)
        c.eta = int(b.add_cols(1, float(lo.min()), float(hi.max()))[0])
        c.cvar_z = b.add_cols(index.S, 0.0, float(hi.max() - lo.min()))
    return c


def cost_coefficients(index: Index, sets: ModelSets, c: _Cols
                      ) -> tuple[IntArray, FloatArray, list[tuple[IntArray, FloatArray]]]:
    """The cost of SPEC §3 as coefficients of the columns, not weighted by probability.

    Returns
    -------
    first_cols, first_vals : (P,) int, (P,) float
        First-stage columns and their costs: latency + tardiness of the starts, drop
        penalties, start-up and shut-down costs [money per unit].
    scenario : list of ((Q,) int, (Q,) float)
        Per scenario, its recourse columns and their costs on its own prices: ``Δ·
        import_cost`` on import, ``−Δ·export_price`` on export, ``Δ·degradation`` on
        discharge, ``demand_charge`` on the peak. The cost of the plan in scenario ``σ`` is
        ``first · x + scenario[σ] · x``.
    """
    dt, T = index.dt, index.T
    dj = np.nonzero(c.drop >= 0)[0]
    e = c.down_end >= 0
    first_cols = np.concatenate([c.x, c.drop[dj], c.up.reshape(-1), c.down.reshape(-1),
                                 c.down_end[e]])
    first_vals = np.concatenate([start_costs(index, sets), index.drop_penalty[dj],
                                 np.repeat(index.startup_cost, T),
                                 np.repeat(index.shutdown_cost, T), index.shutdown_cost[e]])
    per: list[tuple[IntArray, FloatArray]] = []
    for s, fc in enumerate(c.scenarios):
        ix = index.scenario(s)
        per.append((np.concatenate([fc.grid_import.reshape(-1), fc.grid_export.reshape(-1),
                                    fc.discharge.reshape(-1), fc.peak]),
                    np.concatenate([(dt * ix.import_cost).reshape(-1),
                                    (-dt * ix.export_price).reshape(-1),
                                    np.repeat(dt * ix.degradation, T), ix.demand_charge])))
    return first_cols, first_vals, per


def _cost_range(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols
                ) -> tuple[FloatArray, FloatArray]:
    """Least and largest cost ``(S,)`` each scenario can have over the column box, with
    import and peak bounded by ``idle + Σ option power + charge_kw + export_kw`` (power
    balance: no feasible plan imports more). An optimal ``η`` (the value at risk) lies
    between the least and the largest scenario cost, so these bound ``η`` and ``z_σ``."""
    lb = np.concatenate(b.col_lb)
    ub = np.concatenate(b.col_ub)
    load = index.idle_kw + np.bincount(index.opt_node, weights=index.opt_power,
                                       minlength=index.N)
    cap = load + index.charge_kw + index.export_kw
    for fc in c.scenarios:
        ub[fc.grid_import] = np.minimum(ub[fc.grid_import], cap[:, None])
        ub[fc.peak] = np.minimum(ub[fc.peak], cap)
    first_cols, first_vals, per = cost_coefficients(index, sets, c)

    def span(cols: IntArray, vals: FloatArray) -> tuple[float, float]:
        a, z = vals * lb[cols], vals * ub[cols]
        with np.errstate(invalid="ignore"):
            lo_, hi_ = np.where(vals == 0, 0.0, np.minimum(a, z)), np.where(vals == 0, 0.0,
                                                                            np.maximum(a, z))
        return float(lo_.sum()), float(hi_.sum())

    f_lo, f_hi = span(first_cols, first_vals)
    spans = [span(cols, vals) for cols, vals in per]
    return (np.array([f_lo + lo for lo, _ in spans]), np.array([f_hi + hi for _, hi in spans]))


def _flow_columns(b: MilpBuilder, index: Index) -> FlowColumns:
    """The recourse columns of one scenario (``index``: that scenario's)."""
    N, T = index.N, index.T
    # bounds below 1e-9 kW are 0 (numerical noise of PV bells; stricter, so still valid)
    pv_used = _grid(b, N, T, 0.0, np.where(index.pv < 1e-9, 0.0, index.pv))
    grid_import = _grid(b, N, T, 0.0, np.where(index.headroom < 1e-9, 0.0, index.headroom))
    grid_export = _grid(b, N, T, 0.0, index.export_kw[:, None])
    charge = _grid(b, N, T, 0.0, index.charge_kw[:, None])
    discharge = _grid(b, N, T, 0.0, index.discharge_kw[:, None])
    soc = _grid(b, N, T, index.soc_min[:, None], index.soc_max[:, None])
    peak = b.add_cols(N, 0.0, INF)
    excl = np.full((N, T), -1, dtype=np.int64)
    en = np.nonzero(exclusion_nodes(index))[0]
    if en.size:
        excl[en] = b.add_cols(en.size * T, 0.0, 1.0, integer=True).reshape(en.size, T)
    return FlowColumns(pv_used, grid_import, grid_export, charge, discharge, soc, peak, excl)


def define_assignment(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``assignment``: ``Σ_{o∈O_j, s} x[o,s] + drop_j = 1`` for every job not pinned.

    Must-run jobs have no ``drop_j``; pinned jobs have one fixed column instead.
    """
    jobs = np.nonzero(~index.pinned)[0]
    if not jobs.size:
        return
    local = np.full(index.J, -1, dtype=np.int64)
    local[jobs] = np.arange(jobs.size)
    kx = np.nonzero(~sets.x_fixed)[0]
    dj = jobs[c.drop[jobs] >= 0]
    rows = np.concatenate([local[sets.x_job[kx]], local[dj]])
    cols = np.concatenate([c.x[kx], c.drop[dj]])
    b.add_rows("assignment", jobs.size, rows, cols, 1.0, 1.0, 1.0, job=jobs, slack_sign=1.0)


def define_capacity(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``capacity``: ``Σ_{(o,s) covering t, node n} usage_{j,r}·x[o,s] ≤ cap_{n,r}·on[n,t]``.

    Rows only where the jobs that could run at (n, t) could exceed the capacity;
    on sleeping nodes the right-hand side carries ``on`` (a tight aggregated
    linking), elsewhere ``on`` is fixed and the bound is the capacity.
    """
    N, T, R = index.N, index.T, len(index.resources)
    if not sets.cov_k.size or not R:
        return
    # max possible use per (n, t, r): each option counts once per slot
    ln, lt = index.opt_node[sets.link_o], sets.link_t
    lj = index.opt_job[sets.link_o]
    maxuse = np.zeros((N, T, R))
    np.add.at(maxuse, (ln, lt), index.usage[lj])
    need = maxuse > index.capacity[:, None, :] + 1e-9
    if not need.any():
        return
    rid = np.full((N, T, R), -1, dtype=np.int64)
    nn, tt, rr = np.nonzero(need)
    rid[nn, tt, rr] = np.arange(nn.size)
    kn, kt = sets.x_node[sets.cov_k], sets.cov_t
    rows_l, cols_l, vals_l = [], [], []
    for r in range(R):
        row = rid[kn, kt, r]
        m = (row >= 0) & (index.usage[sets.x_job[sets.cov_k], r] != 0)
        rows_l.append(row[m])
        cols_l.append(c.x[sets.cov_k[m]])
        vals_l.append(index.usage[sets.x_job[sets.cov_k[m]], r])
    sleep = index.can_sleep[nn]
    cap = index.capacity[nn, rr]
    rows_l.append(np.arange(nn.size)[sleep])
    cols_l.append(c.on[nn[sleep], tt[sleep]])
    vals_l.append(-cap[sleep])
    hi = np.where(sleep, 0.0, cap)
    b.add_rows("capacity", nn.size, np.concatenate(rows_l), np.concatenate(cols_l),
               np.concatenate(vals_l), -INF, hi, node=nn, slot=tt, resource=rr, slack_sign=-1.0)


def define_on_link(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``on_link``: ``Σ_{s: s ≤ t < s+d} x[o,s] ≤ on[n,t]`` per option o on a sleeping node.

    One row per (option, covered slot): a job occupies a slot with at most one of
    its starts, so this disaggregated form is valid and at least as tight as both
    ``x[o,s] ≤ on[n,t]`` and ``Σ_jobs x ≤ M·on``.
    """
    sleep_l = index.can_sleep[index.opt_node[sets.link_o]]
    if not sleep_l.any():
        return
    lid = np.full(sets.link_o.size, -1, dtype=np.int64)
    lid[sleep_l] = np.arange(int(sleep_l.sum()))
    row_c = lid[sets.link_ptr]
    m = row_c >= 0
    lo_, lt = sets.link_o[sleep_l], sets.link_t[sleep_l]
    ln = index.opt_node[lo_]
    n_rows = lo_.size
    rows = np.concatenate([row_c[m], np.arange(n_rows)])
    cols = np.concatenate([c.x[sets.cov_k[m]], c.on[ln, lt]])
    vals = np.concatenate([np.ones(int(m.sum())), -np.ones(n_rows)])
    b.add_rows("on_link", n_rows, rows, cols, vals, -INF, 0.0, job=index.opt_job[lo_], node=ln,
               slot=lt)


def define_switching(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``startup``: ``up[n,t] ≥ on[n,t] − on[n,t−1]``; ``shutdown``: ``down[n,t] ≥
    on[n,t−1] − on[n,t]``, and ``down_end_n ≥ on[n,T−1]`` when ``end_off``.

    ``on[n,−1] = initially_on`` (a constant). Rows only for nodes with a positive
    start-up (shut-down) cost; elsewhere the switch columns stay 0.
    """
    T = index.T
    for fam, cost, sign, col in (("startup", index.startup_cost, 1.0, c.up),
                                 ("shutdown", index.shutdown_cost, -1.0, c.down)):
        nodes = np.nonzero(cost > 0)[0]
        if not nodes.size or not T:
            continue
        k = nodes.size
        nn = np.repeat(nodes, T)
        tt = np.tile(np.arange(T), k)
        r = np.arange(k * T)
        # up - on_t + on_{t-1} >= 0 ; down + on_t - on_{t-1} >= 0
        prev = tt > 0
        rows = np.concatenate([r, r, r[prev]])
        cols = np.concatenate([col[nn, tt], c.on[nn, tt], c.on[nn[prev], tt[prev] - 1]])
        vals = np.concatenate([np.ones(r.size), -sign * np.ones(r.size),
                               sign * np.ones(int(prev.sum()))])
        init = index.initially_on[nn].astype(float)
        lo = np.where(prev, 0.0, -sign * init)
        b.add_rows(fam, r.size, rows, cols, vals, lo, INF, node=nn, slot=tt)
    ends = np.nonzero(index.end_off & (index.shutdown_cost > 0))[0]
    if ends.size and T:
        r = np.arange(ends.size)
        b.add_rows("shutdown", ends.size, np.concatenate([r, r]),
                   np.concatenate([c.down_end[ends], c.on[ends, T - 1]]),
                   np.concatenate([np.ones(ends.size), -np.ones(ends.size)]), 0.0, INF,
                   node=ends, slot=np.full(ends.size, T))


def define_power_balance(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``power_balance``: ``pv_used + import + discharge − charge − export − idle_kw·on −
    Σ_{(o,s) covering t} power_o·x[o,s] = 0`` [kW] per (n, t) and scenario.

    The elastic slack of these rows is unserved load (a shortage of PV, headroom
    and battery).
    """
    N, T = index.N, index.T
    if not N or not T:
        return
    r = np.arange(N * T).reshape(N, T)
    flat = r.reshape(-1)
    for fc in c.scenarios:
        parts_r = [flat] * 5
        parts_c = [fc.pv_used.reshape(-1), fc.grid_import.reshape(-1), fc.discharge.reshape(-1),
                   fc.charge.reshape(-1), fc.grid_export.reshape(-1)]
        parts_v = [np.ones(N * T)] * 3 + [-np.ones(N * T)] * 2
        parts_r.append(flat)
        parts_c.append(c.on.reshape(-1))
        parts_v.append(-np.repeat(index.idle_kw, T))
        parts_r.append(r[sets.x_node[sets.cov_k], sets.cov_t])
        parts_c.append(c.x[sets.cov_k])
        parts_v.append(-index.opt_power[sets.x_opt[sets.cov_k]])
        b.add_rows("power_balance", N * T, np.concatenate(parts_r), np.concatenate(parts_c),
                   np.concatenate(parts_v), 0.0, 0.0, node=np.repeat(np.arange(N), T),
                   slot=np.tile(np.arange(T), N), slack_sign=1.0)


def define_battery(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``battery_soc``: ``soc_t − soc_{t−1} − Δ·eff_c·charge_t + Δ/eff_d·discharge_t = 0``
    [kWh] with ``soc_{−1} = soc_init``; ``battery_terminal``: ``soc_{T−1} ≥ soc_init``
    (terminal rule ``initial``).
    """
    T, dt = index.T, index.dt
    nodes = np.nonzero(index.battery_kwh > 0)[0]
    if not nodes.size or not T:
        return
    k = nodes.size
    nn = np.repeat(nodes, T)
    tt = np.tile(np.arange(T), k)
    r = np.arange(k * T)
    prev = tt > 0
    rows = np.concatenate([r, r[prev], r, r])
    vals = np.concatenate([np.ones(r.size), -np.ones(int(prev.sum())),
                           -dt * index.eff_charge[nn], dt / index.eff_discharge[nn]])
    rhs = np.where(prev, 0.0, index.soc_init[nn])
    for fc in c.scenarios:
        cols = np.concatenate([fc.soc[nn, tt], fc.soc[nn[prev], tt[prev] - 1],
                               fc.charge[nn, tt], fc.discharge[nn, tt]])
        b.add_rows("battery_soc", r.size, rows, cols, vals, rhs, rhs, node=nn, slot=tt)
    if index.terminal_initial:
        rr = np.arange(k)
        for fc in c.scenarios:
            b.add_rows("battery_terminal", k, rr, fc.soc[nodes, T - 1], 1.0,
                       index.soc_init[nodes], INF, node=nodes, slot=np.full(k, T - 1),
                       slack_sign=1.0)


def define_battery_exclusion(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``battery_exclusion``: ``charge ≤ charge_kw·excl`` and ``discharge ≤
    discharge_kw·(1 − excl)`` on :func:`exclusion_nodes` only (of each scenario)."""
    T = index.T
    for fc in c.scenarios:
        nodes = np.nonzero((fc.excl >= 0).any(axis=1))[0]
        if not nodes.size:
            continue
        nn = np.repeat(nodes, T)
        tt = np.tile(np.arange(T), nodes.size)
        m = nn.size
        r = np.arange(m)
        rows = np.concatenate([r, r, m + r, m + r])
        cols = np.concatenate([fc.charge[nn, tt], fc.excl[nn, tt], fc.discharge[nn, tt],
                               fc.excl[nn, tt]])
        vals = np.concatenate([np.ones(m), -index.charge_kw[nn], np.ones(m),
                               index.discharge_kw[nn]])
        hi = np.concatenate([np.zeros(m), index.discharge_kw[nn]])
        b.add_rows("battery_exclusion", 2 * m, rows, cols, vals, -INF, hi,
                   node=np.concatenate([nn, nn]), slot=np.concatenate([tt, tt]))


def define_feeder(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``feeder``: ``Σ_{n∈f} (import[n,t] − export[n,t]) ≤ feeder_headroom[f,t]`` [kW],
    finite slots only (each scenario with its own headroom)."""
    F = len(index.feeder_ids)
    if not F:
        return
    members = np.nonzero(index.feeder_of >= 0)[0]
    for s, fc in enumerate(c.scenarios):
        lim = index.scenario(s).feeder_headroom
        ff, tt = np.nonzero(np.isfinite(lim))
        if not ff.size:
            continue
        rid = np.full((F, index.T), -1, dtype=np.int64)
        rid[ff, tt] = np.arange(ff.size)
        rows_l, cols_l, vals_l = [], [], []
        for n in members:
            row = rid[index.feeder_of[n]]
            m = row >= 0
            ts = np.nonzero(m)[0]
            rows_l += [row[m], row[m]]
            cols_l += [fc.grid_import[n, ts], fc.grid_export[n, ts]]
            vals_l += [np.ones(ts.size), -np.ones(ts.size)]
        if not rows_l:
            continue
        b.add_rows("feeder", ff.size, np.concatenate(rows_l), np.concatenate(cols_l),
                   np.concatenate(vals_l), -INF, lim[ff, tt], slot=tt, resource=ff,
                   slack_sign=-1.0)


def define_demand_peak(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``demand_peak``: ``import[n,t] ≤ peak_n`` [kW] on nodes with a demand charge."""
    nodes = np.nonzero(index.demand_charge > 0)[0]
    T = index.T
    if not nodes.size or not T:
        return
    nn = np.repeat(nodes, T)
    tt = np.tile(np.arange(T), nodes.size)
    r = np.arange(nn.size)
    for fc in c.scenarios:
        b.add_rows("demand_peak", nn.size, np.concatenate([r, r]),
                   np.concatenate([fc.grid_import[nn, tt], fc.peak[nn]]),
                   np.concatenate([np.ones(r.size), -np.ones(r.size)]), -INF, 0.0, node=nn,
                   slot=tt)


def start_costs(index: Index, sets: ModelSets) -> FloatArray:
    """Objective coefficient of each start column: latency + tardiness [money]."""
    end = sets.x_start + index.opt_dur[sets.x_opt]
    return np.asarray(index.opt_latency_cost[sets.x_opt] + index.tardiness_cost(sets.x_job, end),
                      dtype=float)


def define_objective(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """Objective of SPEC §3 as column costs [money].

    ``Δ·import_cost·import − Δ·export_price·export + Δ·degradation·discharge +
    demand_charge·peak + startup_cost·up + shutdown_cost·(down + down_end) +
    (latency + tardiness)·x + drop_penalty·drop``. With scenarios each scenario's
    recourse costs are weighted by its probability ``w_σ`` (the expected cost), and with
    ``cvar_weight = λ > 0`` the CVaR term ``λ·(η + Σ_σ w_σ z_σ / (1 − α))`` is added.
    """
    cost = np.concatenate(b.col_cost) if b.col_cost else np.zeros(0)
    dt = index.dt
    cost[c.x] = start_costs(index, sets)
    dj = np.nonzero(c.drop >= 0)[0]
    cost[c.drop[dj]] = index.drop_penalty[dj]
    w = index.scenarios.weight
    for s, fc in enumerate(c.scenarios):
        ix = index.scenario(s)
        if index.S == 1:
            cost[fc.grid_import] = dt * ix.import_cost
            cost[fc.grid_export] = -dt * ix.export_price
            cost[fc.discharge] = dt * ix.degradation[:, None]
            cost[fc.peak] = ix.demand_charge
        else:
            cost[fc.grid_import] = w[s] * (dt * ix.import_cost)
            cost[fc.grid_export] = w[s] * (-dt * ix.export_price)
            cost[fc.discharge] = w[s] * (dt * ix.degradation[:, None])
            cost[fc.peak] = w[s] * ix.demand_charge
    cost[c.up] = index.startup_cost[:, None]
    cost[c.down] = index.shutdown_cost[:, None]
    e = c.down_end >= 0
    cost[c.down_end[e]] = index.shutdown_cost[e]
    if c.eta >= 0:
        sc = index.scenarios
        cost[c.eta] = sc.cvar_weight
        cost[c.cvar_z] = sc.cvar_weight * w / (1.0 - sc.cvar_alpha)
    b.col_cost = [cost]


def define_cvar(b: MilpBuilder, index: Index, sets: ModelSets, c: _Cols) -> None:
    """``cvar``: ``z_σ ≥ C_σ − η`` per scenario, ``C_σ`` the plan's cost in scenario σ (the
    first-stage costs plus σ's recourse costs, :func:`cost_coefficients`).

    With ``z_σ ≥ 0`` and the objective term ``λ·(η + Σ_σ w_σ z_σ / (1 − α))`` this is the
    Rockafellar–Uryasev linearization: at an optimum ``z_σ = max(0, C_σ − η)`` and the
    term is ``λ·CVaR_α(C)``. Rows only when ``cvar_weight > 0``.
    """
    if c.eta < 0:
        return
    first_cols, first_vals, per = cost_coefficients(index, sets, c)
    rows_l, cols_l, vals_l = [], [], []
    for s, (cols, vals) in enumerate(per):
        rows_l += [np.full(first_cols.size + cols.size + 2, s)]
        cols_l += [first_cols, cols, np.array([c.eta, c.cvar_z[s]])]
        vals_l += [-first_vals, -vals, np.ones(2)]
    b.add_rows("cvar", index.S, np.concatenate(rows_l), np.concatenate(cols_l),
               np.concatenate(vals_l), 0.0, INF)


DEFINES = (define_assignment, define_capacity, define_on_link, define_switching,
           define_power_balance, define_battery, define_battery_exclusion, define_feeder,
           define_demand_peak, define_objective, define_cvar)
"""Constraint families and the objective, in build order."""


def build_milp(index: Index, *, elastic: bool = False,
               elastic_families: tuple[str, ...] = ("assignment", "capacity", "power_balance",
                                                    "battery_terminal", "feeder"),
               allowed: tuple[IntArray, IntArray] | None = None,
               ) -> MilpModel:
    """Build the MILP of SPEC §2-3 from the compiled index.

    Parameters
    ----------
    index : Index
        Compiled problem.
    elastic : bool
        Add a slack column to every row of ``elastic_families`` (those with a
        nonzero slack sign) and replace the objective by the total slack: the
        elastic relaxation used to explain infeasibility.

    Returns
    -------
    MilpModel
        Matrix in CSC form, bounds, costs, integrality and column maps.
    """
    t0 = time.perf_counter()
    sets = model_sets(index, allowed)
    b = MilpBuilder()
    c = define_variables(b, index, sets)
    for fn in DEFINES:
        fn(b, index, sets, c)
    slack = np.full(b.n_rows, -1, dtype=np.int64)
    col_cost = np.concatenate(b.col_cost)
    if elastic:
        col_cost[:] = 0.0
        b.col_cost = [col_cost]
        for blk in list(b.blocks):
            if blk.family not in elastic_families or blk.slack_sign == 0 or not blk.size:
                continue
            cols = b.add_cols(blk.size, 0.0, INF, 1.0)
            rows = np.arange(blk.start, blk.start + blk.size)
            b.rows.append(rows)
            b.cols.append(cols)
            b.vals.append(np.full(blk.size, blk.slack_sign))
            slack[rows] = cols
    rows = np.concatenate(b.rows) if b.rows else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(b.cols) if b.cols else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(b.vals) if b.vals else np.zeros(0)
    A = sp.csc_matrix((vals, (rows, cols)), shape=(b.n_rows, b.n_cols))
    A.sum_duplicates()
    return MilpModel(
        sets=sets, A=A, col_lb=np.concatenate(b.col_lb), col_ub=np.concatenate(b.col_ub),
        cost=np.concatenate(b.col_cost), integer=np.concatenate(b.col_int),
        row_lo=np.concatenate(b.row_lo) if b.row_lo else np.zeros(0),
        row_hi=np.concatenate(b.row_hi) if b.row_hi else np.zeros(0), blocks=b.blocks,
        **vars(c), slack=slack, build_seconds=time.perf_counter() - t0,
    )


def recourse_start(model: MilpModel, index: Index, flows: Flows, v: FloatArray) -> bool:
    """Fill the recourse columns of a column vector ``v`` from ``flows`` (in place); False
    (nothing filled) when ``flows`` are not of the model's scenarios.

    Every scenario's flows, peaks (the largest import) and exclusion binaries (1 where
    charging); with a CVaR term also ``η`` = the value at risk of the scenario costs
    ``C_σ`` that ``v`` gives and ``z_σ = max(0, C_σ − η)``, the optimal CVaR columns for
    that first stage and those flows. The first-stage columns must be filled already.
    """
    if flows.S != len(model.scenarios):
        return False
    for fc, f in zip(model.scenarios, flows.scenario_flows(), strict=True):
        v[fc.pv_used] = f.pv_used
        v[fc.grid_import] = f.grid_import
        v[fc.grid_export] = f.grid_export
        v[fc.charge] = f.charge
        v[fc.discharge] = f.discharge
        v[fc.soc] = f.soc
        v[fc.peak] = f.grid_import.max(axis=1, initial=0.0)
        m = fc.excl >= 0
        v[fc.excl[m]] = (f.charge[m] > 1e-9).astype(float)
    if model.eta >= 0:
        first_cols, first_vals, per = cost_coefficients(index, model.sets, model)
        fixed = float(np.dot(first_vals, v[first_cols]))
        costs = np.array([fixed + float(np.dot(vals, v[cols])) for cols, vals in per])
        sc = index.scenarios
        order = np.argsort(costs, kind="stable")
        k = int(np.searchsorted(np.cumsum(sc.weight[order]), sc.cvar_alpha - 1e-12))
        eta = float(costs[order[min(k, costs.size - 1)]])
        v[model.eta] = eta
        v[model.cvar_z] = np.maximum(0.0, costs - eta)
    return True


def recourse_flows(model: MilpModel, x: FloatArray, on: BoolArray, load: FloatArray) -> Flows:
    """The MILP's own flows of every scenario in a solution ``x`` (with ``on`` and ``load``)."""
    parts = [FlowArrays(pv_used=x[fc.pv_used], grid_import=x[fc.grid_import],
                        grid_export=x[fc.grid_export], charge=x[fc.charge],
                        discharge=x[fc.discharge], soc=x[fc.soc]) for fc in model.scenarios]
    return Flows.of_scenarios(on.copy(), load, parts)
