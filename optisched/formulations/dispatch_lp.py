"""The dispatch LP of one group of nodes (SPEC §2 constraints 5-7): the one builder.

For fixed loads, the energy flows of a group of nodes (a feeder with a finite
headroom in some slot, or standalone nodes side by side) are the solution of this
LP (Δ = slot length [h], per node and slot)::

    min  Σ Δ·import_cost·import − Δ·export_price·export + Δ·degradation·discharge
         + Σ_n demand_charge_n · peak_n
    s.t. pv_used + import + discharge − charge − export = load
         soc_t − soc_{t−1} − Δ·eff_c·charge + Δ/eff_d·discharge = 0   (soc_{−1} = soc_init)
         import ≤ peak_n                                  (nodes with a demand charge)
         Σ_{n∈f} (import − export) ≤ feeder_headroom_t     (finite slots only)
         0 ≤ pv_used ≤ pv, 0 ≤ import ≤ headroom, 0 ≤ export ≤ export_kw,
         0 ≤ charge ≤ charge_kw, 0 ≤ discharge ≤ discharge_kw,
         soc_min ≤ soc ≤ soc_max, soc_{T−1} ≥ soc_init   (terminal rule "initial")

"Never charge and discharge in one slot" (SPEC §2.6) is not in the LP. With
``binaries`` (a ``(K, T)`` mask) the model becomes a MILP with a binary ``b`` for
each marked slot: ``charge ≤ charge_kw·b``, ``discharge ≤ discharge_kw·(1 − b)``.

Layout (:class:`DispatchLp`): node ``k``'s variable ``v`` in slot ``t`` is column
``(k·6 + v)·T + t`` with ``v`` one of :data:`PV_USED`, :data:`IMPORT`,
:data:`EXPORT`, :data:`CHARGE`, :data:`DISCHARGE`, :data:`SOC`; then one peak
column per node with a demand charge; then the binaries. Rows: the balance rows
(row ``k·T + t``, whose duals are the marginal prices of load used by the
Lagrangian bound), the state-of-charge rows, the peak rows, the feeder rows, then
two rows per binary.

Used by the exact dispatch (:mod:`optisched.dispatch`) and by the Lagrangian bound
(:mod:`optisched.bounds.lagrangian`), so both solve the same LP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.backends.highs import LinearModel
from optisched.index import Index

__all__ = [
    "CHARGE",
    "DISCHARGE",
    "EXPORT",
    "IMPORT",
    "N_VARS",
    "PV_USED",
    "SOC",
    "DispatchLp",
    "build_dispatch_lp",
]

PV_USED, IMPORT, EXPORT, CHARGE, DISCHARGE, SOC = range(6)
"""Position of each flow among a node's variables in one slot."""
N_VARS = 6
"""Variables per node and slot."""


@dataclass
class DispatchLp:
    """The dispatch LP (or MILP) of one group of nodes and its layout.

    Attributes
    ----------
    nodes : (K,) int
        Node positions, in block order.
    feeders : list of int
        Feeders whose headroom rows the model has.
    T : int
        Slots.
    peak_nodes : (P,) int
        Block positions of the nodes with a demand charge (one peak column each).
    model : LinearModel
        The arrays (CSR matrix).
    integer : (n_cols,) bool or None
        Integer columns (the binaries); None for the LP.
    binary_k, binary_t : (B,) int
        Block position and slot of each binary (``np.nonzero(binaries)``).
    """

    nodes: IntArray
    feeders: list[int]
    T: int
    peak_nodes: IntArray
    model: LinearModel
    integer: BoolArray | None
    binary_k: IntArray
    binary_t: IntArray

    @property
    def n_base(self) -> int:
        """Flow columns ``K·6·T`` (the peak columns and binaries follow)."""
        return self.nodes.size * N_VARS * self.T

    @property
    def balance_rows(self) -> slice:
        """The power-balance rows: row ``k·T + t`` for node ``k`` and slot ``t``."""
        return slice(0, self.nodes.size * self.T)

    def col(self, k: npt.ArrayLike, v: int, t: npt.ArrayLike) -> IntArray:
        """Column of variable ``v`` of block node ``k`` in slot ``t``."""
        return _column(k, v, t, self.T)

    def flow_values(self, x: FloatArray) -> FloatArray:
        """The flow columns of a solution as a ``(K, 6, T)`` copy."""
        return x[: self.n_base].reshape(self.nodes.size, N_VARS, self.T).copy()

    def binary_values(self, x: FloatArray) -> FloatArray:
        """The binaries of a solution, in the order of :attr:`binary_k`."""
        return x[self.model.n_cols - self.binary_k.size:]

    def balance_duals(self, row_dual: FloatArray) -> FloatArray:
        """The balance rows' duals as ``(K, T)`` [money/kW]."""
        return row_dual[self.balance_rows].reshape(self.nodes.size, self.T)

    def node_values(self, x: FloatArray) -> FloatArray:
        """Each block node's part of the objective at the solution ``x`` as ``(K,)``
        [money]: the cost of its flow columns and of its peak column. Without feeder rows
        the nodes' LPs are independent blocks, so at an optimal ``x`` each part is that
        node's own optimal value."""
        K, T = self.nodes.size, self.T
        cost = self.model.cost
        flows = (cost[: self.n_base] * x[: self.n_base]).reshape(K, N_VARS * T).sum(axis=1)
        peak = np.zeros(K)
        at = self.n_base + np.arange(self.peak_nodes.size)
        peak[self.peak_nodes] = cost[at] * x[at]
        return np.asarray(flows + peak)


def _column(k: npt.ArrayLike, v: int, t: npt.ArrayLike, T: int) -> IntArray:
    return np.asarray((np.asarray(k) * N_VARS + v) * T + np.asarray(t), dtype=np.int64)


class _Rows:
    """Rows in coordinate form, appended block by block."""

    def __init__(self) -> None:
        self.rows: list[IntArray] = []
        self.cols: list[IntArray] = []
        self.vals: list[FloatArray] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.n = 0

    def add(self, r: IntArray, c: IntArray, v: FloatArray | float) -> None:
        """Coefficients ``v`` at rows ``r`` (absolute) and columns ``c``."""
        self.rows.append(r)
        self.cols.append(c)
        self.vals.append(np.broadcast_to(np.asarray(v, dtype=float), r.shape).copy())

    def close(self, lo: FloatArray, hi: FloatArray) -> None:
        """End a block of ``lo.size`` rows with these bounds."""
        self.lo.append(lo)
        self.hi.append(hi)
        self.n += lo.size

    def matrix(self, n_cols: int) -> sp.csr_matrix:
        A = sp.csr_matrix((np.concatenate(self.vals),
                           (np.concatenate(self.rows), np.concatenate(self.cols))),
                          shape=(self.n, n_cols))
        A.sum_duplicates()
        return A


def _flow_columns(index: Index, nodes: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bounds and costs of the flow columns, each ``(K, 6, T)``."""
    T, dt = index.T, index.dt
    K = nodes.size
    lo = np.zeros((K, N_VARS, T))
    hi = np.zeros((K, N_VARS, T))
    cost = np.zeros((K, N_VARS, T))
    hi[:, PV_USED] = index.pv[nodes]
    hi[:, IMPORT] = index.headroom[nodes]
    hi[:, EXPORT] = index.export_kw[nodes][:, None]
    hi[:, CHARGE] = index.charge_kw[nodes][:, None]
    hi[:, DISCHARGE] = index.discharge_kw[nodes][:, None]
    lo[:, SOC] = index.soc_min[nodes][:, None]
    hi[:, SOC] = index.soc_max[nodes][:, None]
    if index.terminal_initial:
        lo[:, SOC, T - 1] = np.maximum(index.soc_min[nodes], index.soc_init[nodes])
    cost[:, IMPORT] = dt * index.import_cost[nodes]
    cost[:, EXPORT] = -dt * index.export_price[nodes]
    cost[:, DISCHARGE] = dt * index.degradation[nodes][:, None]
    return lo, hi, cost


def _balance_and_soc_rows(index: Index, nodes: IntArray, load: FloatArray, m: _Rows) -> None:
    """``p + i + d − c − e = load`` (rows ``k·T + t``), then the soc dynamics."""
    T, dt = index.T, index.dt
    K = nodes.size
    kk = np.repeat(np.arange(K), T)
    tt = np.tile(np.arange(T), K)
    nn = nodes[kk]
    rb = m.n + kk * T + tt
    for v, coef in ((PV_USED, 1.0), (IMPORT, 1.0), (DISCHARGE, 1.0), (CHARGE, -1.0),
                    (EXPORT, -1.0)):
        m.add(rb, _column(kk, v, tt, T), coef)
    lv = load[nodes].ravel()
    m.close(lv, lv)
    rs = m.n + kk * T + tt
    m.add(rs, _column(kk, SOC, tt, T), 1.0)
    later = tt > 0
    m.add(rs[later], _column(kk[later], SOC, tt[later] - 1, T), -1.0)
    m.add(rs, _column(kk, CHARGE, tt, T), -dt * index.eff_charge[nn])
    m.add(rs, _column(kk, DISCHARGE, tt, T), dt / index.eff_discharge[nn])
    rhs = np.where(tt == 0, index.soc_init[nn], 0.0)
    m.close(rhs, rhs)


def _peak_rows(T: int, peak_nodes: IntArray, n_base: int, m: _Rows) -> None:
    """``import − peak ≤ 0`` for the nodes with a demand charge."""
    n_peak = peak_nodes.size
    if not n_peak:
        return
    pk = np.repeat(peak_nodes, T)
    pt = np.tile(np.arange(T), n_peak)
    pj = np.repeat(np.arange(n_peak), T)
    rp = m.n + np.arange(pk.size)
    m.add(rp, _column(pk, IMPORT, pt, T), 1.0)
    m.add(rp, n_base + pj, -1.0)
    m.close(np.full(pk.size, -np.inf), np.zeros(pk.size))


def _feeder_rows(index: Index, nodes: IntArray, feeders: list[int], m: _Rows) -> None:
    """``Σ_{n∈f} (import − export) ≤ feeder_headroom_t`` in the finite slots."""
    for f in feeders:
        lim = index.feeder_headroom[f]
        fin = np.nonzero(np.isfinite(lim))[0]
        members = np.nonzero(index.feeder_of[nodes] == f)[0]
        if not fin.size or not members.size:
            continue
        mk = np.repeat(members, fin.size)
        mt = np.tile(np.arange(fin.size), members.size)
        rf = m.n + mt
        m.add(rf, _column(mk, IMPORT, fin[mt], index.T), 1.0)
        m.add(rf, _column(mk, EXPORT, fin[mt], index.T), -1.0)
        m.close(np.full(fin.size, -np.inf), lim[fin])


def _binary_rows(index: Index, nodes: IntArray, bk: IntArray, bt: IntArray, first: int,
                 m: _Rows) -> None:
    """``charge − charge_kw·b ≤ 0`` and ``discharge + discharge_kw·b ≤ discharge_kw``
    for binaries ``b`` (columns ``first, first + 1, …``)."""
    nb = bk.size
    bcols = first + np.arange(nb)
    rc = m.n + np.arange(nb)
    m.add(rc, _column(bk, CHARGE, bt, index.T), 1.0)
    m.add(rc, bcols, -index.charge_kw[nodes[bk]])
    m.close(np.full(nb, -np.inf), np.zeros(nb))
    rd = m.n + np.arange(nb)
    m.add(rd, _column(bk, DISCHARGE, bt, index.T), 1.0)
    m.add(rd, bcols, index.discharge_kw[nodes[bk]])
    m.close(np.full(nb, -np.inf), index.discharge_kw[nodes[bk]])


def build_dispatch_lp(index: Index, nodes: IntArray, load: FloatArray, feeders: list[int],
                      binaries: BoolArray | None = None) -> DispatchLp:
    """The dispatch LP of ``nodes`` at ``load`` (see the module docstring).

    Parameters
    ----------
    index : Index
        Compiled problem.
    nodes : (K,) int
        Node positions of the group.
    load : (N, T) float
        Load of every node and slot [kW] (rows ``nodes`` are used).
    feeders : list of int
        Feeders whose headroom couples ``nodes`` (a row per finite slot).
    binaries : (K, T) bool, optional
        Slots that get a complementarity binary (a MILP); None or all False: the LP.

    Returns
    -------
    DispatchLp
        The model and its layout.
    """
    T = index.T
    peak_nodes = np.nonzero(index.demand_charge[nodes] > 0)[0].astype(np.int64)
    n_base = nodes.size * N_VARS * T
    n_peak = peak_nodes.size
    lo, hi, cost = _flow_columns(index, nodes)
    col_lo = [lo.ravel(), np.zeros(n_peak)]
    col_hi = [hi.ravel(), np.full(n_peak, np.inf)]
    col_cost = [cost.ravel(), index.demand_charge[nodes[peak_nodes]]]
    m = _Rows()
    _balance_and_soc_rows(index, nodes, load, m)
    _peak_rows(T, peak_nodes, n_base, m)
    _feeder_rows(index, nodes, feeders, m)
    n_col = n_base + n_peak
    integer = None
    bk = bt = np.zeros(0, dtype=np.int64)
    if binaries is not None and binaries.any():
        bk, bt = (a.astype(np.int64) for a in np.nonzero(binaries))
        nb = bk.size
        _binary_rows(index, nodes, bk, bt, n_col, m)
        col_lo.append(np.zeros(nb))
        col_hi.append(np.ones(nb))
        col_cost.append(np.zeros(nb))
        integer = np.concatenate([np.zeros(n_col, dtype=bool), np.ones(nb, dtype=bool)])
        n_col += nb
    model = LinearModel(A=m.matrix(n_col), cost=np.concatenate(col_cost),
                        col_lb=np.concatenate(col_lo), col_ub=np.concatenate(col_hi),
                        row_lo=np.concatenate(m.lo), row_hi=np.concatenate(m.hi))
    return DispatchLp(nodes, list(feeders), T, peak_nodes, model, integer, bk, bt)
