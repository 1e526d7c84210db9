"""The placement benchmark: the optimizer against a naive CP-SAT model and the baselines.

    python bench/placement.py [--sizes 1000x20,10000x100,100000x200] [--seed N]
                              [--naive-time-limit 20] [--json] [--skip-naive]
                              [--naive-max-literals 10000000]

For every size JOBSxSITES:

1. **Optimizer.** A fresh process (multiprocessing, ``spawn``) generates the instance
   (``bench.instances.make_instance``; not timed) and calls ``scheduler.core.solver.plan``.
   ``wall_s`` is the time of that call alone (it builds its model inside). ``peak_rss_mb`` is
   the child's ``ru_maxrss`` right after the call, so it covers interpreter + instance
   generation + solve; ``rss_after_generate_mb`` is the same figure taken before the call, so
   the difference is what the solve added. The same child then times ``options.estimate``
   alone and every baseline (``scheduler.core.planners.BASELINES``), and calls ``plan`` a
   second time (``wall_s_repeat``: imports done, as in a long-running control loop).
2. **Naive CP-SAT.** Another fresh process regenerates the instance and solves the textbook
   model built from the same options (``scheduler.core.options.estimate``):

       min   sum_{j,o} round(100 cost_j(o)) x_jo + sum_j round(100 wait_j) w_j
       s.t.  sum_o x_jo + w_j = 1                                   for every job j
             sum_{j,o in pool p} g_j x_jo <= available_p             for every (site, type) pool
             sum_{j,o at site s} ceil(1000 g_j kW_o) x_jo <= floor(1000 headroom_s)  (power cap)
             sum_{j of tenant q,o} g_j x_jo <= headroom_q            for every quota
             x, w boolean

   with ``--naive-time-limit`` seconds and 2 workers. ``naive_wall_s`` is estimate + model
   building + solve; ``naive_gap = (naive objective - optimizer lower bound) / naive
   objective``, with the naive plan priced exactly (floats, not the rounded costs), or null
   when CP-SAT found no feasible assignment (``naive_status`` says why). CP-SAT may overrun
   its time limit while loading and presolving a large model; ``naive_solve_s`` shows by how
   much. Models above ``--naive-max-literals`` booleans (default 10M) are not built (status
   ``NOT_BUILT``), to keep the run within the machine's memory; ``naive_peak_rss_mb`` shows
   what the built ones took.
3. **Gaps.** Every gap is ``(objective - lower_bound) / objective`` against the optimizer's
   proven lower bound, not clamped: a negative gap would mean an invalid bound.

``--json`` prints one JSON object per instance per line; otherwise a table. Nothing printed
is a constant: every figure is measured by this run. Exit status 1 when any planner failed.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import multiprocessing.connection
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``scheduler`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Row = dict[str, Any]

DEFAULT_SIZES = "1000x20,10000x100,100000x200"
COST_SCALE = 100  # naive model: costs in fen
POWER_SCALE = 1000  # naive model: power in W


# --------------------------------------------------------------------------- measuring


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _vm_hwm_mb() -> float | None:
    """The kernel's high-water mark of this process's own address space (resets on exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def gap(objective: float | None, lower_bound: float | None) -> float | None:
    """(objective - lower_bound) / objective, not clamped; None without both."""
    if objective is None or lower_bound is None:
        return None
    return (objective - lower_bound) / max(abs(objective), 1e-9)


# --------------------------------------------------------------------------- children


def solve_instance(jobs: int, sites: int, seed: int) -> Row:
    """Child: generate, run the optimizer (measured), then time estimate and the baselines."""
    rss_start = _peak_rss_mb()
    from bench.instances import make_instance

    t = time.perf_counter()
    snapshot, policy, now = make_instance(jobs, sites, seed)
    row: Row = {
        "generate_s": time.perf_counter() - t,
        "rss_start_mb": rss_start,
        "rss_after_generate_mb": _peak_rss_mb(),
    }

    # 1. The optimizer: only the plan() call is timed; peak RSS is read right after it.
    try:
        from scheduler.core.solver import plan

        t = time.perf_counter()
        result = plan(snapshot, policy, now, clock=time.perf_counter)  # clock: phase timings
        row["wall_s"] = time.perf_counter() - t
        row["peak_rss_mb"] = _peak_rss_mb()
        row["vm_hwm_mb"] = _vm_hwm_mb()
        row.update(_plan_summary(result))
        row["solver_stats"] = {k: float(v) for k, v in result.stats.items()}
        # the same call again in the same process: what a long-running control loop pays
        # once caches are warm
        del result
        t = time.perf_counter()
        plan(snapshot, policy, now)
        row["wall_s_repeat"] = time.perf_counter() - t
    except Exception:
        row["error"] = "optimizer: " + traceback.format_exc(limit=6)
        row["peak_rss_mb"] = _peak_rss_mb()

    # 2. The estimate phase alone (every planner starts with it).
    from scheduler.core.options import estimate

    t = time.perf_counter()
    options = estimate(snapshot, policy, now)
    row["estimate_s"] = time.perf_counter() - t
    row["classes"] = len(options.classes)
    row["literals"] = int(sum(c.jobs.size * c.options.size for c in options.classes))
    del options

    # 3. The baselines, each timed.
    baselines: dict[str, Row] = {}
    try:
        from scheduler.core.planners import BASELINES, PLANNERS
    except Exception:
        row["baselines_error"] = traceback.format_exc(limit=6)
    else:
        for name in BASELINES:
            try:
                t = time.perf_counter()
                base = PLANNERS[name](snapshot, policy, now)
                wall = time.perf_counter() - t
            except Exception:
                baselines[name] = {"error": traceback.format_exc(limit=6)}
                continue
            baselines[name] = {"wall_s": wall, **_plan_summary(base)}
    row["baselines"] = baselines
    return row


def _plan_summary(result: Any) -> Row:
    return {
        "objective": float(result.objective),
        "lower_bound": float(result.lower_bound),
        "placed": len(result.placements),
        "waiting": len(result.waits),
        "placed_accelerators": int(sum(p.accelerators for p in result.placements)),
    }


def solve_naive(jobs: int, sites: int, seed: int, time_limit_s: float, max_literals: int) -> Row:
    """Child: regenerate the instance, build the naive CP-SAT model and solve it."""
    from bench.instances import make_instance
    from scheduler.core.options import estimate

    snapshot, policy, now = make_instance(jobs, sites, seed)
    t = time.perf_counter()
    options = estimate(snapshot, policy, now)
    estimate_s = time.perf_counter() - t
    literals = int(sum(c.jobs.size * c.options.size for c in options.classes))
    row: Row = {"naive_literals": literals, "naive_estimate_s": estimate_s}
    if literals > max_literals:
        row.update(naive_status="NOT_BUILT", naive_wall_s=None, naive_objective=None)
        return row
    t = time.perf_counter()
    model = NaiveModel(options)
    row["naive_build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    status, choice, bound = model.solve(time_limit_s, workers=2)
    row["naive_solve_s"] = time.perf_counter() - t
    row["naive_wall_s"] = estimate_s + row["naive_build_s"] + row["naive_solve_s"]
    row["naive_status"] = status
    row["naive_peak_rss_mb"] = _peak_rss_mb()
    row["naive_bound"] = bound
    row["naive_objective"] = None
    if choice is not None:
        row["naive_objective"] = model.objective(choice)
        row["naive_violations"] = model.violations(choice)
        row["naive_placed"] = int((choice >= 0).sum())
    return row


class NaiveModel:
    """One boolean per (job, feasible option) and one wait boolean per job, written straight
    into the CP-SAT proto (the formulation is naive; its construction need not be slow).

    Jobs whose class has no option are left out: they wait, at their wait cost."""

    def __init__(self, options: Any) -> None:
        import numpy as np
        from ortools.sat.python import cp_model

        self.options = options
        self.model = cp_model.CpModel()
        proto = self.model.proto
        grid = options.grid
        t_n = len(grid.types)
        kw = grid.kw.reshape(-1)

        # layout: class by class, job-major blocks of option literals, then one wait
        # literal per modelled job
        blocks: list[tuple[Any, int]] = []  # (class, first literal)
        n_lits = 0
        for cls in options.classes:
            if cls.options.size:
                blocks.append((cls, n_lits))
                n_lits += cls.jobs.size * cls.options.size
        self.blocks = blocks
        modelled = [cls.jobs for cls, _ in blocks]
        n_jobs = int(sum(j.size for j in modelled))
        self.first_wait = n_lits
        total = n_lits + n_jobs
        chunk = 1_000_000
        for start in range(0, total, chunk):
            proto.merge_text_format("variables { domain: 0 domain: 1 } "
                                    * min(chunk, total - start))

        obj_vars: list[Any] = []
        obj_coeffs: list[Any] = []
        pool_terms: list[tuple[Any, Any, Any]] = []  # (literal, flat option, coefficient)
        power_terms: list[tuple[Any, Any, Any]] = []  # (literal, site, coefficient)
        quota_terms: dict[int, list[tuple[Any, Any]]] = {}
        wait = self.first_wait
        for cls, first in blocks:
            n, m = cls.jobs.size, cls.options.size
            lits = first + np.arange(n * m, dtype=np.int64).reshape(n, m)
            cost = cls.scale[:, None] * cls.per_scale[None, :] + cls.transfer[None, :]
            obj_vars.append(lits.reshape(-1))
            obj_coeffs.append(np.rint(cost * COST_SCALE).astype(np.int64).reshape(-1))
            waits = wait + np.arange(n, dtype=np.int64)
            obj_vars.append(waits)
            obj_coeffs.append(np.rint(cls.wait * COST_SCALE).astype(np.int64))
            rows = np.concatenate([lits, waits[:, None]], axis=1).tolist()
            for row in rows:
                proto.constraints.add().exactly_one.literals.extend(row)
            wait += n
            g = cls.accelerators
            flat = np.broadcast_to(cls.options, (n, m)).reshape(-1)
            pool_terms.append((lits.reshape(-1), flat, np.full(n * m, g, dtype=np.int64)))
            watts = np.ceil(g * kw[cls.options] * POWER_SCALE - 1e-9).astype(np.int64)
            power_terms.append((lits.reshape(-1), flat // t_n,
                                np.broadcast_to(watts, (n, m)).reshape(-1)))
            if cls.quota >= 0:
                quota_terms.setdefault(cls.quota, []).append(
                    (lits.reshape(-1), np.full(n * m, g, dtype=np.int64)))

        proto.objective.vars.extend(np.concatenate(obj_vars).tolist())
        proto.objective.coeffs.extend(np.concatenate(obj_coeffs).tolist())

        def add_grouped(terms: list[tuple[Any, Any, Any]], rhs: Callable[[int], int | None]) -> int:
            if not terms:
                return 0
            lit = np.concatenate([x[0] for x in terms])
            key = np.concatenate([x[1] for x in terms])
            coef = np.concatenate([x[2] for x in terms])
            order = np.argsort(key, kind="stable")
            lit, key, coef = lit[order], key[order], coef[order]
            bounds = np.flatnonzero(np.diff(key)) + 1
            added = 0
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, key.size], strict=True):
                cap = rhs(int(key[lo]))
                if cap is None:
                    continue
                c = proto.constraints.add().linear
                c.vars.extend(lit[lo:hi].tolist())
                c.coeffs.extend(coef[lo:hi].tolist())
                c.domain.extend([0, max(0, cap)])
                added += 1
            return added

        available = grid.available.reshape(-1)
        headroom = grid.power_headroom_kw
        self.pool_rows = add_grouped(pool_terms, lambda f: int(available[f]))
        self.power_rows = add_grouped(
            power_terms,
            lambda s: math.floor(headroom[s] * POWER_SCALE) if math.isfinite(headroom[s])
            else None,
        )
        self.quota_rows = 0
        for q, terms in sorted(quota_terms.items()):
            c = proto.constraints.add().linear
            c.vars.extend(np.concatenate([x[0] for x in terms]).tolist())
            c.coeffs.extend(np.concatenate([x[1] for x in terms]).tolist())
            c.domain.extend([0, max(0, int(options.quotas[q].headroom))])
            self.quota_rows += 1
        self.literals = total

    def solve(self, time_limit_s: float, workers: int) -> tuple[str, Any, float | None]:
        """(status name, per-job option position or -1 for wait, CP-SAT's bound in CNY)."""
        import numpy as np
        from ortools.sat.python import cp_model

        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = time_limit_s
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = 0
        status = solver.solve(self.model)
        name = solver.status_name(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return name, None, None
        values = np.asarray(solver.response_proto.solution, dtype=np.int8)
        choice = np.full(self.options.job_class.size, -1, dtype=np.int64)
        for cls, first in self.blocks:
            n, m = cls.jobs.size, cls.options.size
            x = values[first:first + n * m].reshape(n, m)
            chosen = x.argmax(axis=1)
            choice[cls.jobs] = np.where(x.any(axis=1), chosen, -1)
        return name, choice, float(solver.best_objective_bound) / COST_SCALE

    def objective(self, choice: Any) -> float:
        """The exact (float) cost of a choice, priced like every planner's plan."""
        from scheduler.core.assemble import job_costs

        return float(sum(job_costs(cls, choice[cls.jobs]).sum()
                         for cls in self.options.classes))

    def violations(self, choice: Any) -> int:
        """Shared constraints the choice breaks, checked in floats (should be 0)."""
        import numpy as np

        from scheduler.core.assemble import initial_usage, take

        usage = initial_usage(self.options)
        for cls in self.options.classes:
            own = choice[cls.jobs]
            for pos, n in zip(*np.unique(own[own >= 0], return_counts=True), strict=True):
                take(cls, int(pos), usage, self.options, int(n))
        return int((usage.pool < 0).sum() + (usage.power_kw < -1e-6).sum()
                   + (usage.quota < 0).sum())


# --------------------------------------------------------------------------- processes


def _child(conn: multiprocessing.connection.Connection, target: Callable[..., Row],
           args: tuple[Any, ...]) -> None:
    try:
        conn.send({"row": target(*args)})
    except BaseException:
        conn.send({"error": traceback.format_exc(limit=8)})
    finally:
        conn.close()


def in_fresh_process(target: Callable[..., Row], *args: Any) -> Row:
    """Run ``target(*args)`` in a new interpreter (spawn) and return its row; a crash or an
    exception comes back as ``{"error": ...}``."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, target, args))
    proc.start()
    send.close()
    try:
        message = recv.recv()
    except EOFError:
        message = None
    proc.join()
    if message is None:
        return {"error": f"child process died with exit code {proc.exitcode}"}
    if "error" in message:
        return {"error": message["error"]}
    row: Row = message["row"]
    return row


# --------------------------------------------------------------------------- benchmark


def run(jobs: int, sites: int, seed: int, naive_time_limit: float, skip_naive: bool,
        naive_max_literals: int) -> Row:
    row: Row = {"jobs": jobs, "sites": sites, "seed": seed}
    solved = in_fresh_process(solve_instance, jobs, sites, seed)
    errors = [solved.pop("error")] if "error" in solved else []
    baselines = solved.pop("baselines", {})
    row.update({k: solved.get(k) for k in ("wall_s", "peak_rss_mb", "objective", "lower_bound")})
    lb = row["lower_bound"]
    row["gap"] = gap(row["objective"], lb)
    row.update({"naive_wall_s": None, "naive_gap": None, "naive_status": "SKIPPED"})
    if not skip_naive:
        naive = in_fresh_process(solve_naive, jobs, sites, seed, naive_time_limit,
                                 naive_max_literals)
        if "error" in naive:
            errors.append("naive: " + naive.pop("error"))
            naive["naive_status"] = "ERROR"
        row.update(naive)
        row["naive_gap"] = gap(naive.get("naive_objective"), lb)
    row["baselines"] = {
        name: {"objective": b.get("objective"), "gap": gap(b.get("objective"), lb),
               **{k: v for k, v in b.items() if k not in ("objective", "gap")}}
        for name, b in baselines.items()
    }
    for k, v in solved.items():
        row.setdefault(k, v)
    if errors:
        row["errors"] = errors
    return row


def _strict(value: Any) -> Any:
    """The row as strict JSON: non-finite floats (a stat may be inf) become null."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        jobs, _, sites = part.strip().lower().partition("x")
        if not jobs.isdigit() or not sites.isdigit():
            raise argparse.ArgumentTypeError(f"size {part!r} is not JOBSxSITES")
        sizes.append((int(jobs), int(sites)))
    return sizes


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def print_table(rows: Sequence[Row]) -> None:
    header = (f"{'size':>12} {'wall_s':>8} {'again_s':>8} {'rss_MB':>8} {'objective':>14} "
              f"{'lower_bound':>14} {'gap':>8} {'classes':>7} {'placed':>7} {'waiting':>7} "
              f"{'naive':>10} {'naive_s':>8} {'naive_gap':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{str(r['jobs']) + 'x' + str(r['sites']):>12} {_fmt(r['wall_s'], '.2f'):>8} "
              f"{_fmt(r.get('wall_s_repeat'), '.2f'):>8} {_fmt(r['peak_rss_mb'], '.0f'):>8} "
              f"{_fmt(r['objective'], ',.0f'):>14} {_fmt(r['lower_bound'], ',.0f'):>14} "
              f"{_fmt(r['gap'], '.4%'):>8} "
              f"{_fmt(r.get('classes'), 'd'):>7} {_fmt(r.get('placed'), 'd'):>7} "
              f"{_fmt(r.get('waiting'), 'd'):>7} {r['naive_status']:>10} "
              f"{_fmt(r['naive_wall_s'], '.2f'):>8} {_fmt(r['naive_gap'], '.4%'):>9}")
    print()
    print(f"{'size':>12} {'baseline':>20} {'objective':>14} {'gap':>9} {'wall_s':>8} "
          f"{'placed':>7}")
    for r in rows:
        for name, b in r["baselines"].items():
            print(f"{str(r['jobs']) + 'x' + str(r['sites']):>12} {name:>20} "
                  f"{_fmt(b.get('objective'), ',.0f'):>14} {_fmt(b.get('gap'), '.2%'):>9} "
                  f"{_fmt(b.get('wall_s'), '.2f'):>8} {_fmt(b.get('placed'), 'd'):>7}")
    print()
    print("wall_s: the first plan() call in a fresh process (model building included); "
          "again_s: a second call in the same process. rss_MB: peak RSS of the fresh child "
          "that generated the instance and solved it (read after the first call).")
    for r in rows:
        print(f"{r['jobs']}x{r['sites']}: generate {_fmt(r.get('generate_s'), '.2f')} s, "
              f"RSS after generate {_fmt(r.get('rss_after_generate_mb'), '.0f')} MB, "
              f"estimate alone {_fmt(r.get('estimate_s'), '.2f')} s, "
              f"naive-model booleans {_fmt(r.get('literals'), ',d')}")
        for err in r.get("errors", []):
            print("  ERROR " + err.strip().replace("\n", "\n        "))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES),
                        help=f"comma-separated JOBSxSITES (default {DEFAULT_SIZES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive-time-limit", type=float, default=20.0,
                        help="CP-SAT time limit of the naive model, seconds (default 20)")
    parser.add_argument("--naive-max-literals", type=int, default=10_000_000,
                        help="do not build naive models with more booleans (default 10M)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON object per instance")
    args = parser.parse_args(argv)

    rows = []
    for jobs, sites in args.sizes:
        row = run(jobs, sites, args.seed, args.naive_time_limit, args.skip_naive,
                  args.naive_max_literals)
        rows.append(row)
        if args.json:
            print(json.dumps(_strict(row), allow_nan=False), flush=True)
    if not args.json:
        print_table(rows)
    failed = any(r.get("errors") or any("error" in b for b in r["baselines"].values())
                 or not r["baselines"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
