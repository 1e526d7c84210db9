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

SIDES = ("east", "west")


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def _busy_hours(result: SimResult) -> np.ndarray:
    """Accelerator-hours each site was busy within the horizon (exact, from the runs)."""
    sc = result.scenario
    index = {s.id: i for i, s in enumerate(sc.sites)}
    out = np.zeros(len(sc.sites))
    for run in result.runs:
        lo, hi = max(run.start_s, sc.start_s), min(run.end_s, sc.end_s)
        if hi > lo:
            out[index[run.site]] += run.accelerators * (hi - lo) / 3600.0
    return out


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
    energy = sum(r.energy_cny for r in result.runs)
    rental = sum(r.rental_cny for r in result.runs)
    busy_h = _busy_hours(result)
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
                     if served_h else 0.0},
        "accelerator_hours_served": round(served_h, 1),
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
        "outages": {"requeued": c.requeued_after_outage, "replaced": c.replaced_after_outage},
        "solver_s_per_cycle": {
            "cycles": c.cycles, "mean": round(float(solve.mean()), 5) if solve.size else 0.0,
            "p95": round(_pct(solve, 95), 5), "max": round(float(solve.max()), 5)
            if solve.size else 0.0, "total": round(float(solve.sum()), 3)},
        "wall_s": round(result.wall_s, 2),
    }


def headline(policies: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per policy: the figures the README table shows."""
    rows = []
    for name, m in policies.items():
        rows.append({
            "policy": name,
            "cost_cny": m["cost_cny"]["total"],
            "cny_per_acc_h": m["cost_cny"]["per_accelerator_hour"],
            "util_east": m["utilisation"]["by_side"].get("east", 0.0),
            "util_west": m["utilisation"]["by_side"].get("west", 0.0),
            "wait_p50_h": m["wait_h"]["p50"],
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


def build_report(results: Sequence[SimResult]) -> dict[str, Any]:
    if not results:
        raise ValueError("no results")
    sc = results[0].scenario
    policies = {r.planner: summarize(r) for r in results}
    return {
        "scenario": {
            "name": sc.name, "source": sc.source, "description": sc.description,
            "start_s": sc.start_s, "duration_h": sc.duration_h,
            "planning_period_min": sc.period_s / 60.0, "jobs": len(sc.workload.jobs),
            "sites": [{"id": s.id, "side": s.labels.get("side", "east"), "lat": s.lat,
                       "lon": s.lon, "accelerators": sum(p.count for p in s.pools)}
                      for s in sc.sites],
        },
        "headline": headline(policies),
        "policies": policies,
    }


# --------------------------------------------------------------------------- HTML


def _plots(report: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Write the PNG plots; returns (file name, caption) pairs. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []
    policies = report["policies"]
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
    names = list(policies)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].bar(names, [policies[n]["cost_cny"]["per_accelerator_hour"] for n in names])
    axes[0].set_title("energy + rental, CNY per accelerator-hour served")
    axes[1].bar(names, [policies[n]["wait_h"]["p99"] for n in names], color="tab:orange")
    axes[1].set_title("queue wait p99 (hours)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=20, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "cost_wait.png", dpi=100)
    plt.close(fig)
    made.append(("cost_wait.png", "Cost and p99 queue wait per policy"))
    # 3. flows between sites at their coordinates
    sites = {s["id"]: s for s in report["scenario"]["sites"]}
    for name, m in policies.items():
        fig, ax = plt.subplots(figsize=(6, 5))
        top = max((f["gb"] for f in m["flows_gb"]), default=1.0) or 1.0
        for f in m["flows_gb"]:
            a, b = sites.get(f["from"]), sites.get(f["to"])
            if a is None or b is None:
                continue
            ax.annotate("", xy=(b["lon"], b["lat"]), xytext=(a["lon"], a["lat"]),
                        arrowprops={"arrowstyle": "->", "lw": 0.5 + 4.0 * f["gb"] / top,
                                    "alpha": 0.6, "color": "tab:blue"})
        for s in sites.values():
            ax.scatter(s["lon"], s["lat"], s=20 + s["accelerators"] / 20,
                       color="tab:red" if s["side"] == "east" else "tab:green", zorder=3)
            ax.annotate(s["id"], (s["lon"], s["lat"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_title(f"{name}: data moved between sites "
                     f"({m['data_moved_gb']['total'] / 1000:.1f} TB)")
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        fig.tight_layout()
        fname = f"flows-{name}.png"
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        made.append((fname, f"{name}: dataset flows between sites (width ~ GB)"))
    return made


def write_html(report: dict[str, Any], out: Path) -> bool:
    """Write ``out/report.html`` (and PNG plots when matplotlib is available). Returns whether
    plots were drawn."""
    try:
        plots = _plots(report, out)
    except ImportError:
        plots = []
    rows = report["headline"]
    cols = list(rows[0]) if rows else []
    table = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    for row in rows:
        table += "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in cols) + "</tr>"
    table += "</table>"
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


__all__ = ["build_report", "headline", "summarize", "write_html"]
