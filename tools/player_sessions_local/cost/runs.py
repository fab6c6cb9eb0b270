"""Which logs the cost model reads (a benchmark run's, or any gateway log), and its tables from them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from player_sessions_local.cost.measured import read_invocations
from player_sessions_local.cost.model import LAMBDA_DURATION_FACTOR, Game, monthly, per_route
from player_sessions_local.cost.prices import load_prices
from player_sessions_local.cost.report import monthly_table, route_table

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
RESULTS_DIR = REPOSITORY_ROOT / "bench-results"
TEMPLATE = REPOSITORY_ROOT / "cdk.out" / "PlayerSessions.template.json"
BUILDER_WORK_LOG = "builder-work.log"
"""The benchmark's rollup builder (a thread of the benchmark) writes its minutes' work here."""
SKIPPED_LOGS = ("gateway-uncached.log",)
"""The benchmark's cache-off configuration: measured for comparison, not how the service is deployed."""


def run_logs(run: Path) -> list[Path]:
    """A benchmark run's logs that measure the service as deployed (the cache-off configuration left out)."""
    logs = [p for p in sorted(run.glob("gateway-*.log")) if p.name not in SKIPPED_LOGS]
    return logs + ([run / BUILDER_WORK_LOG] if (run / BUILDER_WORK_LOG).exists() else [])


def latest_logs(results_dir: Path = RESULTS_DIR) -> list[Path]:
    runs = sorted(p for p in results_dir.glob("*") if p.is_dir() and any(p.glob("gateway-*.log")))
    if not runs:
        raise SystemExit(
            f"no benchmark results with gateway logs under {results_dir}: run `make bench` first, "
            "or pass --log"
        )
    return run_logs(runs[-1])


WORKED_EXAMPLE = Game(
    daily_players=1_000_000,
    sessions_per_player=3,
    dashboard_polls_per_minute=60,
    player_lookups_per_minute=600,
)
"""docs/benchmarks.md and the README: 1M daily players, 3 sessions each; a dashboard polling every second and
ten player lookups a second."""


def cost_tables(logs: list[Path], game: Game = WORKED_EXAMPLE) -> list[str]:
    invocations = read_invocations(logs)
    if not invocations:
        return [f"No invocation with a REPORT and a 'request work' line in {', '.join(map(str, logs))}."]
    prices = load_prices()
    lines = [
        (
            f"Measured: {len(invocations):,} invocations in {', '.join(p.name for p in logs)}; local Lambda "
            f"duration x {LAMBDA_DURATION_FACTOR} (1769 MB per vCPU / the configured memory)"
        ),
        "",
    ]
    lines += route_table(per_route(invocations, prices))
    lines.append("")
    lines += monthly_table(monthly(invocations, prices, game, **template_counts()), prices)
    return lines


def cost_section(run: Path) -> list[str]:
    """The benchmark's cost tables, from the run's own logs."""
    return cost_tables(run_logs(run))


def template_counts(path: Path = TEMPLATE) -> dict[str, int]:
    """Alarms, dashboards and keys of the synthesized stack (synthesized first if it is not there)."""
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "infra_cdk.app"],
            cwd=REPOSITORY_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    resources = json.loads(path.read_text())["Resources"].values()
    types = [resource["Type"] for resource in resources]
    return {
        "alarms": types.count("AWS::CloudWatch::Alarm"),
        "dashboards": types.count("AWS::CloudWatch::Dashboard"),
        "keys": types.count("AWS::KMS::Key"),
    }
