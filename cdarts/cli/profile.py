"""``cdarts-profile --config FILE --output TABLE.json``: the latency table of a search config's space on this machine.

Every candidate op is timed at every shape it runs at in the space's discrete network (or at ``--channels``,
``--layers``, ``--input-size``), at ``--batch-size`` and ``--precision`` on ``--device`` with ``--threads`` CPU
threads. An existing TABLE is resumed; one made for another device, setting or network is refused.
``--set strategy.resource.cost.type=latency --set strategy.resource.cost.table=TABLE.json`` then searches under it.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable

from cdarts.cli.common import CommandParser, non_negative, positive, report_user_errors, seconds


def build_parser(prog: str = "cdarts-profile") -> CommandParser:
    p = CommandParser(prog, "Time every candidate op of a space into a latency table (resumable).")
    p.add_argument("--config", required=True, help="search config whose data and space to profile")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_output("the table (JSON); an existing one is resumed", required=True, old="--out")
    p.add_argument("--batch-size", type=positive, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--threads", type=positive, help="CPU threads (default: torch's)")
    p.add_argument("--channels", type=positive, help="network width C (default: the space's)")
    p.add_argument("--layers", type=positive, help="network depth (default: the evaluation network's; "
                   "NAS-Bench-201: cells per stage)")
    p.add_argument("--input-size", type=positive, help="image side in pixels (default: the data's)")
    p.add_argument("--warmup", type=non_negative, default=5, help="untimed calls before timing each op")
    p.add_argument("--min-time", type=seconds, default=0.2, help="seconds of timed calls per op")
    p.add_argument("--statistic", choices=["median", "min"], default="median",
                   help="median of timed blocks, or the fastest single call (steadier on a machine shared with "
                        "other work)")
    return p


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-profile") -> int:
    args = build_parser(prog).parse(argv)
    import torch
    from tqdm.auto import tqdm

    from cdarts.config import build, load_config
    from cdarts.costs.latency import profile
    from cdarts.costs.network import CostNetwork
    from cdarts.engine import search_config
    from cdarts.errors import ConfigError

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: no CUDA device on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, search_config, args.overrides)
    splits = build("datasets", cfg["data"])
    space = build("spaces", cfg["space"], splits.num_classes, splits.in_chans)
    shape = tuple(splits.train[0][0].shape)
    if args.input_size:
        shape = (shape[0], args.input_size, args.input_size)
    network = CostNetwork(space, shape, args.channels, args.layers)

    def bar(items: Iterable, total: int) -> Iterable:
        return tqdm(items, total=total, desc="profile", disable=not sys.stderr.isatty(), leave=False)

    table = profile(network, args.output, batch_size=args.batch_size, device=args.device, precision=args.precision,
                    threads=args.threads, warmup=args.warmup, min_time=args.min_time, statistic=args.statistic,
                    space_config=cfg["space"], progress=bar)
    total = sum(table["entries"].values())
    print(f"{args.output}: {len(table['entries'])} op entries ({total:.3f} ms in all), fixed part "
          f"{table['fixed_ms']:.3f} ms, on {table['device']['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
