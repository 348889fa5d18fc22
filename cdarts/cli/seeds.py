"""``cdarts-seeds --config FILE --seeds 0,1,2 [--strategies cdarts,darts] [--variant LABEL:KEY=VALUE,...]
[--variants FILE] [--sweep KEY=V1,V2] [--set KEY=VALUE ...] [--output DIR]``.

Runs one independent search per (variant, seed), each in ``OUTPUT/seed-N`` (``OUTPUT/<label>/seed-N`` with
strategies or variants: a strategy is a variant that swaps the strategy); finished seeds are skipped and interrupted
ones resumed, so the command can simply be run again. ``--strategies`` takes weight-sharing strategies and
multi-trial methods alike (``cdarts list strategies``): a multi-trial method queries the config's benchmark with the
run's seed instead of training (an interrupted one starts over: it costs seconds). Then writes ``report.md`` (paper
Table 1 under the benchmark's optimum when the config has a benchmark, Tables 5 and 6), ``report.csv``, ``runs.csv``
and ``curves.png`` (Figures 3 and 6).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cdarts.cli.common import CommandParser, report_user_errors

if TYPE_CHECKING:
    from cdarts.reports.study import PlannedRun


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1,2, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one seed, e.g. 0,1,2")
    return values


def name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser(prog: str = "cdarts-seeds") -> CommandParser:
    p = CommandParser(prog, "Independent searches over several seeds (and strategies or variants), then a report.")
    p.add_argument("--config", required=True, help="YAML search config (see configs/)")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--strategies", type=name_list,
                   help="comma-separated strategies to compare, e.g. cdarts,darts,random,evolution; each other than "
                        "the config's runs at its defaults with the config's epochs; a multi-trial method (random, "
                        "evolution, reinforce, bohb, ...) queries the config's benchmark instead of training "
                        "(default: the config's strategy only)")
    p.add_argument("--variant", dest="variants", action="append", default=[], metavar="LABEL:KEY=VALUE[,KEY=VALUE]",
                   help="a labelled set of overrides run for every seed into OUTPUT/LABEL, one report row each, e.g. "
                        "darts+reg:strategy.type=darts,strategy.reg_weight=5 (repeatable)")
    p.add_argument("--variants", dest="variant_file", metavar="FILE",
                   help="variants from a YAML file, e.g. configs/ablation-table5.yaml (paper Table 5)")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="one variant per value, labelled KEY=VALUE by its last key, e.g. space.eval_layers=3,5,8")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for every run, e.g. --set strategy.epochs=3 (repeatable)")
    p.add_output("study folder (default runs/<config-name>-seeds)")
    p.add_progress()
    return p


def study_optimum(plans: Sequence[PlannedRun]) -> dict[str, float] | None:
    """The best value of each metric of the benchmark every run of the study used (Table 1's "Optimal" row); None
    when the runs had none, or different ones."""
    from cdarts.config import build

    specs = [plan.filled.get("benchmark") for plan in plans]
    if not specs[0] or any(spec != specs[0] for spec in specs):
        return None
    return build("benchmarks", specs[0]).optimum()


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-seeds") -> int:
    args = parser(prog).parse(argv)
    from cdarts.reports.markdown import markdown_report, write_report
    from cdarts.reports.study import plan_study, run_study
    from cdarts.reports.variants import parse_sweep, parse_variant, read_variants, strategy_variants
    from cdarts.runs import FolderLock

    output = Path(args.output or Path("runs") / f"{Path(args.config).stem}-seeds")
    variants = [*(read_variants(args.variant_file) if args.variant_file else []),
                *map(parse_variant, args.variants), *(v for text in args.sweep for v in parse_sweep(text))]
    plans = plan_study(args.config, args.seeds, output, args.strategies, args.overrides, variants)
    rows = [*strategy_variants(args.strategies or []), *variants] if variants else []
    with FolderLock(output):  # one study at a time in the folder; each search also locks its own seed folder
        runs = run_study(plans, (lambda line: None) if args.quiet else print, progress=args.progress,
                         quiet=args.quiet)
        labels = ", ".join(dict.fromkeys(run.label for run in runs))
        title = f"{Path(args.config).stem}: {labels}, {len(args.seeds)} seed{'s' * (len(args.seeds) > 1)}"
        optimum = study_optimum(plans)
        paths = write_report(runs, output, title, rows, optimum)
    print("\n" + markdown_report(runs, title, variants=rows, optimum=optimum).split("\n## Runs")[0].rstrip())
    print("\n" + "\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
