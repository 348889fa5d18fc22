"""Costs in searches and reports: the resource regulariser inside a search, metrics.csv, cdarts-inspect and export."""
from __future__ import annotations

import csv
import json

import pytest
from conftest import ROOT, make_tiny_retrain_config

import cdarts  # noqa: F401 - registers every built-in component
from cdarts.cli import inspect as inspect_cli
from cdarts.config import build, validate_component
from cdarts.costs import latency as latency_module
from cdarts.costs.network import CostNetwork
from cdarts.engine import search
from cdarts.errors import FileError
from cdarts.genotypes import genotype_from_json, load_genotype
from cdarts.stats import count_macs

DEMO_UNCONSTRAINED_MACS = 182_464
"""MACs of the genotype an unconstrained ``configs/demo.yaml`` search ends with, in its evaluation network (C=4, 5
cells, 8 px): the README's "Searching under a budget" table."""


def fake_ms(module, x, warmup, min_time, threads, statistic="median") -> float:
    return 0.001 * (1 + x.numel() % 89) + 1e-5 * sum(p.numel() for p in module.parameters())


def profiled(spec: dict, num_classes: int, shape: tuple[int, ...], path, monkeypatch) -> str:
    """A latency table (deterministic fake timings) of the space ``spec`` at ``shape``."""
    monkeypatch.setattr(latency_module, "time_ms", fake_ms)
    spec = validate_component("spaces", spec)
    space = build("spaces", spec, num_classes, shape[0])
    latency_module.profile(CostNetwork(space, shape), path, space_config=spec)
    return str(path)


@pytest.fixture(scope="module")
def searches(tmp_path_factory, tiny_config):
    """The tiny search without and with a hinge MAC target above any architecture of its space (1G)."""
    out = tmp_path_factory.mktemp("searches")
    plain = search(tiny_config(), output=out / "plain")
    hinged = search(tiny_config(strategy={"resource": {"type": "resource", "target": "1G", "form": "hinge",
                                                       "weight": 10.0}}), output=out / "hinge")
    return plain, hinged


def test_hinge_above_every_cost_changes_nothing(searches):
    plain, hinged = searches
    for a, b in zip(plain.history, hinged.history, strict=True):
        assert a["alpha"] == b["alpha"] and a["genotype"] == b["genotype"]
        assert a["metrics"]["e_test_acc"] == b["metrics"]["e_test_acc"] or a["metrics"]["phase"] == "pretrain"
    assert plain.genotype == hinged.genotype


def test_metrics_log_the_expected_and_the_exact_cost(searches, tiny_config):
    _, hinged = searches
    rows = list(csv.DictReader((hinged.run_dir / "metrics.csv").open()))
    assert {"macs_expected", "macs_genotype", "macs_target", "joint_resource"} <= set(rows[0]) | set(rows[-1])
    cfg = tiny_config()
    space = build("spaces", cfg["space"], 10, 3)
    for row, entry in zip(rows, hinged.history, strict=True):
        genotype = genotype_from_json(entry["genotype"])
        assert float(row["macs_genotype"]) == count_macs(space.discrete(genotype), (3, 8, 8))
        assert float(row["macs_target"]) == 1e9 and float(row["macs_expected"]) > float(row["macs_genotype"]) / 2
    assert float(rows[-1]["joint_resource"]) == 0.0


def test_budget_discretizer_in_a_search_stays_under_budget(tiny_config, tmp_path):
    space = build("spaces", tiny_config()["space"], 10, 3)
    table = build("costs", "macs", space, (3, 8, 8))
    budget = 1.1 * table.fixed  # pools cost no MACs: a genotype of pools costs the fixed part alone
    result = search(tiny_config(discretizer={"type": "topk", "budget": budget},
                                strategy={"type": "darts", "epochs": 2, "pretrain_epochs": 0}), output=tmp_path / "r")
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    assert all(float(row["macs_genotype"]) <= budget and float(row["macs_budget"]) == budget for row in rows)
    assert count_macs(space.discrete(result.genotype), (3, 8, 8)) <= budget
    assert float(rows[-1]["budget_changes"]) > 0


def test_inspect_predicts_latency_from_a_table(tmp_path, monkeypatch):
    spec = {"type": "darts", "channels": 2, "layers": 3, "eval_layers": 3}
    table = profiled(spec, 10, (3, 8, 8), tmp_path / "t.json", monkeypatch)
    report = inspect_cli.inspect_genotype("DARTS_V2", channels=2, layers=3, input_size=8, num_classes=10,
                                          latency=table)
    space = build("spaces", spec, 10, 3)
    cost = build("costs", {"type": "latency", "table": table}, space, (3, 8, 8))
    assert report["latency_ms"] == pytest.approx(cost.genotype_cost(load_genotype("DARTS_V2")), rel=1e-12)
    assert report["latency_device"]["batch_size"] == 1 and report["latency_device"]["type"] == "cpu"
    assert f"latency       {report['latency_ms']:.3f} ms on " in inspect_cli.format_report(report)
    with pytest.raises(FileError, match=r"profiled for another network \(channels, fingerprint differ\)"):
        inspect_cli.inspect_genotype("DARTS_V2", channels=4, layers=3, input_size=8, num_classes=10, latency=table)


def test_export_carries_the_costs(tmp_path, monkeypatch):
    from cdarts.models.export import export
    from cdarts.retrain import train

    config = make_tiny_retrain_config(model={"genotype": "DARTS_V2"}, max_steps_per_epoch=2)
    run = train(config, output=tmp_path / "run", progress=False)
    spec = {"type": "darts", "channels": 4, "layers": 3, "eval_layers": 3}
    table = profiled(spec, 10, (1, 8, 8), tmp_path / "t.json", monkeypatch)
    result = export(run.run_dir, tmp_path / "model", latency=table)
    cost = json.loads((tmp_path / "model" / "config.json").read_text())["cdarts"]["cost"]
    space = build("spaces", spec, 10, 1)
    expected = build("costs", {"type": "latency", "table": table}, space, (1, 8, 8)).genotype_cost(
        load_genotype("DARTS_V2"))
    assert cost["macs"] == result.macs and cost["params"] == result.params
    assert cost["latency_ms"] == pytest.approx(expected, rel=1e-12) and cost["latency_device"]["precision"] == "fp32"
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"- latency: {expected:.3f} ms predicted for " in card and "(cpu, " in card
    plain = export(run.run_dir, tmp_path / "plain")
    assert plain.config["cdarts"]["cost"] == {"macs": result.macs, "params": result.params}
    assert "latency" not in (tmp_path / "plain" / "README.md").read_text()


def test_demo_search_with_half_the_macs_ends_within_15_percent_of_the_target(tmp_path):
    """configs/demo.yaml cut to 4 search epochs of 8 steps (about 40 s), with a hinge at 50% of the unconstrained
    genotype's MACs, evaluated at the derived genotype (straight_through); no budget discretizer."""
    target = DEMO_UNCONSTRAINED_MACS // 2
    resource = f"{{type: resource, target: {target}, form: hinge, weight: 2.0, straight_through: true}}"
    result = search(ROOT / "configs" / "demo.yaml", output=tmp_path / "r", overrides=[
        f"strategy.resource={resource}", "strategy.epochs=4", "strategy.eval_epochs=1", "max_steps_per_epoch=8",
        "plots=false", "eval_bn_batches=2"])
    space = build("spaces", {"type": "darts", "channels": 4, "layers": 3, "eval_layers": 5}, 10, 3)
    macs = count_macs(space.discrete(result.genotype), (3, 8, 8))
    first = float(result.history[0]["metrics"]["macs_genotype"])
    assert first > 2 * target and abs(macs / target - 1) <= 0.15
