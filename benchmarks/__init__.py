"""
Benchmarks of vicket-async against what a user would pick instead.

Run them all with ``python -m benchmarks`` (``--quick`` for a run of a few
seconds that only proves they still work), or one with ``python -m
benchmarks NAME``; ``python -m benchmarks NAME --help`` lists its sizes.

A benchmark is a module of this package named in `BENCHMARKS`. It defines
``DESCRIPTION`` (one line), ``add_arguments(parser)`` for its own options
and ``run(args) -> Report``; the runner adds ``--quick`` and ``--json``,
prints the machine, the report's table and verdicts, and writes the report
as JSON to ``benchmarks/results/NAME.json``. The peer libraries (pydantic,
msgspec, httpx) are only needed here: they are in the ``bench`` extra.
"""

__all__ = ["BENCHMARKS"]

#: The benchmark modules, in the order a full run takes them; adding a
#: benchmark means adding its module and its name here.
BENCHMARKS = (
    "decode",
    "throughput",
    "upload",
    "ratelimit",
    "budget_check",
    "shared_budget",
    "support_page",
    "bulk_import",
)
