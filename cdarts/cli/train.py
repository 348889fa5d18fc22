"""``cdarts-train --config FILE --genotype NAME|PATH [--set key=value ...] [--output DIR] [--resume] [--init PATH]``.

Retrains a genotype from scratch. Works as plain ``cdarts-train``, ``accelerate launch -m cdarts.cli.train`` and
``accelerate launch --no_python cdarts-train``.
"""
from __future__ import annotations

from cdarts.cli.common import CommandParser, report_user_errors
from cdarts.errors import ConfigError


def parser(prog: str = "cdarts-train") -> CommandParser:
    p = CommandParser(prog, "Retrain a discovered genotype from scratch.")
    p.add_argument("--config", help="YAML config (configs/retrain-*.yaml); with --resume, defaults to the run's own")
    p.add_argument("--genotype", help="registered name (CDARTS_CIFAR, ...), genotype.json, search run folder or text; "
                                      "overrides model.genotype")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set epochs=3 (repeatable; YAML-typed)")
    p.add_output("run folder (default runs/retrain-<config-name>-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--init", metavar="MODEL", help="start from these weights (run folder, checkpoint, "
                                                   "local-dir:EXPORT, .safetensors or a weights-only .pt)")
    p.add_progress()
    return p


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-train") -> int:
    args = parser(prog).parse(argv)
    if args.config is None and not args.resume:
        raise ConfigError("--config is required (only --resume can reuse the run folder's config.yaml)")
    from cdarts.retrain import train

    init = args.init
    if init is not None and init.startswith("local-dir:"):
        init = init.removeprefix("local-dir:")
    train(args.config, overrides=args.overrides, genotype=args.genotype, output=args.output, resume=args.resume,
          init=init, progress=args.progress, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
