"""`python -m player_sessions_local.bench`: the phases, in order (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Sequence

from player_sessions_local.bench.options import parse_options
from player_sessions_local.bench.run import BenchRun
from player_sessions_local.no_metrics import disable_service_metrics


def main(argv: Sequence[str] | None = None) -> int:
    disable_service_metrics()  # the builder threads and the loader's workers are no Lambda invocation
    bench = BenchRun.prepare(parse_options(argv))
    try:
        bench.generate_data_set()
        bench.measure_bare_loop()
        bench.measure_loader()
        bench.measure_http_ingest()
        bench.fold_the_load()
        bench.measure_read_latency()
        bench.compare_with_seed_list()
        bench.run_live_scenario()
        bench.run_sustained_bursts()
        bench.measure_ingest_latency()
        bench.measure_capacity()
        bench.measure_privacy()
    finally:
        bench.stop()
    return bench.report()


if __name__ == "__main__":
    raise SystemExit(main())
