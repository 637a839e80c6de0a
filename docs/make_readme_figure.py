"""Draw the README figure: fleet energy and battery of a planned bundle.

Usage (from the repository root)::

    python docs/make_readme_figure.py datasets/neighborhood docs/img/neighborhood.png \\
        --solver greedy --time-limit 20

Plans the bundle with the given solver (or reads an existing plan with
``--plan DIR``), then draws two rows sharing the time axis with
:func:`optisched.viz.energy_stack` and :func:`optisched.viz.battery_soc` for
the fleet aggregate, and writes a PNG.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
from pathlib import Path

import optisched
from optisched import viz
from optisched.atomic import write_file_atomically
from optisched.index import compile_index

log = logging.getLogger("make_readme_figure")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--plan", type=Path, default=None, help="read this plan instead of solving")
    ap.add_argument("--solver", default="greedy")
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--dpi", type=int, default=90)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    problem = optisched.read_bundle(args.bundle)
    if args.plan is not None:
        plan = optisched.read_plan(problem, args.plan)
    else:
        plan = optisched.solve(problem, args.solver, time_limit=args.time_limit, seed=0)
    if plan.flows is None:
        raise SystemExit(f"no plan: {plan.status.value} {plan.message}")
    index = compile_index(problem)
    fig = viz.new_figure(10.0, 5.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    viz.energy_stack(problem, plan, index, None, ax=top)
    viz.battery_soc(problem, plan, index, None, ax=bottom)
    top.set_xlabel("")
    name = args.bundle.name
    top.set_title(f"{name}: {len(problem.nodes)} nodes, {len(problem.jobs)} jobs, "
                  f"planned by {plan.solver} (objective {plan.objective:.4g}) — fleet energy")
    bottom.set_title("fleet battery state of charge")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=args.dpi)
    os.chmod(write_file_atomically(args.out, buf.getvalue()), 0o644)
    log.info("wrote %s (%d bytes)", args.out, len(buf.getvalue()))


if __name__ == "__main__":
    main()
