"""``cdarts-export RUN_DIR|CHECKPOINT --out DIR [--ema] [--force]``: a folder timm loads with ``local-dir:DIR``."""
from __future__ import annotations

import argparse

from cdarts.cli.common import report_user_errors


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cdarts-export", description="Export a retrained network for timm.")
    p.add_argument("source", help="retrain run folder (its best checkpoint), checkpoint folder or weights-only .pt")
    p.add_argument("--out", "--output", dest="out", required=True,
                   help="folder to write model.safetensors, config.json and README.md to (a symlink: to its target)")
    p.add_argument("--ema", action="store_true", help="export the EMA weights instead of the raw ones")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty --out folder")
    return p


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cdarts.models.export import export

    result = export(args.source, args.out, ema=args.ema, force=args.force)
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
