"""Which logs the cost model reads (a benchmark run's, or any gateway log), and its tables from them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from player_sessions_local.cost.measured import Invocation, read_invocations
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
PROFILE_NAME = "work-profile.json"
CHECKED_IN_PROFILE = REPOSITORY_ROOT / "docs" / PROFILE_NAME
"""The work profile of the latest full benchmark, checked in: what the cost command prices on a fresh clone."""
PROFILE_INVOCATIONS_PER_ROUTE = 300
"""Invocations kept per route (evenly spread over the run): the model prices a route by its mean invocation."""


def run_logs(run: Path) -> list[Path]:
    """A benchmark run's logs that measure the service as deployed (the cache-off configuration left out)."""
    logs = [p for p in sorted(run.glob("gateway-*.log")) if p.name not in SKIPPED_LOGS]
    return logs + ([run / BUILDER_WORK_LOG] if (run / BUILDER_WORK_LOG).exists() else [])


def latest_run(results_dir: Path = RESULTS_DIR) -> Path | None:
    """The latest ``make bench`` run: the newest folder holding its work profile (only that benchmark writes
    one; the concurrency bench's folders hold gateway logs of another mix); None when there is none."""
    profiles = [p for p in results_dir.glob(f"*/{PROFILE_NAME}") if any(p.parent.glob("gateway-*.log"))]
    return max(profiles, key=lambda p: p.stat().st_mtime).parent if profiles else None


def write_profile(run: Path, description: dict[str, str]) -> Path:
    """The run's measured work, as a profile the cost command can price without the logs: per route, up to
    PROFILE_INVOCATIONS_PER_ROUTE invocations evenly spread over the run, and the builder's minutes."""
    by_route: dict[str, list[Invocation]] = {}
    for invocation in read_invocations(run_logs(run)):
        by_route.setdefault(invocation.route or "?", []).append(invocation)
    kept = []
    for invocations in by_route.values():
        step = max(1, len(invocations) // PROFILE_INVOCATIONS_PER_ROUTE)
        kept += invocations[::step][:PROFILE_INVOCATIONS_PER_ROUTE]
    records = [{**asdict(i), "metrics": sorted(i.metrics)} for i in kept]
    path = run / PROFILE_NAME
    path.write_text(json.dumps({"run": description, "invocations": records}, indent=1) + "\n")
    return path


def load_profile(path: Path = CHECKED_IN_PROFILE) -> tuple[dict[str, str], list[Invocation]]:
    document = json.loads(path.read_text())
    invocations = [
        Invocation(**{**record, "metrics": set(record["metrics"])}) for record in document["invocations"]
    ]
    return document["run"], invocations


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
    return priced(invocations, f"{len(invocations):,} invocations in {', '.join(p.name for p in logs)}", game)


def priced(invocations: list[Invocation], source: str, game: Game = WORKED_EXAMPLE) -> list[str]:
    prices = load_prices()
    lines = [
        (
            f"Measured: {source}; local Lambda duration x {LAMBDA_DURATION_FACTOR} (1769 MB per vCPU / the "
            "configured memory)"
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
        for module in ("player_sessions_local.build.layer", "infra_cdk.app"):  # what `make synth` runs
            subprocess.run(
                [sys.executable, "-m", module], cwd=REPOSITORY_ROOT, check=True, stdout=subprocess.DEVNULL
            )
    resources = json.loads(path.read_text())["Resources"].values()
    types = [resource["Type"] for resource in resources]
    return {
        "alarms": types.count("AWS::CloudWatch::Alarm"),
        "dashboards": types.count("AWS::CloudWatch::Dashboard"),
        "keys": types.count("AWS::KMS::Key"),
    }
