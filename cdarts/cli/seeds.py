"""``cdarts-seeds --config FILE --seeds 0,1,2 [--strategies cdarts,darts] [--set KEY=VALUE ...] [--output DIR]``.

Runs one independent search per (strategy, seed), each in ``OUTPUT/seed-N`` (``OUTPUT/<strategy>/seed-N`` with
``--strategies``); finished seeds are skipped and interrupted ones resumed, so the command can simply be run again.
Then writes ``report.md``, ``report.csv``, ``runs.csv`` (paper Tables 1 and 6) and ``curves.png`` (Figure 3).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cdarts  # noqa: F401 - registers every built-in component
from cdarts.cli.common import report_user_errors


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cdarts-seeds", description="Independent searches over several seeds (and strategies), then a report."
    )
    p.add_argument("--config", required=True, help="YAML search config (see configs/)")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--strategies", type=name_list,
                   help="comma-separated strategies to compare, e.g. cdarts,darts; each other than the config's "
                        "runs at its defaults with the config's epochs (default: the config's strategy only)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for every run, e.g. --set strategy.epochs=3 (repeatable)")
    p.add_argument("--output", help="study folder (default runs/<config-name>-seeds)")
    return p


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cdarts.reports import markdown_report, plan_study, run_study, write_report
    from cdarts.runs import FolderLock

    output = Path(args.output or Path("runs") / f"{Path(args.config).stem}-seeds")
    plans = plan_study(args.config, args.seeds, output, args.strategies, args.overrides)
    with FolderLock(output):  # one study at a time in the folder; each search also locks its own seed folder
        runs = run_study(plans)
        labels = ", ".join(dict.fromkeys(run.label for run in runs))
        title = f"{Path(args.config).stem}: {labels}, {len(args.seeds)} seed{'s' * (len(args.seeds) > 1)}"
        paths = write_report(runs, output, title)
    print("\n" + markdown_report(runs, title).split("\n## Runs")[0].rstrip())
    print("\n" + "\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
