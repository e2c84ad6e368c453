"""What a load run measured, as numbers, text, JSON and a PNG.

Latency is split the way capacity planning needs it: time queued in the dispatcher
waiting for a free worker (`timing.queued_ms`) and time the worker spent (`service_ms`).

The measurement window is [warm-up, warm-up + duration). Latency, results and errors
are those of requests *sent* in the window, answered whenever (a saturated service must
not look faster because its slowest answers came after the window); the achieved rate
and the per-worker utilisation count what was *answered* in the window.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Synchronous operations that reach an HTTP server, so count in connok/connfail.
FETCH_OPS = frozenset(
    {"http_connect", "http_connect_raw", "http_client_query", "http_client_get",
     "http_client_request"}
)  # fmt: skip


@dataclass
class Sample:
    sent: float  # seconds since the start of the run (the schedule, in open loop)
    received: float
    latency_ms: float
    queued_ms: float
    service_ms: float
    rank: int
    rc: int | None
    error: str | None
    op: str = ""


@dataclass
class LoadResult:
    mode: str  # "open" or "closed"
    offered_rate: float | None
    concurrency: int | None
    duration_s: float
    warmup_s: float
    samples: list[Sample] = field(default_factory=list)
    sent: int = 0
    sent_in_window: int = 0
    unanswered: int = 0
    send_lag_max_ms: float = 0.0  # open loop: how far the sender fell behind its schedule
    backend_before: dict[str, Any] | None = None
    backend_after: dict[str, Any] | None = None
    stats_before: dict[str, Any] | None = None
    stats_after: dict[str, Any] | None = None
    error: str | None = None  # the run could not be made (e.g. no service at the frontend)
    notes: list[str] = field(default_factory=list)  # what is missing from the report, and why


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def _dist(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
    }


def utilisation(samples: list[Sample], duration_s: float) -> dict[str, dict[str, Any]]:
    """Per worker rank: jobs answered and the share of wall time spent serving them."""
    per_worker: dict[int, list[float]] = {}
    for s in samples:
        row = per_worker.setdefault(s.rank, [0, 0.0])
        row[0] += 1
        row[1] += s.service_ms
    wall = max(duration_s, 1e-9)
    return {
        str(rank): {"jobs": int(jobs), "utilisation": round(busy_ms / 1000.0 / wall, 3)}
        for rank, (jobs, busy_ms) in sorted(per_worker.items())
        if rank > 0
    }


def summarize(result: LoadResult) -> dict[str, Any]:
    start, end = result.warmup_s, result.warmup_s + result.duration_s
    duration = max(result.duration_s, 1e-9)
    sent = [s for s in result.samples if start <= s.sent < end]
    answered = [s for s in result.samples if start <= s.received < end]
    out: dict[str, Any] = {
        "mode": result.mode,
        "offered_rate": round(result.offered_rate, 1) if result.offered_rate else None,
        "concurrency": result.concurrency,
        "duration_s": result.duration_s,
        "warmup_s": result.warmup_s,
        "sent": result.sent,
        "sent_rate": round(result.sent_in_window / duration, 1),
        "answered": len(result.samples),
        "unanswered": result.unanswered,
        "achieved_rate": round(len(answered) / duration, 1),
        "send_lag_max_ms": round(result.send_lag_max_ms, 3),
        "latency": {
            "total": _dist([s.latency_ms for s in sent]),
            "queue": _dist([s.queued_ms for s in sent]),
            "service": _dist([s.service_ms for s in sent]),
        },
        "workers": utilisation(answered, duration),
        "rc": {
            str(k): v for k, v in sorted(Counter(s.rc for s in sent if s.rc is not None).items())
        },
        "errors": dict(sorted(Counter(s.error for s in sent if s.error).items())),
        "error": result.error,
        "notes": list(result.notes),
    }
    before, after = result.backend_before, result.backend_after
    if before is not None and after is not None:
        # Minus the one connection our own closing /_stats probe opened.
        out["backend"] = {
            "connections_accepted": after["connections_accepted"]
            - before["connections_accepted"]
            - 1,
            "connections_open": after["connections_open"] - 1,
            "requests": after["requests"] - before["requests"],
        }
    if result.stats_before and result.stats_after:
        keys = ("httpclient:connok", "httpclient:connfail")
        attempts = sum(
            int(result.stats_after.get(k, 0)) - int(result.stats_before.get(k, 0)) for k in keys
        )
        # Counters cover the whole run, warm-up included; a job with rc -1 never tried.
        jobs = sum(
            1 for s in result.samples if s.op in FETCH_OPS and s.rc is not None and s.rc != -1
        )
        out["http_attempts"] = attempts
        out["http_jobs"] = jobs
        out["failovers"] = max(attempts - jobs, 0)
    return out


def format_report(result: LoadResult) -> str:
    if result.error:
        return f"load test not run: {result.error}"
    s = summarize(result)
    lines = []
    if s["mode"] == "open":
        lag = (
            f"   (sender fell behind by up to {s['send_lag_max_ms']:.0f} ms)"
            if s["send_lag_max_ms"] > 50
            else ""
        )
        lines.append(f"offered {s['offered_rate']:.1f}/s   sent {s['sent_rate']:.1f}/s   achieved {s['achieved_rate']:.1f}/s{lag}")  # fmt: skip
    else:
        lines.append(
            f"closed loop, {s['concurrency']} in flight   achieved {s['achieved_rate']:.1f}/s"
        )
    lines.append(f"requests: sent {s['sent']}, answered {s['answered']}, unanswered {s['unanswered']}"
                 f"   (window {s['duration_s']:g} s after {s['warmup_s']:g} s warm-up)")  # fmt: skip
    lines.append(f"{'latency ms':<14}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}")
    for name, label in (("total", "end to end"), ("queue", "queued"), ("service", "service")):
        d = s["latency"][name]
        lines.append(
            f"  {label:<12}{d['p50']:>10.2f}{d['p90']:>10.2f}{d['p99']:>10.2f}{d['max']:>10.2f}"
        )
    if s["workers"]:
        lines.append("workers: " + "   ".join(
            f"#{rank} {w['jobs']} jobs {w['utilisation']:.0%} busy" for rank, w in s["workers"].items()
        ))  # fmt: skip
    if "backend" in s:
        b = s["backend"]
        lines.append(f"backend saw: {b['connections_accepted']} TCP connections accepted "
                     f"({b['connections_open']} still open), {b['requests']} requests")  # fmt: skip
    if "failovers" in s:
        lines.append(
            f"http attempts {s['http_attempts']} for {s['http_jobs']} jobs: failovers {s['failovers']}"
        )
    lines.append("results by rc: " + (", ".join(f"{k}: {v}" for k, v in s["rc"].items()) or "none"))
    if s["errors"]:
        lines.append("errors: " + ", ".join(f"{k}: {v}" for k, v in s["errors"].items()))
    lines.extend(f"note: {n}" for n in s["notes"])
    return "\n".join(lines)


def write_plot(result: LoadResult, path: str, max_points: int = 20000) -> str | None:
    """Latency over time (queue vs service) and per-worker load; an error text, or None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(result)
    step = max(1, len(result.samples) // max_points)  # a readable plot, not 1M dots
    shown = result.samples[::step]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    xs = [p.sent for p in shown]
    ax1.scatter(xs, [p.queued_ms for p in shown], s=3, alpha=0.5, label="queued in dispatcher")
    ax1.scatter(xs, [p.service_ms for p in shown], s=3, alpha=0.5, label="service (worker)")
    ax1.axvline(result.warmup_s, color="grey", linestyle=":", label="end of warm-up")
    ax1.set_xlabel("seconds since start (send time)")
    ax1.set_ylabel("ms")
    ax1.set_title("latency over time")
    ax1.legend(loc="upper left", markerscale=4)
    ranks = list(s["workers"])
    ax2.bar(ranks, [s["workers"][r]["utilisation"] * 100 for r in ranks], color="tab:green")
    ax2.set_ylim(0, 110)
    ax2.set_xlabel("worker rank")
    ax2.set_ylabel("busy %")
    ax2.set_title("per-worker load")
    offered = (
        f"offered {s['offered_rate']}/s, "
        if s["offered_rate"]
        else f"{s['concurrency']} in flight, "
    )
    fig.suptitle(f"{s['mode']} loop: {offered}achieved {s['achieved_rate']}/s")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as err:
        return f"cannot write {path}: {err.strerror or err}"
    finally:
        plt.close(fig)
    return None
