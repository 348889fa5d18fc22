"""Measured latency: a look-up table of each candidate op at each shape it runs at, timed on the target device.

``cdarts-profile`` builds the table (``profile``): every distinct op signature of the cost network (see
``cdarts.costs.network``) is timed alone with ``torch.utils.benchmark`` (warm-up runs, then the median of timed
blocks, or their minimum on a machine shared with other work), at the given batch size, precision and CPU threads;
the fixed part is the whole network's time with the cheapest op on every probed edge, less those ops' entries. The
table is a JSON file that records the device, the settings and the network it was made for; it is written after
every entry, atomically, so an interrupted profile resumes where it stopped, and a table for another device, setting
or network is refused.

The ``latency`` cost reads a table: a genotype's latency is the sum of its ops' entries over the cells, plus the fixed
part (ops run one after the other, as on a CPU or a GPU stream).
"""
from __future__ import annotations

import contextlib
import json
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from cdarts.config import build
from cdarts.costs.base import CostTable
from cdarts.costs.network import LAYOUTS, CostNetwork, layout, table_rows
from cdarts.errors import FileError
from cdarts.genotypes import Genotype
from cdarts.io import atomic_write_json
from cdarts.registry import costs

FORMAT = "cdarts-latency-table"
VERSION = 1
Precision = Literal["fp32", "bf16", "fp16"]
Statistic = Literal["median", "min"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_TABLE_BYTES = 16 << 20


def device_description(device: torch.device, threads: int | None = None) -> dict[str, Any]:
    """What a latency depends on besides the network: the processor (or GPU) and, on a CPU, the threads."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {"type": "cuda", "name": props.name, "capability": f"{props.major}.{props.minor}",
                "torch": torch.__version__, "cuda": torch.version.cuda}
    return {"type": device.type, "name": cpu_name(), "threads": threads or torch.get_num_threads(),
            "torch": torch.__version__}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_ms(module: nn.Module, x: torch.Tensor, warmup: int, min_time: float, threads: int,
            statistic: Statistic = "median") -> float:
    """Milliseconds of ``module(x)`` after ``warmup`` untimed calls (``torch.utils.benchmark`` synchronises CUDA):
    the median over timed blocks of at least ``min_time`` seconds in all, or the minimum over single calls (at least
    ten, ``min_time`` seconds in all). Other processes only ever add time, and a call of a few milliseconds often runs
    within one scheduler slice, so on a shared machine the fastest call is the steadier estimate."""
    with _quiet_logger("torch.utils.cpp_extension"):  # it warns about CUDA_HOME when benchmark imports it
        from torch.utils import benchmark

    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        timer = benchmark.Timer(stmt="module(x)", globals={"module": module, "x": x}, num_threads=threads)
        if statistic == "median":
            return timer.blocked_autorange(min_run_time=min_time).median * 1e3
        times, began = [], time.perf_counter()
        while len(times) < 10 or time.perf_counter() - began < min_time:
            times.append(timer.timeit(1).median)
    return min(times) * 1e3


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_table(path: str | Path) -> dict[str, Any]:
    """A latency table file, checked for its format; every problem is a FileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileError(f"no latency table at {path}; make one with cdarts-profile")
    if path.stat().st_size > MAX_TABLE_BYTES:
        raise FileError(f"{path}: {path.stat().st_size} bytes is too large for a latency table")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileError(f"{path}: not a readable latency table ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FileError(f"{path}: not a cdarts latency table (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise FileError(f"{path}: latency table version {data.get('version')!r}; this cdarts reads version {VERSION}")
    entries = data.get("entries")
    if not isinstance(entries, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in entries.values()):
        raise FileError(f"{path}: \"entries\" must map op signatures to non-negative milliseconds")
    return data


def _setting(data: dict[str, Any]) -> str:
    device = data["device"]
    where = device["name"] + (f", {device['threads']} threads" if "threads" in device else "")
    statistic = "" if data.get("statistic", "median") == "median" else f", {data['statistic']} of blocks"
    return f"{device['type']} ({where}), batch {data['batch_size']}, {data['precision']}{statistic}"


def _network_text(network: dict[str, Any]) -> str:
    sizes = ", ".join(f"{k}={v}" for k, v in network.items() if k not in ("primitives", "fingerprint", "input_shape"))
    return f"{sizes}, input {'x'.join(map(str, network['input_shape']))}"


def check_network(data: dict[str, Any], network: dict[str, Any], path: str | Path, hint: str = "") -> None:
    """Refuse a table made for another network (space, sizes, input, classes, primitives or structure)."""
    made = data.get("network", {})
    if made == network:
        return
    differ = [k for k in sorted(set(made) | set(network)) if made.get(k) != network.get(k)]
    raise FileError(f"{path} was profiled for another network ({', '.join(differ)} differ): the table has "
                    f"{_network_text(made)}; this is {_network_text(network)}{hint}")


def profile(
    network: CostNetwork,
    out: str | Path,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    precision: Precision = "fp32",
    threads: int | None = None,
    warmup: int = 5,
    min_time: float = 0.2,
    statistic: Statistic = "median",
    space_config: dict[str, Any] | None = None,
    progress: Callable[[Iterable, int], Iterable] = lambda items, total: items,
) -> dict[str, Any]:
    """Time every op signature of ``network`` into the table at ``out`` (resuming one already there) and return it.

    Raises:
        FileError: ``out`` holds a table for another device, batch size, precision or network.
    """
    device = torch.device(device)
    threads = threads or torch.get_num_threads()
    setting = {"device": device_description(device, threads if device.type == "cpu" else None),
               "batch_size": batch_size, "precision": precision, "statistic": statistic}
    description = network.description()
    out = Path(out)
    data = {"format": FORMAT, "version": VERSION, **setting, "network": description, "space_config": space_config,
            "warmup": warmup, "min_time_s": min_time, "entries": {}, "fixed_ms": None}
    if out.exists():
        old = read_table(out)
        mine = {k: old.get(k) for k in setting}
        if mine != setting:
            raise FileError(f"{out} was profiled on {_setting(old)}; this run is {_setting({**setting})}: give "
                            f"another --out, or delete it to start over")
        check_network(old, description, out, "; give another --out, or delete it to start over")
        data["entries"] = {k: v for k, v in old["entries"].items() if k in network.signatures}
        data["fixed_ms"] = old.get("fixed_ms")
    dtype = DTYPES[precision]
    net = network.network.to(device=device, dtype=dtype).eval()
    todo = [sig for sig in network.signatures if sig not in data["entries"]]
    with torch.random.fork_rng(devices=[]):
        for signature in progress(todo, len(todo)):
            slot = network.signatures[signature]
            x = torch.randn(batch_size, *slot.shape, device=device, dtype=dtype)
            data["entries"][signature] = time_ms(slot.module, x, warmup, min_time, threads, statistic)
            data["entries"] = dict(sorted(data["entries"].items()))
            atomic_write_json(out, data)
        if data["fixed_ms"] is None:
            data["fixed_ms"] = _fixed_ms(network, net, data["entries"], batch_size, device, dtype,
                                         lambda m, x: time_ms(m, x, warmup, min_time, threads, statistic))
    data["entries"] = dict(sorted(data["entries"].items()))
    atomic_write_json(out, data)
    return data


def _fixed_ms(network: CostNetwork, net: nn.Module, entries: dict[str, float], batch_size: int,
              device: torch.device, dtype: torch.dtype, timer: Callable[[nn.Module, torch.Tensor], float]) -> float:
    """The whole network's time with the cheapest op on every probed edge, less those ops' entries (never < 0)."""
    def probe_ms(op: str) -> float:
        return sum(entries[s.signature] for s in network.probe_slots(network.probe_genotypes(op)[0]))

    cheapest = min(network.primitives, key=probe_ms)
    probe = network.probe_genotypes(cheapest)[0]
    net.select(probe)
    x = torch.randn(batch_size, *network.input_shape, device=device, dtype=dtype)
    return max(0.0, timer(net, x) - probe_ms(cheapest))


def latency_table(network: CostNetwork, data: dict[str, Any], path: str | Path) -> CostTable:
    """The ``latency`` cost of ``network`` from a table read from ``path`` (refused when made for another
    network or incomplete)."""
    check_network(data, network.description(), path)
    missing = [sig for sig in network.signatures if sig not in data["entries"]] or (
        ["the fixed part"] if data.get("fixed_ms") is None else [])
    if missing:
        raise FileError(f"{path} is incomplete ({len(missing)} entries missing, e.g. {missing[0]}); run cdarts-profile "
                        f"again with the same arguments to finish it")
    rows = table_rows(network, lambda slot: data["entries"][slot.signature])
    return CostTable("latency", "ms", "time", rows, float(data["fixed_ms"]), network.primitives, network.edges,
                     network.description(), {**data["device"], "batch_size": data["batch_size"],
                                             "precision": data["precision"],
                                             "statistic": data.get("statistic", "median")})


def genotype_latency(
    path: str | Path, genotype: Genotype, channels: int, layers: int, input_shape: tuple[int, ...], num_classes: int,
    **space_options: Any,
) -> tuple[float, dict[str, Any]]:
    """The predicted latency of ``genotype``'s network at these sizes (``layers``: the discrete network's depth;
    NAS-Bench-201: cells per stage; ``space_options`` such as ``stem``) from the table at ``path``, and the table's
    device. The network is the table's space at these sizes, which must be the network the table was made for."""
    data = read_table(path)
    config = dict(data.get("space_config") or {})
    if config.get("type") not in LAYOUTS:
        raise FileError(f"{path} does not record the space it was profiled for; profile it again with cdarts-profile")
    config.update(space_options, channels=channels, **{LAYOUTS[config["type"]].depth[1]: layers})
    space = build("spaces", config, num_classes, input_shape[0])
    cost = latency_table(CostNetwork(space, tuple(input_shape)), data, path)
    return cost.genotype_cost(genotype), cost.device


def device_text(device: dict[str, Any]) -> str:
    """``AMD EPYC (cpu, 1 threads, batch 1, fp32)``: where a latency table was measured."""
    details = [device["type"]] + ([f"{device['threads']} threads"] if "threads" in device else [])
    details += [f"batch {device['batch_size']}", device["precision"]] if "batch_size" in device else []
    details += ["fastest call"] if device.get("statistic") == "min" else []
    return f"{device['name']} ({', '.join(details)})"


@costs.register("latency")
def latency(space: Any, input_shape: tuple[int, ...], *, table: str) -> CostTable:
    """Latency in milliseconds from a table made by ``cdarts-profile`` for this space (the table fixes the network's
    sizes, the batch size and the device); a table for another network is refused."""
    data = read_table(table)
    made = data.get("network", {})
    depth = made.get(layout(space).depth[0])
    network = CostNetwork(space, tuple(made.get("input_shape", input_shape)), made.get("channels"), depth)
    return latency_table(network, data, table)
