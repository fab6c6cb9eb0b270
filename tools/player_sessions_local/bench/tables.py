"""The report's tables and its latency plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from player_sessions_local.bench.latency import RouteLatency, route_label
from player_sessions_local.bench.throughput import Throughput
from player_sessions_local.bench.verification import RowCount
from player_sessions_local.cpu_profile import COMPONENTS


def ms_cell(value: float) -> str:
    return f"{value:.1f}"


def ratio_cell(value: float | None) -> str:
    return "no lookups" if value is None else f"{value:.2f}"


def rows_cell(rows: list[int]) -> str:
    return f"{rows[len(rows) // 2]} / {rows[-1]}" if rows else "-"


def latency_table(latencies: Sequence[RouteLatency]) -> list[str]:
    lines = [
        "| route | cache | requests | errors | p50 ms | p90 ms | p99 ms | target p90 | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in latencies:
        lines.append(
            f"| `{r.name}` | {r.cache} | {len(r.latencies_ms)} | {r.errors} | {ms_cell(r.percentile(0.5))} | "
            f"{ms_cell(r.percentile(0.9))} | {ms_cell(r.percentile(0.99))} | {r.target_ms:g} ms | "
            f"{'yes' if r.met else '**no**'} |"
        )
    return lines


def cpu_per_request_table(latencies: Sequence[RouteLatency]) -> list[str]:
    """CPU milliseconds per request of each route, by component, as measured around its timed pass."""
    lines = [
        "| route | cache | " + " | ".join(COMPONENTS) + " | total |",
        "|---|---|" + "---:|" * (len(COMPONENTS) + 1),
    ]
    for r in latencies:
        if r.cpu_ms:
            cells = [r.cpu_ms.get(name, 0.0) for name in COMPONENTS]
            lines.append(
                f"| `{r.name}` | {r.cache} | "
                + " | ".join(f"{cell:.1f}" for cell in cells)
                + f" | {sum(cells):.1f} |"
            )
    return lines


def throughput_table(
    bare: Throughput, paths: Sequence[tuple[Throughput, float, list[RowCount]]]
) -> list[str]:
    lines = [
        "| path | events | seconds | events/s | ratio to bare | target | errors | re-sent | rows lost | rows extra |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {bare.path} | {bare.events:,} | {bare.seconds:.1f} | {bare.events_per_second:,.0f} | 1.00 | | "
            f"{bare.errors} | {bare.retries} | | |"
        ),
    ]
    for path, target, counts in paths:
        ratio = path.events_per_second / bare.events_per_second
        lines.append(
            f"| {path.path} | {path.events:,} | {path.seconds:.1f} | {path.events_per_second:,.0f} | "
            f"{ratio:.2f} | >= {target:.2f} {'yes' if ratio >= target else '**no**'} | {path.errors} | "
            f"{path.retries} | {sum(c.missing for c in counts)} | {sum(c.extra for c in counts)} |"
        )
    return lines


def cpu_rows(paths: Sequence[Throughput]) -> list[str]:
    rows = []
    for path in paths:
        if path.cpu is None:
            continue
        per = path.cpu.per_thousand(path.events)
        rows.append(
            f"| {path.path} | {per['client'] * 1000:,.0f} | {per['cassandra'] * 1000:,.0f} | "
            f"{per['redis'] * 1000:,.0f} | {sum(per.values()) * 1000:,.0f} | "
            f"{path.cpu.others / path.cpu.wall if path.cpu.wall else 0:.2f} |"
        )
    return rows


def plot_latency(latencies: Sequence[RouteLatency], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in latencies if r.latencies_ms]
    labels = [route_label(r) for r in shown]
    figure, axes = plt.subplots(figsize=(12, 0.45 * len(shown) + 1.8))
    positions = list(range(len(shown), 0, -1))
    axes.boxplot(
        [r.latencies_ms for r in shown],
        positions=positions,
        orientation="horizontal",
        whis=(1, 99),
        showfliers=False,
        widths=0.6,
        medianprops={"color": "black"},
    )
    markers = ((0.9, "p90", "D", "tab:blue", 6), (0.99, "p99", "o", "tab:orange", 5))
    for position, result in zip(positions, shown, strict=True):
        first = position == positions[0]
        for fraction, name, marker, color, size in markers:
            axes.plot(
                result.percentile(fraction),
                position,
                marker=marker,
                color=color,
                markersize=size,
                label=name if first else None,
            )
        axes.plot(
            [result.target_ms] * 2,
            [position - 0.4, position + 0.4],
            color="red",
            linewidth=2,
            label="p90 target" if first else None,
        )
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale); box p25-p75, whiskers p1-p99")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
