"""``cdarts-export --model RUN_DIR|CHECKPOINT --output DIR [--ema] [--force]``: a folder timm loads with
``local-dir:DIR``. The old ``cdarts-export RUN_DIR --out DIR`` still works, with a deprecation warning."""
from __future__ import annotations

import argparse

from cdarts.cli.common import CommandParser, deprecated, report_user_errors


def parser(prog: str = "cdarts-export") -> CommandParser:
    p = CommandParser(prog, "Export a retrained network for timm.")
    p.add_model(required=False, help="the retrained network: a run folder (its best checkpoint), a checkpoint folder "
                                     "or a weights-only .pt")
    p.add_argument("source", nargs="?", help=argparse.SUPPRESS)  # deprecated: the positional form of --model
    p.add_output("folder to write model.safetensors, config.json and README.md to (a symlink: to its target)",
                 required=True, old="--out")
    p.add_argument("--ema", action="store_true", help="export the EMA weights instead of the raw ones")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty --output folder")
    return p


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-export") -> int:
    p = parser(prog)
    args = p.parse(argv)
    if args.source is not None:
        if args.model is not None:
            p.error(f"name the model once: --model {args.model} (drop {args.source!r})")
        deprecated("the positional model argument", f"--model {args.source}")
    model = args.model or args.source
    if model is None:
        p.error("the following arguments are required: --model")
    from cdarts.models.export import export

    result = export(model, args.output, ema=args.ema, force=args.force)
    metrics = result.config["cdarts"]["metrics"]
    prefix = "ema_" if args.ema else ""
    accuracy = ", ".join(f"{split} top-1 {metrics[f'{prefix}{split}_top1']:.2f}%" for split in ("val", "test")
                         if isinstance(metrics.get(f"{prefix}{split}_top1"), (int, float)))
    print(f"exported {result.config['architecture']} ({result.params / 1e6:.3f}M params, {result.macs / 1e6:.2f}M "
          f"MACs{', ' + accuracy if accuracy else ''}) to {result.folder}\n"
          f"load: import cdarts, timm; timm.create_model('local-dir:{result.folder}', pretrained=True)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
