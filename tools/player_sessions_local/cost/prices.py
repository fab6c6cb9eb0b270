"""The AWS prices the cost model uses, read from docs/aws-prices.json: each with the page it was read from and
the date. A price nobody could read from AWS is ``None`` and stays visibly unknown in every figure it enters;
nothing here supplies a number of its own."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).resolve().parents[3] / "docs" / "aws-prices.json"

REQUIRED_PRICES = (
    "api_gateway_rest_requests",
    "lambda_requests",
    "lambda_gb_second_arm64",
    "keyspaces_write_request_units",
    "keyspaces_read_request_units",
    "keyspaces_storage_gb_month",
    "keyspaces_pitr_gb_month",
    "elasticache_serverless_valkey_ecpu",
    "elasticache_serverless_valkey_storage_gb_hour",
    "cloudwatch_custom_metrics",
    "cloudwatch_logs_ingested_gb",
)
"""The prices the issue names; each must be in the file, known or not, with its source and date."""

_URL = re.compile(r"^https://\S+$")


class PriceFileError(ValueError):
    """The prices file is malformed: a price without its source or date, or a value that is not a price."""


@dataclass(frozen=True)
class Price:
    key: str
    usd: float | None
    """None: not found on an AWS page (see ``note``)."""
    per: str
    source: str
    read_on: date
    note: str = ""

    @property
    def known(self) -> bool:
        return self.usd is not None


@dataclass(frozen=True)
class PriceList:
    region: str
    prices: dict[str, Price]

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]

    def usd(self, key: str) -> float | None:
        return self.prices[key].usd

    def unknown(self) -> list[str]:
        return sorted(
            key for key, price in self.prices.items() if not price.known and not key.startswith("rule_")
        )


def load_prices(path: Path = PRICES_FILE) -> PriceList:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PriceFileError(f"{path}: {error}") from error
    return parse_prices(document, where=str(path))


def parse_prices(document: dict[str, Any], *, where: str = "prices") -> PriceList:
    entries = document.get("prices")
    if not isinstance(entries, dict):
        raise PriceFileError(f"{where}: no 'prices' object")
    prices = {key: _parse_entry(key, entry, where) for key, entry in entries.items()}
    missing = [key for key in REQUIRED_PRICES if key not in prices]
    if missing:
        raise PriceFileError(
            f"{where}: missing prices {', '.join(missing)} (record them, with usd null if unknown)"
        )
    return PriceList(region=str(document.get("region", "")), prices=prices)


def _parse_entry(key: str, entry: Any, where: str) -> Price:
    if not isinstance(entry, dict):
        raise PriceFileError(f"{where}: {key}: not an object")
    source = entry.get("source")
    if not isinstance(source, str) or not _URL.match(source):
        raise PriceFileError(
            f"{where}: {key}: 'source' must be the https address of the page it was read from"
        )
    read_on = entry.get("read_on")
    try:
        day = date.fromisoformat(read_on) if isinstance(read_on, str) else None
    except ValueError:
        day = None
    if day is None:
        raise PriceFileError(f"{where}: {key}: 'read_on' must be the date it was read (YYYY-MM-DD)")
    usd = entry.get("usd")
    if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float) or usd < 0):
        raise PriceFileError(f"{where}: {key}: 'usd' must be a non-negative number, or null when unknown")
    if usd is not None and not entry.get("quote"):
        raise PriceFileError(f"{where}: {key}: a known price needs the 'quote' it was read from")
    return Price(
        key=key,
        usd=None if usd is None else float(usd),
        per=str(entry.get("per", "")),
        source=source,
        read_on=day,
        note=str(entry.get("note", "")),
    )
