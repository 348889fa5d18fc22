"""``cdarts-analyze``: analyses of finished runs.

``cdarts-analyze correlation RUN_DIR [--benchmark SPEC] [--metric M] [--samples N] [--seed S]``: Kendall tau and
Spearman rho between the run's alpha scores of N sampled NAS-Bench-201 cells and their benchmark values (paper
Figure 5); writes ``correlation.json`` and ``correlation.png``. ``cdarts-analyze synthetic-table OUT.csv`` writes
a made-up benchmark table for demos (not NAS-Bench-201 numbers).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cdarts.cli.common import CommandParser, report_user_errors
from cdarts.config import ConfigError, load_yaml_text, read_yaml, validate_component


def benchmark_spec(text: str | None, run_dir: Path) -> dict[str, Any]:
    """The benchmark component from ``--benchmark`` (a name, inline YAML like ``{type: table, path: t.csv}``, or a
    YAML file holding the spec or a search config with a ``benchmark`` key), else from the run's ``config.yaml``."""
    if text is None:
        saved = run_dir / "config.yaml"
        spec = read_yaml(saved).get("benchmark") if saved.is_file() else None
        if not spec:
            raise ConfigError(f"{run_dir} was searched without a benchmark; give one with --benchmark, e.g. "
                              "--benchmark '{type: table, path: nb201.csv}' or --benchmark nats-bench")
    elif text.endswith((".yaml", ".yml")):
        data = read_yaml(text)
        spec = data.get("benchmark", data)
        if not spec:
            raise ConfigError(f"{text} has an empty 'benchmark'")
    else:
        spec = load_yaml_text(text)
    return validate_component("benchmarks", spec, "--benchmark")


def parser(prog: str = "cdarts-analyze") -> CommandParser:
    p = CommandParser(prog, "Analyses of finished search runs.")
    commands = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=argparse.ArgumentParser)
    corr = commands.add_parser("correlation", help="rank correlation of alpha scores with benchmark accuracy")
    corr.add_argument("run_dir", type=Path, help="a NAS-Bench-201 search run folder")
    corr.add_argument("--benchmark", help="benchmark spec: a name, inline YAML or a YAML file (default: the run's)")
    corr.add_argument("--metric", help="benchmark metric to correlate with (default: the benchmark's first)")
    corr.add_argument("--samples", type=int, default=100, help="cells to sample from the space (default 100)")
    corr.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    corr.add_argument("--epoch", type=int, help="use this epoch's alpha (from 1; default: the last)")
    corr.add_argument("--output", type=Path, metavar="DIR", help="folder for correlation.json/.png (default: RUN_DIR)")
    table = commands.add_parser("synthetic-table", help="write a made-up benchmark table of all 15,625 cells (demo)")
    table.add_argument("out", type=Path, help="CSV file to write (columns arch, valid_acc, test_acc, train_time_s, "
                                              "valid_acc@1 ... valid_acc@12)")
    return p


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-analyze") -> int:
    args = parser(prog).parse(argv)
    if args.command == "synthetic-table":
        from cdarts.synthetic import synthetic_table

        print(f"wrote {synthetic_table(args.out)}: synthetic numbers for demos and tests, not NAS-Bench-201 results")
        return 0
    from cdarts.config import build
    from cdarts.reports.correlation import correlation, write_correlation

    if not args.run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(args.run_dir)!r} does not exist")
    benchmark = build("benchmarks", benchmark_spec(args.benchmark, args.run_dir))
    result = correlation(args.run_dir, benchmark, args.metric, args.samples, args.seed, args.epoch)
    paths = write_correlation(result, args.output or args.run_dir)

    def show(x: float | None, digits: int = 3) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}" if digits else f"{x:.2g}"

    print(f"{result['found']} of {result['samples']} sampled cells, {result['metric']} against the alpha score of "
          f"epoch {result['epoch']}:")
    print(f"  Kendall tau  {show(result['kendall_tau'])}  (p {show(result['kendall_p'], 0)})")
    print(f"  Spearman rho {show(result['spearman_rho'])}  (p {show(result['spearman_p'], 0)})")
    if result["kendall_tau"] is None:
        print("  (undefined: the scores or the values are all equal)")
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
