"""Figures from simulation results: ``summarize`` (one policy), ``build_report`` (all, as the
JSON document ``isthmus simulate`` writes) and ``write_html`` (the HTML report with PNG plots,
when matplotlib is installed). Metric definitions are in docs/simulation.md.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.sim.engine import SimResult
from scheduler.sim.scenario import Scenario

SIDES = ("east", "west")


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def _in_horizon(result: SimResult) -> tuple[np.ndarray, float, float, float, float]:
    """Per site, accelerator-hours busy within the horizon (exact, from the runs); and over
    all runs, the energy and rental CNY, the demand served and the cost floor within the
    horizon (a run that goes on past the end is charged pro rata, like one an outage stops)."""
    sc = result.scenario
    index = {s.id: i for i, s in enumerate(sc.sites)}
    busy = np.zeros(len(sc.sites))
    energy = rental = demand = floor = 0.0
    for run in result.runs:
        lo, hi = max(run.start_s, sc.start_s), min(run.end_s, sc.end_s)
        if hi <= lo:
            continue
        hours = (hi - lo) / 3600.0
        busy[index[run.site]] += run.accelerators * hours
        share = (hi - lo) / (run.end_s - run.start_s) if run.end_s > run.start_s else 1.0
        energy += run.energy_cny * share
        rental += run.rental_cny * share
        floor += run.floor_cny * share
        demand += run.accelerators * hours * run.work_rate
    return busy, energy, rental, demand, floor


def _hourly(result: SimResult, columns: np.ndarray, capacity: np.ndarray) -> list[float]:
    """Mean utilisation per simulated hour from the tick samples (``columns``: (K, S))."""
    sc = result.scenario
    total = float(capacity.sum())
    if not total or result.sample_times.size == 0:
        return []
    hour = ((result.sample_times - sc.start_s) // 3600.0).astype(np.int64)
    busy = columns.sum(axis=1)
    hours = math.ceil(sc.duration_h)
    sums = np.bincount(hour, weights=busy, minlength=hours)[:hours]
    counts = np.bincount(hour, minlength=hours)[:hours]
    return [round(float(v), 4) for v in np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
            / total]


def _work_flows(result: SimResult) -> list[dict[str, Any]]:
    """Accelerator-hours served within the horizon, by (jobs' home region, site that ran
    them): where the demand of each region went."""
    sc = result.scenario
    homes = {t.id: t.home_region for t in sc.workload.tenants}
    flows: dict[tuple[str, str], float] = {}
    for run in result.runs:
        lo, hi = max(run.start_s, sc.start_s), min(run.end_s, sc.end_s)
        if hi <= lo:
            continue
        job = result.jobs[run.job].job
        home = job.home_region or homes.get(job.tenant) or "?"
        key = (home, str(run.site))
        flows[key] = flows.get(key, 0.0) + run.accelerators * (hi - lo) / 3600.0
    return [{"from_region": a, "to": b, "acc_h": round(v, 1)}
            for (a, b), v in sorted(flows.items())]


def summarize(result: SimResult) -> dict[str, Any]:
    """Every figure of one policy's run."""
    sc = result.scenario
    c = result.counters
    states = {"finished": 0, "running": 0, "waiting": 0, "future": 0}
    waits, deadline_jobs, deadline_missed = [], 0, 0
    for st in result.jobs.values():
        states[st.state] += 1
        if st.state == "future":
            continue
        waits.append(st.wait_s / 3600.0)
        if st.job.deadline is not None and st.job.deadline <= sc.end_s:
            deadline_jobs += 1
            done = st.finished_at
            if done is None or done > st.job.deadline + 1e-6:
                deadline_missed += 1
    wait = np.array(waits)
    busy_h, energy, rental, demand_h, floor = _in_horizon(result)
    served_h = float(busy_h.sum())
    util_site = {s.id: round(float(busy_h[i] / (result.capacity[i] * sc.duration_h)), 4)
                 if result.capacity[i] else 0.0 for i, s in enumerate(sc.sites)}
    sides = [s.labels.get("side", "east") for s in sc.sites]
    util_side: dict[str, float] = {}
    series_side: dict[str, list[float]] = {}
    for side in SIDES:
        mask = np.array([x == side for x in sides])
        cap = result.capacity[mask]
        util_side[side] = (round(float(busy_h[mask].sum() / (cap.sum() * sc.duration_h)), 4)
                           if cap.sum() else 0.0)
        series_side[side] = _hourly(result, result.busy[:, mask], cap)
    series_site = {s.id: _hourly(result, result.busy[:, i:i + 1], result.capacity[i:i + 1])
                   for i, s in enumerate(sc.sites)}
    solve = np.array(c.solve_s)
    return {
        "planner": result.planner,
        "jobs": {"total": len(result.jobs), **states},
        "cost_cny": {"energy": round(energy, 2), "rental": round(rental, 2),
                     "total": round(energy + rental, 2),
                     "per_accelerator_hour": round((energy + rental) / served_h, 4)
                     if served_h else 0.0,
                     "per_demand_hour": round((energy + rental) / demand_h, 4)
                     if demand_h else 0.0,
                     "floor": round(floor, 2),
                     "over_floor": round((energy + rental) / floor - 1.0, 4) if floor else 0.0},
        "accelerator_hours_served": round(served_h, 1),
        "demand_hours_served": round(demand_h, 1),
        "utilisation": {"by_side": util_side, "by_site": util_site},
        "utilisation_hourly": {"by_side": series_side, "by_site": series_site},
        "wait_h": {"p50": round(_pct(wait, 50), 4), "p95": round(_pct(wait, 95), 4),
                   "p99": round(_pct(wait, 99), 4), "mean": round(float(wait.mean()), 4)
                   if wait.size else 0.0},
        "deadline": {"jobs": deadline_jobs, "missed": deadline_missed},
        "latency_slo_misses": c.slo_misses,
        "residency_violations": c.residency_violations,
        "capacity_overruns": c.capacity_overruns,
        "power_cap_excess_starts": c.power_cap_excess,
        "data_moved_gb": {"total": round(c.moved_gb, 1),
                          "cross_region": round(c.moved_cross_region_gb, 1)},
        "flows_gb": [{"from": a, "to": b, "gb": round(gb, 1)}
                     for (a, b), gb in sorted(c.flows_gb.items())],
        "work_flows_acc_h": _work_flows(result),
        "outages": {"requeued": c.requeued_after_outage, "replaced": c.replaced_after_outage},
        "solver_s_per_cycle": {
            "cycles": c.cycles, "mean": round(float(solve.mean()), 5) if solve.size else 0.0,
            "p95": round(_pct(solve, 95), 5), "max": round(float(solve.max()), 5)
            if solve.size else 0.0, "total": round(float(solve.sum()), 3)},
        "wall_s": round(result.wall_s, 2),
        "cpu_s": round(result.cpu_s, 2),
    }


def headline(policies: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per policy: the figures the README table shows."""
    rows = []
    for name, m in policies.items():
        rows.append({
            "policy": name,
            "cost_cny": m["cost_cny"]["total"],
            "cny_per_acc_h": m["cost_cny"]["per_accelerator_hour"],
            "cny_per_demand_h": m["cost_cny"]["per_demand_hour"],
            "over_floor": m["cost_cny"]["over_floor"],
            "util_east": m["utilisation"]["by_side"].get("east", 0.0),
            "util_west": m["utilisation"]["by_side"].get("west", 0.0),
            "wait_p50_h": m["wait_h"]["p50"],
            "wait_p95_h": m["wait_h"]["p95"],
            "wait_p99_h": m["wait_h"]["p99"],
            "finished": m["jobs"]["finished"],
            "waiting": m["jobs"]["waiting"],
            "deadline_missed": m["deadline"]["missed"],
            "slo_misses": m["latency_slo_misses"],
            "residency_violations": m["residency_violations"],
            "moved_tb": round(m["data_moved_gb"]["cross_region"] / 1000.0, 2),
            "solver_s_mean": m["solver_s_per_cycle"]["mean"],
        })
    return rows


def _change(new: float, old: float) -> float | None:
    return round(new / old - 1.0, 4) if old else None


def comparison(policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The optimizer against local-only and against the best heuristic (the baseline other
    than local-only with the lowest cost per demand-hour), as relative changes: the figures
    the issue's targets are stated in. Empty when either side is missing."""
    out: dict[str, Any] = {}
    opt = policies.get("optimizer")
    if opt is None:
        return out

    def figures(m: dict[str, Any]) -> dict[str, float]:
        return {"cost_cny": m["cost_cny"]["total"],
                "cny_per_demand_h": m["cost_cny"]["per_demand_hour"],
                "cny_per_acc_h": m["cost_cny"]["per_accelerator_hour"],
                "wait_p99_h": m["wait_h"]["p99"],
                "util_west": m["utilisation"]["by_side"].get("west", 0.0)}

    mine = figures(opt)
    local = policies.get("local-only")
    if local is not None:
        theirs = figures(local)
        out["vs_local_only"] = {
            **{f"{k}_change": _change(mine[k], theirs[k]) for k in
               ("cost_cny", "cny_per_demand_h", "cny_per_acc_h", "wait_p99_h")},
            "util_west": mine["util_west"], "util_west_local_only": theirs["util_west"]}
    heuristics = {n: figures(m) for n, m in policies.items()
                  if n not in ("optimizer", "local-only")}
    if heuristics:
        best = min(heuristics, key=lambda n: heuristics[n]["cny_per_demand_h"] or math.inf)
        theirs = heuristics[best]
        out["vs_best_heuristic"] = {
            "heuristic": best,
            **{f"{k}_change": _change(mine[k], theirs[k]) for k in
               ("cost_cny", "cny_per_demand_h", "cny_per_acc_h", "wait_p99_h")}}
    return out


def scenario_info(sc: Scenario) -> dict[str, Any]:
    return {
        "name": sc.name, "source": sc.source, "description": sc.description,
        "start_s": sc.start_s, "duration_h": sc.duration_h,
        "planning_period_min": sc.period_s / 60.0, "jobs": len(sc.workload.jobs),
        "sites": [{"id": s.id, "region": s.region, "side": s.labels.get("side", "east"),
                   "lat": s.lat, "lon": s.lon, "accelerators": sum(p.count for p in s.pools)}
                  for s in sc.sites],
    }


def report_from(sc: Scenario, policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report document from per-policy summaries (``summarize``)."""
    if not policies:
        raise ValueError("no results")
    return {
        "scenario": scenario_info(sc),
        "headline": headline(policies),
        "comparison": comparison(policies),
        "policies": policies,
    }


def build_report(results: Sequence[SimResult]) -> dict[str, Any]:
    if not results:
        raise ValueError("no results")
    return report_from(results[0].scenario, {r.planner: summarize(r) for r in results})


# --------------------------------------------------------------------------- tables

# (title, headline key, format): the columns of the README table and of the CLI's table
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("policy", "policy", "s"),
    ("cost CNY", "cost_cny", ",.0f"),
    ("CNY/acc-h", "cny_per_acc_h", ".2f"),
    ("CNY/demand-h", "cny_per_demand_h", ".2f"),
    ("over floor", "over_floor", ".0%"),
    ("util W", "util_west", ".0%"),
    ("util E", "util_east", ".0%"),
    ("wait p50 h", "wait_p50_h", ".2f"),
    ("p95 h", "wait_p95_h", ".2f"),
    ("p99 h", "wait_p99_h", ".2f"),
    ("finished", "finished", ",d"),
    ("waiting", "waiting", ",d"),
    ("deadline miss", "deadline_missed", ",d"),
    ("SLO miss", "slo_misses", ",d"),
    ("residency viol.", "residency_violations", ",d"),
    ("moved TB", "moved_tb", ",.0f"),
    ("solver s/cycle", "solver_s_mean", ".3f"),
)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The headline as formatted cells, one list per policy (``COLUMNS`` order)."""
    return [[format(row[key], fmt) for _, key, fmt in COLUMNS] for row in report["headline"]]


def markdown_table(report: dict[str, Any]) -> str:
    """The headline table in Markdown (what README.md shows)."""
    head = [title for title, _, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(report)]
    return "\n".join(lines) + "\n"


def comparison_lines(report: dict[str, Any]) -> list[str]:
    """The optimizer against local-only and the best heuristic, in words."""
    c = report.get("comparison") or {}
    out = []

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.1%}"

    local = c.get("vs_local_only")
    if local:
        out.append(
            f"optimizer vs local-only: cost per demand-hour {pct(local['cny_per_demand_h_change'])}"
            f", per accelerator-hour {pct(local['cny_per_acc_h_change'])}, total cost "
            f"{pct(local['cost_cny_change'])}; p99 wait {pct(local['wait_p99_h_change'])}; "
            f"western utilisation {local['util_west']:.0%} "
            f"(local-only {local['util_west_local_only']:.0%})")
    best = c.get("vs_best_heuristic")
    if best:
        out.append(
            f"optimizer vs {best['heuristic']} (the cheapest heuristic per demand-hour): cost per "
            f"demand-hour {pct(best['cny_per_demand_h_change'])}, per accelerator-hour "
            f"{pct(best['cny_per_acc_h_change'])}, total cost {pct(best['cost_cny_change'])}; "
            f"p99 wait {pct(best['wait_p99_h_change'])}")
    return out


# --------------------------------------------------------------------------- HTML


def _site_map(ax: Any, sites: dict[str, dict[str, Any]]) -> None:
    for s in sites.values():
        ax.scatter(s["lon"], s["lat"], s=15 + s["accelerators"] / 25, zorder=3,
                   color="tab:red" if s["side"] == "east" else "tab:green")
        ax.annotate(s["id"], (s["lon"], s["lat"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")


def _draw_flows(ax: Any, report: dict[str, Any], m: dict[str, Any]) -> None:
    """Work (home region -> site, blue, width ~ accelerator-hours) and data (replica ->
    site, dashed orange, width ~ GB) at the sites' coordinates."""
    sites = {s["id"]: s for s in report["scenario"]["sites"]}
    members: dict[str, list[dict[str, Any]]] = {}
    for s in sites.values():
        members.setdefault(s.get("region", s["id"]), []).append(s)
    where = {r: (sum(s["lat"] for s in ms) / len(ms), sum(s["lon"] for s in ms) / len(ms))
             for r, ms in members.items()}  # a region sits at the mean of its sites
    work = [f for f in m.get("work_flows_acc_h", [])
            if f["from_region"] in where and f["to"] in sites
            and sites[f["to"]].get("region") != f["from_region"]]
    top = max((f["acc_h"] for f in work), default=1.0) or 1.0
    for f in work:
        lat, lon = where[f["from_region"]]
        to = sites[f["to"]]
        ax.annotate("", xy=(to["lon"], to["lat"]), xytext=(lon, lat),
                    arrowprops={"arrowstyle": "->", "lw": 0.3 + 5.0 * f["acc_h"] / top,
                                "alpha": 0.5, "color": "tab:blue"})
    data = m.get("flows_gb", [])
    top_gb = max((f["gb"] for f in data), default=1.0) or 1.0
    for f in data:
        src, dst = sites.get(f["from"]), sites.get(f["to"])
        if src is None or dst is None:
            continue
        ax.annotate("", xy=(dst["lon"], dst["lat"]), xytext=(src["lon"], src["lat"]),
                    arrowprops={"arrowstyle": "->", "lw": 0.3 + 2.0 * f["gb"] / top_gb,
                                "alpha": 0.5, "color": "tab:orange", "linestyle": "--"})
    _site_map(ax, sites)
    moved = sum(f["acc_h"] for f in work)
    ax.set_title(f"{m['planner']}: {moved / 1000:,.0f}k acc-h away from home, "
                 f"{m['data_moved_gb']['cross_region'] / 1000:,.0f} TB across regions",
                 fontsize=8)


def _plots(report: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Write the PNG plots; returns (file name, caption) pairs. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []
    policies = report["policies"]
    names = list(policies)
    # 1. utilisation over time per side
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, side in zip(axes, SIDES, strict=True):
        for name, m in policies.items():
            ax.plot(m["utilisation_hourly"]["by_side"].get(side, []), label=name, lw=1.2)
        ax.set_title(f"{side} utilisation")
        ax.set_xlabel("simulated hour")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("busy accelerators / installed")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "utilisation.png", dpi=100)
    plt.close(fig)
    made.append(("utilisation.png", "Utilisation over time, east and west (hourly means)"))
    # 2. cost and p99 wait per policy
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].bar(names, [policies[n]["cost_cny"]["per_demand_hour"] for n in names])
    axes[0].set_title("energy + rental, CNY per demand-hour served")
    axes[1].bar(names, [policies[n]["cost_cny"]["per_accelerator_hour"] for n in names],
                color="tab:gray")
    axes[1].set_title("energy + rental, CNY per accelerator-hour busy")
    axes[2].bar(names, [policies[n]["wait_h"]["p99"] for n in names], color="tab:orange")
    axes[2].set_title("queue wait p99 (hours)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=20, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "cost_wait.png", dpi=100)
    plt.close(fig)
    made.append(("cost_wait.png", "Cost and p99 queue wait per policy"))
    # 3. flows between sites at their coordinates, one panel per policy
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes_grid = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    flat_axes = [ax for row in axes_grid for ax in row]
    for ax, name in zip(flat_axes, names, strict=False):
        _draw_flows(ax, report, policies[name])
    for ax in flat_axes[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "flows.png", dpi=90)
    plt.close(fig)
    made.append(("flows.png", "Where the work went: accelerator-hours from each home region to "
                 "the sites that ran them (blue), datasets moved (dashed orange)"))
    # 4. one overview for the README: western utilisation, the cost/wait trade-off, flows
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, m in policies.items():
        axes[0].plot(m["utilisation_hourly"]["by_side"].get("west", []), label=name, lw=1.0)
    axes[0].set_ylim(0, 1.0)
    axes[0].set_title("western utilisation (hourly)", fontsize=9)
    axes[0].set_xlabel("simulated hour")
    axes[0].legend(fontsize=7)
    for name, m in policies.items():
        over = 100.0 * m["cost_cny"]["over_floor"]
        axes[1].scatter(m["wait_h"]["p99"], over, s=40)
        axes[1].annotate(name, (m["wait_h"]["p99"], over),
                         fontsize=7, xytext=(4, 2), textcoords="offset points")
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlabel("queue wait p99 (hours)")
    axes[1].set_ylabel("cost above the runs' floor (%)")
    axes[1].set_title("cost against wait (lower left is better)", fontsize=9)
    if "optimizer" in policies:
        _draw_flows(axes[2], report, policies["optimizer"])
    else:
        axes[2].axis("off")
    fig.tight_layout()
    fig.savefig(out / "overview.png", dpi=72)
    plt.close(fig)
    made.append(("overview.png", "Overview: western utilisation, cost against p99 wait, and "
                 "the optimizer's flows"))
    return made


def write_html(report: dict[str, Any], out: Path) -> bool:
    """Write ``out/report.html`` (and PNG plots when matplotlib is available). Returns whether
    plots were drawn."""
    try:
        plots = _plots(report, out)
    except ImportError:
        plots = []
    table = "<table><tr>" + "".join(
        f"<th>{html.escape(title)}</th>" for title, _, _ in COLUMNS) + "</tr>"
    for cells in table_rows(report):
        table += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    table += "</table>"
    table += "".join(f"<p>{html.escape(line)}</p>" for line in comparison_lines(report))
    sc = report["scenario"]
    images = "".join(f'<figure><img src="{html.escape(f)}" alt="{html.escape(cap)}">'
                     f"<figcaption>{html.escape(cap)}</figcaption></figure>" for f, cap in plots)
    if not plots:
        images = "<p>Plots need matplotlib (pip install matplotlib).</p>"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Isthmus simulation: {html.escape(sc['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style>
</head><body>
<h1>Isthmus simulation: {html.escape(sc['name'])}</h1>
<p>{html.escape(sc['description'])}</p>
<p>{sc['jobs']} jobs over {sc['duration_h']:g} simulated hours, planning every
{sc['planning_period_min']:g} minutes. Every figure is in report.json; definitions in
docs/simulation.md.</p>
{table}
{images}
</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")
    return bool(plots)


__all__ = [
    "COLUMNS",
    "build_report",
    "comparison",
    "comparison_lines",
    "headline",
    "markdown_table",
    "report_from",
    "summarize",
    "table_rows",
    "write_html",
]
