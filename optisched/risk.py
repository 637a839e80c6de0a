"""Expected cost and CVaR of a discrete distribution of scenario costs (beyond SPEC v1).

A plan of a problem with scenarios has one cost ``c_s`` per scenario ``s`` (weight
``w_s``, the weights sum to 1). Its objective is

    E[c] + λ · CVaR_α(c),    E[c] = Σ_s w_s c_s,

with ``λ = cvar_weight`` and ``α = cvar_alpha`` of ``[objective]``
(``docs/contract/cost.md``). ``CVaR_α`` is the expected cost in the worst
``1 − α`` of the probability mass. On a discrete distribution it is the
*sorted-tail formula*: sort the costs from the highest down and take the
weighted mean of the first ``1 − α`` of the mass, the scenario on the boundary
counted with the part of its weight that fits::

    CVaR_α(c) = (1 / (1 − α)) · Σ_k q_k c_(k),   q_k = min(w_(k), max(0, 1 − α − Σ_{i<k} w_(i)))

It equals the Rockafellar–Uryasev form ``min_η η + Σ_s w_s max(0, c_s − η) / (1 − α)``
(the one the MILP linearizes) at ``η`` = the value-at-risk. ``CVaR_0`` is the
expectation, and CVaR is monotone in every ``c_s``: lowering one scenario's cost never
raises it (``docs/algorithms/scenarios.md`` uses this to dispatch each scenario on its
own).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray

__all__ = ["cvar", "risk_objective", "tail_weights"]


def tail_weights(costs: npt.ArrayLike, weights: npt.ArrayLike, alpha: float) -> FloatArray:
    """Weights ``p_s`` with ``CVaR_α(c) = Σ_s p_s c_s`` (the sorted-tail formula).

    Parameters
    ----------
    costs : (S,) float
        Cost of each scenario [money].
    weights : (S,) float
        Probabilities (summing to 1).
    alpha : float
        CVaR level in [0, 1).

    Returns
    -------
    (S,) float
        ``q_s / (1 − α)``: non-negative, summing to 1, each at most ``w_s / (1 − α)``.
        Ties are broken by scenario order (any tie-break gives the same CVaR).
    """
    c = np.asarray(costs, dtype=float)
    w = np.asarray(weights, dtype=float)
    beta = 1.0 - float(alpha)
    order = np.argsort(-c, kind="stable")
    before = np.concatenate([[0.0], np.cumsum(w[order])[:-1]])
    q = np.minimum(w[order], np.maximum(0.0, beta - before))
    out = np.zeros_like(w)
    out[order] = q / beta
    return out


def cvar(costs: npt.ArrayLike, weights: npt.ArrayLike, alpha: float) -> float:
    """``CVaR_α`` of scenario costs (see :func:`tail_weights`) [money]."""
    c = np.asarray(costs, dtype=float)
    if c.size == 1:
        return float(c[0])
    return float(np.dot(tail_weights(c, weights, alpha), c))


def risk_objective(costs: npt.ArrayLike, weights: npt.ArrayLike, alpha: float,
                   cvar_weight: float) -> float:
    """``E[c] + λ · CVaR_α(c)`` [money]; a single scenario with ``λ = 0`` is its cost."""
    c = np.asarray(costs, dtype=float)
    if c.size == 1 and cvar_weight == 0:
        return float(c[0])
    expected = float(np.dot(np.asarray(weights, dtype=float), c))
    return expected + (cvar_weight * cvar(c, weights, alpha) if cvar_weight else 0.0)
