"""Run the benchmarks: ``python -m bench [NAME ...]`` (``make bench BENCH=NAME``).

Each module ``bench/bench_<name>.py`` exposes ``main() -> dict[str, object]``
returning its figures; results are printed and written to ``var/bench/<name>.json``.
Figures with a target come as ``"targets"`` entries (``bench.common.check``) and are
printed one line each, with the target and whether it is met.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run(names: list[str]) -> int:
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in available():
            print(f"unknown benchmark {name!r}; available: {', '.join(available())}")
            return 2
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== {name}")
        figures = module.main()
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        for key, value in figures.items():
            if key != "targets":
                print(f"  {key}: {value}")
        for target in figures.get("targets", []):
            verdict = "met" if target["met"] else "NOT met"
            print(
                f"  TARGET {target['figure']}: {target['value']} {target['unit']} "
                f"(target {target['target']}): {verdict}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:] or available()))
