"""The cost model's tables, in Markdown (the benchmark's summary and docs/benchmarks.md take them as they are)."""

from __future__ import annotations

from player_sessions_local.cost.model import Component, MonthlyEstimate, RouteCost
from player_sessions_local.cost.prices import PriceList

ROUTE_COLUMNS = (
    "API Gateway",
    "Lambda requests",
    "Lambda duration",
    "Keyspaces writes",
    "Keyspaces reads",
    "ElastiCache",
    "CloudWatch Logs",
    "X-Ray (5% sampled)",
)


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.1 else f"${value:,.4f}"


def _cell(component: Component | None, requests_scale: float) -> str:
    if component is None:
        return "–"
    if component.usd is None:
        return f"? ({component.quantity / requests_scale:,.2f} {component.unit}/req)"
    return _usd(component.usd)


def route_table(routes: list[RouteCost]) -> list[str]:
    lines = [
        "$ per million requests, by component (known prices; `?` = price unknown, with the quantity per request)",
        "",
        "| route | measured | WRU/req | RRU/req | " + " | ".join(ROUTE_COLUMNS) + " | total |",
        "|---|---:|---:|---:|" + "---:|" * len(ROUTE_COLUMNS) + "---:|",
    ]
    for route in routes:
        by_name = {c.name: c for c in route.components}
        wru = by_name["Keyspaces writes"].quantity / 1e6
        rru = by_name["Keyspaces reads"].quantity / 1e6
        cells = " | ".join(_cell(by_name.get(name), 1e6) for name in ROUTE_COLUMNS)
        unknown = " + ?" if route.unknown else ""
        lines.append(
            f"| `{route.route}` | {route.requests:,} | {wru:.1f} | {rru:.1f} | {cells} | "
            f"{_usd(route.known_usd)}{unknown} |"
        )
    return lines


def monthly_table(estimate: MonthlyEstimate, prices: PriceList) -> list[str]:
    game = estimate.game
    lines = [
        (
            f"A month (30 days) of a game: {game.daily_players:,} daily players x {game.sessions_per_player:g} sessions, "
            f"events in batches of 10 ({game.batches_per_month:,.0f} batches), {game.dashboard_polls_per_minute:g} "
            f"dashboard polls/min of each of its routes (starts and session lengths over `hours={game.dashboard_hours}`, "
            f"sessions online), {game.player_lookups_per_minute:g} player "
            "lookups/min; storage at steady state of the retention"
        ),
        "",
        "| component | quantity | $ / month | share |",
        "|---|---:|---:|---:|",
    ]
    total = estimate.known_usd
    ranked = sorted(estimate.components, key=lambda c: -1.0 if c.usd is None else c.usd, reverse=True)
    for c in ranked:
        share = f"{c.usd / total:.0%}" if c.usd is not None and total else "–"
        lines.append(f"| {c.name} | {c.quantity:,.1f} {c.unit} | {_usd(c.usd)} | {share} |")
    unknown = [c.name for c in estimate.components if c.usd is None]
    lines.append(f"| **total (known prices)** | | **{_usd(total)}** | |")
    lines.append("")
    storage_gb = sum(t.gb for t in estimate.storage)
    lines.append(
        f"Steady-state Keyspaces storage: {storage_gb:,.1f} GB ("
        + ", ".join(f"{t.table} {t.gb:,.1f} GB" for t in sorted(estimate.storage, key=lambda t: -t.gb))
        + ")."
    )
    if unknown:
        lines.append(
            "Not in the total, price unknown (docs/aws-prices.json): " + ", ".join(unknown) + "; also not "
            "modelled: VPC interface endpoints, Secrets Manager, VPC flow logs, data transfer."
        )
    lines += [f"- {note}" for note in estimate.notes]
    priced = [(c.name, c.usd) for c in ranked if c.usd is not None]
    if len(priced) >= 3 and total:
        lines.append("Largest: " + ", ".join(f"{name} ({usd / total:.0%})" for name, usd in priced[:3]) + ".")
    lines.append(f"Prices: {prices.region}, read {max(p.read_on for p in prices.prices.values())}.")
    return lines
