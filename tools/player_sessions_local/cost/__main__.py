"""``python -m player_sessions_local.cost``: what the service would cost deployed, from measured work.

    python -m player_sessions_local.cost                       # the latest `make bench` results, else
                                                               # the checked-in profile (docs/work-profile.json)
    python -m player_sessions_local.cost --log serve.log       # what a `make serve` logged
    python -m player_sessions_local.cost --daily-players 1000000 --sessions-per-player 3 \\
        --dashboard-polls-per-minute 60 --player-lookups-per-minute 600
"""

from __future__ import annotations

import argparse
from pathlib import Path

from player_sessions_local.cost.model import Game
from player_sessions_local.cost.runs import (
    CHECKED_IN_PROFILE,
    WORKED_EXAMPLE,
    cost_tables,
    latest_run,
    load_profile,
    priced,
    run_logs,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log",
        type=Path,
        action="append",
        help="a gateway log (repeatable); default: the latest `make bench` run's logs, the cache-off "
        "configuration left out",
    )
    parser.add_argument("--daily-players", type=int, default=WORKED_EXAMPLE.daily_players)
    parser.add_argument("--sessions-per-player", type=float, default=WORKED_EXAMPLE.sessions_per_player)
    parser.add_argument(
        "--dashboard-polls-per-minute", type=float, default=WORKED_EXAMPLE.dashboard_polls_per_minute
    )
    parser.add_argument(
        "--player-lookups-per-minute", type=float, default=WORKED_EXAMPLE.player_lookups_per_minute
    )
    parser.add_argument(
        "--dashboard-hours",
        type=int,
        default=WORKED_EXAMPLE.dashboard_hours,
        help="the window the dashboard polls",
    )
    args = parser.parse_args(argv)
    for value, name in (
        (args.daily_players, "--daily-players"),
        (args.sessions_per_player, "--sessions-per-player"),
        (args.dashboard_polls_per_minute, "--dashboard-polls-per-minute"),
        (args.player_lookups_per_minute, "--player-lookups-per-minute"),
    ):
        if value < 0:
            parser.error(f"{name} must not be negative")
    game = Game(
        args.daily_players,
        args.sessions_per_player,
        args.dashboard_polls_per_minute,
        args.player_lookups_per_minute,
        args.dashboard_hours,
    )
    if args.log:
        print("\n".join(cost_tables(args.log, game)))
        return 0
    run_dir = latest_run()
    if run_dir is not None:
        print(f"Pricing the latest `make bench` run, {run_dir.relative_to(run_dir.parent.parent)}.\n")
        print("\n".join(cost_tables(run_logs(run_dir), game)))
        return 0
    run, invocations = load_profile()
    print(
        f"No benchmark results under bench-results/: pricing the checked-in work profile "
        f"({CHECKED_IN_PROFILE.name}) of run {run['id']} ({run['date']}, {run['events']} events, "
        f"{run['commit']}).\n"
    )
    print("\n".join(priced(invocations, f"{len(invocations):,} invocations of that run's profile", game)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
