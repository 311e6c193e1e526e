"""Run the benchmarks: ``python -m bench [NAME ...] [--option=value ...]``.

``make bench BENCH=NAME BENCH_ARGS="--option=value"``. Each module
``bench/bench_<name>.py`` exposes ``main() -> dict[str, object]`` returning its
figures (a bench with options takes ``main(options)``, options given as
``--name=value``); results are printed one line per figure and written to
``var/bench/<name>.json``. Figures with a target come as ``"targets"`` entries
(``bench.common.check``) and are printed one line each, with the target and whether
it is met.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run(names: list[str], options: dict[str, str] | None = None) -> int:
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in available():
            print(f"unknown benchmark {name!r}; available: {', '.join(available())}")
            return 2
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== {name}")
        takes_options = bool(inspect.signature(module.main).parameters)
        if options and not takes_options:
            print(f"benchmark {name!r} takes no options (got {', '.join(options)})")
            return 2
        figures = module.main(options or {}) if takes_options else module.main()
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


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Names, and ``--name=value`` options (a bare ``--flag`` is ``"1"``)."""
    names = [a for a in argv if not a.startswith("--")]
    options: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            options[key] = value or "1"
    return names, options


if __name__ == "__main__":
    names, options = parse(sys.argv[1:])
    sys.exit(run(names or available(), options))
