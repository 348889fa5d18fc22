"""``cdarts-search --config FILE [--set key=value ...] [--output DIR] [--resume]``.

Works as plain ``cdarts-search``, ``accelerate launch -m cdarts.cli.search`` and
``accelerate launch --no_python cdarts-search``.
"""
from __future__ import annotations

import argparse

from cdarts.cli.common import report_user_errors


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cdarts-search", description="Run a CDARTS / DARTS architecture search.")
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set strategy.epochs=3 (repeatable; YAML-typed)")
    p.add_argument("--output", help="run folder (default runs/<config-name>-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    return p


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cdarts.engine import search

    search(args.config, overrides=args.overrides, output=args.output, resume=args.resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
