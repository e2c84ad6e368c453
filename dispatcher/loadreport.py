"""What a load run measured, as numbers, text, JSON and a PNG.

Latency is split the way capacity planning needs it: time queued in the dispatcher
waiting for a free worker (`timing.queued_ms`) and time the worker spent (`service_ms`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    sent: float  # seconds since the start of the run
    received: float
    latency_ms: float
    queued_ms: float
    service_ms: float
    rank: int
    rc: int | None
    error: str | None


@dataclass
class LoadResult:
    mode: str  # "open" or "closed"
    offered_rate: float | None
    concurrency: int | None
    duration_s: float
    warmup_s: float
    samples: list[Sample] = field(default_factory=list)
    sent: int = 0
    unanswered: int = 0
    backend_before: dict[str, Any] | None = None
    backend_after: dict[str, Any] | None = None
    stats_before: dict[str, Any] | None = None
    stats_after: dict[str, Any] | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def _dist(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3) if values else 0.0,
    }


def summarize(result: LoadResult) -> dict[str, Any]:
    # Measured = answered inside the window: a saturated service cannot look faster than it is.
    end = result.warmup_s + result.duration_s
    measured = [s for s in result.samples if result.warmup_s <= s.received < end]
    duration = max(result.duration_s, 1e-9)
    per_worker: dict[int, dict[str, float]] = {}
    for s in measured:
        row = per_worker.setdefault(s.rank, {"jobs": 0, "busy_ms": 0.0})
        row["jobs"] += 1
        row["busy_ms"] += s.service_ms
    workers = {
        str(rank): {
            "jobs": int(row["jobs"]),
            "utilisation": round(row["busy_ms"] / 1000.0 / duration, 3),
        }
        for rank, row in sorted(per_worker.items())
        if rank > 0
    }
    out: dict[str, Any] = {
        "mode": result.mode,
        "offered_rate": round(result.offered_rate, 1) if result.offered_rate else None,
        "concurrency": result.concurrency,
        "duration_s": result.duration_s,
        "sent": result.sent,
        "answered": len(result.samples),
        "unanswered": result.unanswered,
        "achieved_rate": round(len(measured) / duration, 1),
        "latency": {
            "total": _dist([s.latency_ms for s in measured]),
            "queue": _dist([s.queued_ms for s in measured]),
            "service": _dist([s.service_ms for s in measured]),
        },
        "workers": workers,
        "rc": {
            str(k): v
            for k, v in sorted(Counter(s.rc for s in measured if s.rc is not None).items())
        },
        "errors": dict(Counter(s.error for s in measured if s.error)),
    }
    if result.backend_before is not None and result.backend_after is not None:
        # Minus the one connection our own /_stats probe opened.
        out["backend"] = {
            "connections_accepted": result.backend_after["connections_accepted"]
            - result.backend_before["connections_accepted"]
            - 1,
            "connections_open": result.backend_after["connections_open"] - 1,
            "requests": result.backend_after["requests"] - result.backend_before["requests"],
        }
    if result.stats_before and result.stats_after:
        attempts = sum(
            result.stats_after[k] - result.stats_before[k]
            for k in ("httpclient:connok", "httpclient:connfail")
        )
        sync_jobs = sum(1 for s in result.samples if s.rc is not None)
        out["http_attempts"] = attempts
        out["failovers"] = max(attempts - sync_jobs, 0)
    return out


def format_report(result: LoadResult) -> str:
    s = summarize(result)
    lines = []
    if s["mode"] == "open":
        lines.append(f"offered {s['offered_rate']:.1f}/s   achieved {s['achieved_rate']:.1f}/s   "
                     f"sent {s['sent']}   answered {s['answered']}   unanswered {s['unanswered']}")  # fmt: skip
    else:
        lines.append(f"closed loop, {s['concurrency']} in flight   achieved {s['achieved_rate']:.1f}/s   "
                     f"answered {s['answered']}   unanswered {s['unanswered']}")  # fmt: skip
    lines.append(f"{'latency ms':<14}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}")
    for name in ("total", "queue", "service"):
        d = s["latency"][name]
        lines.append(
            f"  {name:<12}{d['p50']:>10.2f}{d['p90']:>10.2f}{d['p99']:>10.2f}{d['max']:>10.2f}"
        )
    lines.append("workers: " + "   ".join(
        f"#{rank} {w['jobs']} jobs {w['utilisation']:.0%}" for rank, w in s["workers"].items()
    ))  # fmt: skip
    if "backend" in s:
        b = s["backend"]
        lines.append(f"backend: {b['connections_accepted']} TCP connections accepted, "
                     f"{b['connections_open']} open, {b['requests']} requests")  # fmt: skip
    if "failovers" in s:
        lines.append(f"http attempts {s['http_attempts']}, failovers {s['failovers']}")
    lines.append(
        "results by rc (answered in the window): "
        + ", ".join(f"{k}: {v}" for k, v in s["rc"].items())
    )
    if s["errors"]:
        lines.append("errors: " + ", ".join(f"{k}: {v}" for k, v in s["errors"].items()))
    return "\n".join(lines)


def write_plot(result: LoadResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(result)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    xs = [p.sent for p in result.samples]
    ax1.scatter(
        xs, [p.queued_ms for p in result.samples], s=3, alpha=0.5, label="queued in dispatcher"
    )
    ax1.scatter(
        xs, [p.service_ms for p in result.samples], s=3, alpha=0.5, label="service (worker)"
    )
    ax1.axvline(result.warmup_s, color="grey", linestyle=":", label="end of warm-up")
    ax1.set_xlabel("seconds since start")
    ax1.set_ylabel("ms")
    ax1.set_title("latency over time")
    ax1.legend(loc="upper left", markerscale=4)
    ranks = list(s["workers"])
    ax2.bar(ranks, [s["workers"][r]["utilisation"] * 100 for r in ranks], color="tab:green")
    ax2.set_ylim(0, 110)
    ax2.set_xlabel("worker rank")
    ax2.set_ylabel("busy %")
    ax2.set_title("per-worker load")
    fig.suptitle(
        f"{s['mode']} loop: offered {s['offered_rate'] or '-'} /s, achieved {s['achieved_rate']} /s"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
