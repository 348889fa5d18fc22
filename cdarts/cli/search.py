"""``cdarts-search --config FILE [--set key=value ...] [--output DIR] [--resume] [--dry-run] [--no-progress|--quiet]``.

Works as plain ``cdarts-search``, ``accelerate launch -m cdarts.cli.search`` and
``accelerate launch --no_python cdarts-search``.
"""
from __future__ import annotations

from cdarts.cli.common import CommandParser, report_user_errors


def parser(prog: str = "cdarts-search") -> CommandParser:
    p = CommandParser(prog, "Run a CDARTS / DARTS architecture search.")
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set strategy.epochs=3 (repeatable; YAML-typed)")
    p.add_output("run folder (default runs/<config-name>-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--dry-run", action="store_true",
                   help="build everything, time one step of each kind and report peak memory; write nothing")
    p.add_progress()
    return p


def dry_run_report(result: dict[str, float]) -> str:
    """The dry run's step times, memory peaks and the whole search's time at those speeds, one per line."""
    from cdarts.timing import estimate_text

    names = {"step_a": "step A (alpha, E, heads)", "step_b": "step B (S's weights)", "e_step": "E step (incl. batch)",
             "select": "select E's genotype"}
    batch = result["batch_size"]
    lines = [f"{label:26s}{1000 * result[key]:10.1f} ms {batch / result[key]:10.1f} img/s"
             for key, label in names.items() if key in result and key != "select"]
    if "select" in result:
        lines.append(f"{names['select']:26s}{1000 * result['select']:10.1f} ms")
    lines.append(f"{'peak memory':26s}{result['peak_bytes'] / 2**20:10.0f} MiB")
    if "peak_above_build_bytes" in result:
        lines.append(f"{'  of which since build':26s}{result['peak_above_build_bytes'] / 2**20:10.0f} MiB")
    epochs, steps = int(result["epochs"]), int(result["steps_per_epoch"])
    lines.append(f"{'whole search':26s}{estimate_text(result['estimate_s'], epochs, steps)}")
    return "\n".join(lines)


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-search") -> int:
    args = parser(prog).parse(argv)
    if args.dry_run:
        from cdarts.engine import dry_run

        print(dry_run_report(dry_run(args.config, overrides=args.overrides)))
        return 0
    from cdarts.engine import search

    search(args.config, overrides=args.overrides, output=args.output, resume=args.resume, progress=args.progress,
           quiet=args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
