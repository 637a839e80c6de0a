"""Benchmark suites, registered in code.

A suite is a named recipe for a list of :class:`Instance`; an instance builds
its :class:`~optisched.domain.Problem` lazily, in the parent process, and the
runner writes it once as a bundle that every worker reads. An instance that
cannot be produced (the generator or the ICON importer fails on it, a shipped
bundle does not validate) is reported by the runner with the reason;
it never stops the other instances.

Registered suites
-----------------
``scale``
    The generator's size ladder (:func:`optisched.generate.generate` presets
    ``tiny``, ``small`` (20 jobs × 5 nodes × 48 slots), ``medium``
    (100 × 20 × 96), ``large`` (1,000 × 100 × 96), ``xl`` (10,000 × 1,000 × 96));
    ``sizes`` picks the rungs, default ``tiny, small, medium``.
``datasets``
    Every shipped bundle ``datasets/<name>/`` (a directory with a
    ``scenario.toml``) that validates.
``icon``
    The ICON 2014 energy-cost aware scheduling samples (CSPLib prob059),
    imported by :func:`optisched.icon.read_icon` from ``datasets/icon/`` (or
    ``$OPTISCHED_ICON_DIR``, or ``../shared/icon/samples``).
``features``
    One SPEC feature switched on at a time on a plain copy of the generated
    ``small`` instance; see :func:`feature_variants` for exactly what each
    variant sets.
``micro``
    Two tiny instances built in code (2-3 nodes, 3-4 jobs, 6-8 hourly slots),
    for tests of the benchmark machinery.
``tight``
    Tightly packed ICON-class instances, feasible by construction
    (:func:`optisched.generate.tight.tight_problem`, 288 five-minute slots, every
    job must run): 10 seeds (``seed`` … ``seed + 9``) at each rung of
    :data:`TIGHT_SIZES` (jobs × nodes: ``200x10``, ``1000x50``, ``5000x100``),
    named ``tight-<rung>-s<seed>``; ``sizes`` picks the rungs, default all three.
    Resources: ``1 + seed % 4`` at the two smaller rungs, 4 at ``5000x100``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    Problem,
    Scenario,
    Tariff,
)
from optisched.generate import generate, tight_problem
from optisched.icon import read_icon
from optisched.io import read_bundle

__all__ = [
    "FEATURES",
    "SCALE_SIZES",
    "SUITES",
    "TIGHT_SIZES",
    "Instance",
    "Suite",
    "SuiteOptions",
    "feature_variants",
    "load_suite",
    "micro_problems",
    "register_suite",
    "strip_features",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

SCALE_SIZES = ("tiny", "small", "medium", "large", "xl")
"""The generator's size ladder, smallest first."""

DEFAULT_SCALE_SIZES = ("tiny", "small", "medium")

FEATURES = ("plain", "battery", "feeders", "sleep", "soft_deadlines", "latency")
"""Variants of the ``features`` suite: the plain base and one feature each."""


@dataclass(frozen=True)
class Instance:
    """One benchmark instance.

    Attributes
    ----------
    name : str
        Unique within the suite, safe as a directory name.
    build : callable
        Returns the :class:`Problem`; may raise (then the instance is reported
        as not produced, with the exception's message).
    size : str
        Size label (generator preset) or ``""``.
    description : str
        One line: where the instance comes from.
    """

    name: str
    build: Callable[[], Problem]
    size: str = ""
    description: str = ""


@dataclass(frozen=True)
class SuiteOptions:
    """What a suite recipe may use.

    Attributes
    ----------
    sizes : tuple of str or None
        Size rungs (``scale``); None = the suite's default.
    seed : int
        Seed of generated instances.
    root : pathlib.Path
        Repository root (``datasets/`` lives there).
    """

    sizes: tuple[str, ...] | None = None
    seed: int = 0
    root: Path = REPO_ROOT


@dataclass(frozen=True)
class Suite:
    """A registered suite: a name and a recipe for its instances.

    Attributes
    ----------
    name : str
        ``--suite`` name.
    description : str
        One line.
    recipe : callable
        ``recipe(options) -> (instances, notes)``; notes explain instances the
        recipe already knows it cannot produce.
    """

    name: str
    description: str
    recipe: Callable[[SuiteOptions], tuple[list[Instance], list[str]]] = field(repr=False)


SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite) -> None:
    """Add (or replace) a suite."""
    SUITES[suite.name] = suite


def load_suite(name: str, sizes: list[str] | tuple[str, ...] | None = None, seed: int = 0,
               root: Path | None = None) -> tuple[list[Instance], list[str]]:
    """Instances of a registered suite.

    Parameters
    ----------
    name : str
        Suite name (see :data:`SUITES`).
    sizes : list of str, optional
        Size rungs for ``scale``.
    seed : int
        Seed for generated instances.
    root : pathlib.Path, optional
        Repository root; default the one this package lives in.

    Returns
    -------
    instances : list of Instance
    notes : list of str
        Why instances are missing (e.g. a dataset that does not validate is
        noted when its instance is built, by the runner).

    Raises
    ------
    ValueError
        Unknown suite or size.
    """
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; registered: {', '.join(SUITES)}")
    opts = SuiteOptions(sizes=tuple(sizes) if sizes else None, seed=seed, root=root or REPO_ROOT)
    return SUITES[name].recipe(opts)


# --------------------------------------------------------------------------- scale


def _generate(preset: str, seed: int) -> Problem:
    return generate(preset, seed=seed)


def _scale(opts: SuiteOptions) -> tuple[list[Instance], list[str]]:
    sizes = opts.sizes or DEFAULT_SCALE_SIZES
    bad = [s for s in sizes if s not in SCALE_SIZES]
    if bad:
        raise ValueError(f"unknown size(s) {', '.join(bad)}; the ladder is "
                         f"{', '.join(SCALE_SIZES)}")
    seed = opts.seed
    return [Instance(f"{s}-s{seed}", (lambda s=s: _generate(s, seed)), size=s,  # type: ignore[misc]
                     description=f"optisched.generate preset {s!r}, seed {seed}")
            for s in sizes], []


# --------------------------------------------------------------------------- datasets


def _read(path: Path) -> Problem:
    return read_bundle(path)


def _datasets(opts: SuiteOptions) -> tuple[list[Instance], list[str]]:
    base = opts.root / "datasets"
    if not base.is_dir():
        return [], [f"no datasets directory at {base}"]
    out = [Instance(d.name, (lambda d=d: _read(d)), size=d.name,  # type: ignore[misc]
                    description=f"shipped bundle datasets/{d.name}")
           for d in sorted(base.iterdir()) if (d / "scenario.toml").is_file()]
    return out, [] if out else [f"no bundles (directories with scenario.toml) in {base}"]


# --------------------------------------------------------------------------- icon

def _icon_dirs(root: Path) -> list[Path]:
    cands = [root / "datasets" / "icon"]
    env = os.environ.get("OPTISCHED_ICON_DIR")
    if env:
        cands.insert(0, Path(env))
    cands.append(root.parent / "shared" / "icon" / "samples")
    for c in cands:
        if c.is_dir():
            samples = sorted(d for d in c.iterdir() if (d / "instance.txt").is_file())
            if samples:
                return samples
    return []


def _icon_one(path: Path) -> Problem:
    return read_icon(path)


def _icon(opts: SuiteOptions) -> tuple[list[Instance], list[str]]:
    samples = _icon_dirs(opts.root)
    if not samples:
        return [], ["no ICON samples found (datasets/icon/sampleNN/instance.txt, "
                    "$OPTISCHED_ICON_DIR or ../shared/icon/samples)"]
    return [Instance(f"icon-{p.name}", (lambda p=p: _icon_one(p)), size="icon",  # type: ignore[misc]
                     description=f"ICON 2014 {p.name} (CSPLib prob059)") for p in samples], []


# --------------------------------------------------------------------------- features


def strip_features(problem: Problem) -> Problem:
    """A plain copy: no batteries, feeders, sleeping, soft deadlines or latency SLOs.

    Nodes lose their battery (``battery_kwh = 0``), feeder and ``can_sleep``
    (with start-up/shut-down costs 0, on from the start, no ``end_off``); jobs
    with a soft deadline get no deadline (horizon end) and jobs lose their
    latency SLO. Everything else (PV, tariffs, headroom, windows of hard
    deadlines, eligibility) is kept. Exception: a node that cannot import in
    some slot (``grid_kw = 0`` or a zero headroom in its series, e.g. an
    off-grid streetlight) keeps its battery and sleep settings, without which
    it could not be powered at all.
    """
    nodes = []
    for n in problem.nodes:
        n = n.model_copy(update=dict(feeder=None))
        if _islanded(problem, n):
            nodes.append(n)
            continue
        nodes.append(n.model_copy(update=dict(
            battery_kwh=0.0, charge_kw=None, discharge_kw=None, degradation_per_kwh=0.0,
            can_sleep=False, initially_on=True, end_off=False, startup_cost=0.0,
            shutdown_cost=0.0)))
    jobs = []
    for j in problem.jobs:
        upd: dict[str, object] = dict(latency_slo_ms=None, latency_per_ms=None)
        if j.tardiness_per_hour is not None:
            upd.update(tardiness_per_hour=None, deadline=None)
        jobs.append(j.model_copy(update=upd))
    return _rebuild(problem, nodes, jobs, feeders={})


def _islanded(p: Problem, n: Node) -> bool:
    """True when the node cannot import in some slot (off-grid or zero headroom)."""
    if n.grid_kw <= 0:
        return True
    s = p.node_series.get(n.node_id)
    if s is None or s.headroom_kw is None:
        return False
    return any(h is not None and h <= 0 for h in s.headroom_kw)


def _rebuild(p: Problem, nodes: list[Node], jobs: list[Job], *,
             feeders: dict[str, Feeder] | None = None,
             latency_ms: dict[str, dict[str, float]] | None = None) -> Problem:
    """A validated Problem from parts of ``p``."""
    return Problem(scenario=p.scenario, nodes=nodes, jobs=jobs, node_series=p.node_series,
                   tariffs=p.tariffs, feeders=p.feeders if feeders is None else feeders,
                   latency_ms=p.latency_ms if latency_ms is None else latency_ms,
                   regions=p.regions)


def _peak_pv(p: Problem, node_id: str) -> float:
    s = p.node_series.get(node_id)
    return max(s.pv_kw) if s is not None and s.pv_kw else 0.0


def _with_battery(p: Problem) -> Problem:
    big_job = max((j.power_kw for j in p.jobs), default=0.0)
    nodes = []
    for n in p.nodes:
        e = 2.0 * max(1.0, _peak_pv(p, n.node_id), n.idle_kw + big_job * n.power_factor)
        nodes.append(n.model_copy(update=dict(battery_kwh=e, soc_init=0.5, soc_min=0.1,
                                              soc_max=1.0, charge_kw=None, discharge_kw=None,
                                              eff_charge=0.95, eff_discharge=0.95,
                                              degradation_per_kwh=0.02)))
    return _rebuild(p, nodes, list(p.jobs))


def _with_feeders(p: Problem) -> Problem:
    hours = p.horizon.slots * p.horizon.dt_hours
    names = ("f0", "f1")
    nodes = [n.model_copy(update=dict(feeder=names[k % 2])) for k, n in enumerate(p.nodes)]
    # Average job load of a feeder: total job energy spread evenly over its nodes.
    job_energy = sum(j.power_kw * j.duration_min / 60.0 for j in p.jobs)
    big_job = max((j.power_kw for j in p.jobs), default=0.0)
    feeders = {}
    for f in names:
        members = [n for n in nodes if n.feeder == f]
        idle = sum(n.idle_kw * max(1.0, n.power_factor) for n in members)
        share = len(members) / max(1, len(nodes))
        avg = job_energy * share / hours
        pf = max((n.power_factor for n in members), default=1.0)
        head = idle + avg + big_job * pf
        feeders[f] = Feeder(headroom_kw=[head] * p.horizon.slots)
    return _rebuild(p, nodes, list(p.jobs), feeders=feeders)


def _with_sleep(p: Problem) -> Problem:
    nodes = [n.model_copy(update=dict(can_sleep=True, initially_on=True, end_off=False,
                                      startup_cost=0.5, shutdown_cost=0.2)) for n in p.nodes]
    return _rebuild(p, nodes, list(p.jobs))


def _with_soft_deadlines(p: Problem) -> Problem:
    hz = p.horizon
    jobs = []
    for j in p.jobs:
        if j.pinned:
            jobs.append(j)
            continue
        rel = j.release or hz.start
        # 1.25 x the run time on a speed-1 node after release, on the slot grid (ceil).
        want = rel + timedelta(minutes=1.25 * j.duration_min)
        slots = math.ceil(hz.slot_position(want) - 1e-9)
        dl = min(hz.end, hz.time_of(slots))
        if dl <= rel:
            jobs.append(j)
            continue
        jobs.append(j.model_copy(update=dict(deadline=dl, tardiness_per_hour=0.5)))
    return _rebuild(p, list(p.nodes), jobs)


def _with_latency(p: Problem) -> Problem:
    regions = ("r0", "r1")
    jobs = [j.model_copy(update=dict(region=regions[k % 2], latency_slo_ms=20.0,
                                     latency_per_ms=0.05))
            for k, j in enumerate(p.jobs)]
    lat = {n.node_id: {r: 5.0 + 15.0 * ((k + i) % 3) for i, r in enumerate(regions)}
           for k, n in enumerate(p.nodes)}
    return _rebuild(p, list(p.nodes), jobs, latency_ms=lat)


def feature_variants(base: Problem) -> dict[str, Problem]:
    """The ``features`` suite built from one base problem.

    ``plain`` is :func:`strip_features` of ``base``; every other variant is
    ``plain`` with exactly one feature switched on:

    ``battery``
        Every node gets a battery of ``2 h × max(1 kW, peak PV, idle_kw +
        largest job power × power_factor)`` [kWh], soc 0.5 initial, 0.1 minimum,
        default power limits (capacity / 2 h), efficiencies 0.95, degradation
        0.02 [money/kWh].
    ``feeders``
        Nodes alternate between feeders ``f0`` and ``f1``; a feeder's headroom
        is constant: its nodes' idle load + its share of the average job
        load + the largest job's power [kW] (tight when jobs cluster on a feeder).
    ``sleep``
        Every node may sleep, on at the start, start-up 0.5 and shut-down 0.2
        [money per switch].
    ``soft_deadlines``
        Every unpinned job's deadline becomes release + 1.25 × duration
        (rounded up to the slot grid, at most the horizon end) with tardiness
        0.5 [money/h].
    ``latency``
        Jobs alternate between user regions ``r0`` and ``r1`` with a soft SLO of
        20 ms at 0.05 [money/ms]; node k has 5 + 15 × ((k + i) mod 3) [ms] to
        region i (so a third of the nodes pay 15 ms over the SLO).
    """
    plain = strip_features(base)
    return {
        "plain": plain,
        "battery": _with_battery(plain),
        "feeders": _with_feeders(plain),
        "sleep": _with_sleep(plain),
        "soft_deadlines": _with_soft_deadlines(plain),
        "latency": _with_latency(plain),
    }


def _feature(name: str, seed: int) -> Problem:
    return feature_variants(_generate("small", seed))[name]


def _features(opts: SuiteOptions) -> tuple[list[Instance], list[str]]:
    seed = opts.seed
    return [Instance(f"small-{f}-s{seed}", (lambda f=f: _feature(f, seed)),  # type: ignore[misc]
                     size="small", description=f"generated small, seed {seed}, "
                     f"{'no optional feature' if f == 'plain' else 'only ' + f}")
            for f in FEATURES], []


# --------------------------------------------------------------------------- micro

_START = "2026-06-01T00:00:00+00:00"


def micro_problems() -> dict[str, Problem]:
    """Two tiny problems built in code (hourly slots), solvable in milliseconds.

    ``micro-a``: 2 nodes (one with PV, one with a 4 kWh battery), 3 jobs (one
    droppable), 8 slots, a price curve with a cheap midday. ``micro-b``: 3 nodes
    (one may sleep), 4 jobs (one with a soft deadline), 6 slots, two tariffs.
    """
    hz8 = Horizon(start=_START, slot_minutes=60, slots=8)
    t = hz8.time_of
    a = Problem(
        scenario=Scenario(horizon=hz8),
        nodes=[Node(node_id="n1", gpus=2, idle_kw=0.1),
               Node(node_id="n2", gpus=1, idle_kw=0.2, battery_kwh=4.0)],
        jobs=[Job(job_id="j1", gpus=1, duration_min=120, power_kw=1.0),
              Job(job_id="j2", gpus=1, duration_min=60, power_kw=0.5, drop_penalty=5.0),
              Job(job_id="j3", gpus=1, duration_min=180, power_kw=0.8, release=t(2),
                  deadline=t(8))],
        node_series={"n1": NodeSeries(pv_kw=[0, 0.2, 0.8, 1.2, 1.2, 0.8, 0.2, 0])},
        tariffs={"default": Tariff(price=[0.3, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4],
                                   export_price=[0.0] * 8, carbon_g_per_kwh=[0.0] * 8)},
    )
    hz6 = Horizon(start=_START, slot_minutes=60, slots=6)
    u = hz6.time_of
    b = Problem(
        scenario=Scenario(horizon=hz6),
        nodes=[Node(node_id="m1", gpus=1, idle_kw=0.1, tariff="cheap"),
               Node(node_id="m2", gpus=2, idle_kw=0.3, can_sleep=True, startup_cost=0.1,
                    shutdown_cost=0.1),
               Node(node_id="m3", gpus=1, idle_kw=0.05, battery_kwh=2.0, export_kw=1.0)],
        jobs=[Job(job_id="k1", gpus=1, duration_min=60, power_kw=0.6),
              Job(job_id="k2", gpus=2, duration_min=120, power_kw=1.5, drop_penalty=10.0),
              Job(job_id="k3", gpus=1, duration_min=120, power_kw=0.4, deadline=u(3),
                  tardiness_per_hour=0.5),
              Job(job_id="k4", gpus=1, duration_min=60, power_kw=0.3, release=u(1))],
        node_series={"m3": NodeSeries(pv_kw=[0, 0.5, 1.0, 1.0, 0.5, 0])},
        tariffs={"cheap": Tariff.constant(6, price=0.1),
                 "default": Tariff(price=[0.3, 0.25, 0.2, 0.2, 0.25, 0.3],
                                   export_price=[0.05] * 6, carbon_g_per_kwh=[0.0] * 6)},
    )
    return {"micro-a": a, "micro-b": b}


def _micro(opts: SuiteOptions) -> tuple[list[Instance], list[str]]:
    return [Instance(name, (lambda name=name: micro_problems()[name]),  # type: ignore[misc]
                     size="micro", description="built in code (optisched.bench.suites)")
            for name in ("micro-a", "micro-b")], []


# --------------------------------------------------------------------------- tight

TIGHT_SIZES: dict[str, tuple[int, int]] = {"200x10": (200, 10), "1000x50": (1000, 50),
                                           "5000x100": (5000, 100)}
"""Rungs of the ``tight`` suite: name → (jobs, nodes)."""

TIGHT_SEEDS = 10
"""Seeds per rung of the ``tight`` suite."""


def tight_resources(size: str, seed: int) -> int:
    """Resources of a ``tight`` instance: 4 at the largest rung, else ``1 + seed % 4``."""
    return 4 if size == "5000x100" else 1 + seed % 4


def _tight_one(size: str, seed: int) -> Problem:
    n_jobs, n_nodes = TIGHT_SIZES[size]
    problem: Problem = tight_problem(n_jobs, n_nodes, n_resources=tight_resources(
        size, seed), seed=seed)[0]
    return problem


def _tight(opts: SuiteOptions) -> tuple[list[Instance], list[str]]:
    sizes = opts.sizes or tuple(TIGHT_SIZES)
    bad = [s for s in sizes if s not in TIGHT_SIZES]
    if bad:
        raise ValueError(f"unknown size(s) {', '.join(bad)}; the tight rungs are "
                         f"{', '.join(TIGHT_SIZES)}")
    out = []
    for size in sizes:
        for seed in range(opts.seed, opts.seed + TIGHT_SEEDS):
            out.append(Instance(
                f"tight-{size}-s{seed}", (lambda size=size, seed=seed: _tight_one(size, seed)),  # type: ignore[misc]
                size=size, description=f"tight ICON-class {size}, "
                f"{tight_resources(size, seed)} resource(s), seed {seed}"))
    return out, []


register_suite(Suite("scale", "the generator's size ladder (tiny .. xl; --sizes)", _scale))
register_suite(Suite("datasets", "shipped bundles under datasets/ that validate", _datasets))
register_suite(Suite("icon", "ICON 2014 energy-cost aware scheduling samples", _icon))
register_suite(Suite("features", "one SPEC feature at a time on the generated small "
                     "instance", _features))
register_suite(Suite("micro", "two tiny instances built in code (tests)", _micro))
register_suite(Suite("tight", "tightly packed ICON-class instances, feasible by construction "
                     "(200x10, 1000x50, 5000x100; --sizes)", _tight))
