"""Costs: exact MACs/params tables, latency tables and cdarts-profile, the resource regulariser, the budget."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cdarts  # noqa: F401 - registers every built-in component
from cdarts.cli import profile as profile_cli
from cdarts.config import build, validate_component
from cdarts.costs import latency as latency_module
from cdarts.costs.base import Amount, parse_target
from cdarts.costs.network import CostNetwork
from cdarts.errors import ConfigError, FileError
from cdarts.registry import costs
from cdarts.stats import count_macs, inference_parameters

SPACES = {
    "darts": ({"type": "darts", "channels": 2, "layers": 3, "eval_layers": 3}, (3, 8, 8)),
    "darts-imagenet-stem": ({"type": "darts", "channels": 4, "layers": 3, "eval_layers": 4, "stem": "imagenet",
                             "nodes": 3}, (3, 32, 32)),
    "nas-bench-201": ({"type": "nas-bench-201", "channels": 4, "cells_per_stage": 1}, (3, 8, 8)),
}


def make_space(name: str):
    spec, shape = SPACES[name]
    return build("spaces", spec, 10, 3), shape


def fake_ms(module, x, warmup, min_time, threads, statistic="median") -> float:
    """A deterministic 'measurement': what the test can predict exactly."""
    return 0.001 * (1 + x.numel() % 97) + 0.01 * sum(p.numel() for p in module.parameters()) / 1000


def write_table(space, shape, path, monkeypatch, **options):
    monkeypatch.setattr(latency_module, "time_ms", fake_ms)
    return latency_module.profile(CostNetwork(space, shape), path, space_config=space.spec, **options)


@pytest.fixture
def spec_space(monkeypatch):
    """make_space, the space remembering its config (the latency table records it)."""

    def make(name):
        space, shape = make_space(name)
        space.spec = validate_component("spaces", SPACES[name][0])
        return space, shape

    return make


def random_genotypes(space, count: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    discretizer = build("discretizers", space.default_discretizer)
    groups = space.supernet().alphas().keys()
    for _ in range(count):
        alphas = {g: 3 * torch.randn(len(space.edges), len(space.primitives), generator=generator) for g in groups}
        yield space.genotype(discretizer(alphas, space.edges, space.primitives))


def measured_latency(space, genotype, shape, table) -> float:
    """The table's sum for ``genotype`` read off its own discrete network: every op module that runs, by shape."""
    net = space.discrete(genotype).eval()
    for module in net.modules():
        if getattr(module, "batch_edges", None) is True:
            module.batch_edges = False
    total = [table["fixed_ms"]]
    for cell in net.cells:
        for key, module in cell.ops.items():
            op = key.split("_", 2)[2]

            def hook(_m, args, out, op=op):
                if op != "none":
                    sig = f"{op}:{'x'.join(map(str, args[0].shape[1:]))}->{'x'.join(map(str, out.shape[1:]))}"
                    total.append(table["entries"][sig])

            module.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    return sum(total)


@pytest.mark.parametrize("cost", ["macs", "params", "latency"])
@pytest.mark.parametrize("name", list(SPACES))
def test_expected_cost_of_one_hot_alpha_is_the_exact_cost(name, cost, spec_space, tmp_path, monkeypatch):
    space, shape = spec_space(name)
    if cost == "latency":
        data = write_table(space, shape, tmp_path / "lat.json", monkeypatch)
        table = build("costs", {"type": "latency", "table": str(tmp_path / "lat.json")}, space, shape)
    else:
        table = build("costs", cost, space, shape)
    assert set(table.rows) == set(space.supernet().alphas())
    for genotype in random_genotypes(space, 4):
        if cost == "macs":
            exact = count_macs(space.discrete(genotype), shape)
        elif cost == "params":
            exact = inference_parameters(space.discrete(genotype))
        else:
            exact = measured_latency(space, genotype, shape, data)
        weights = {g: torch.softmax(a, -1) for g, a in table.one_hot(genotype).items()}
        for keep in (None, 2) if name.startswith("darts") else (None,):
            assert float(table.expected(weights, keep)) == pytest.approx(exact, rel=1e-12, abs=0)
        assert table.genotype_cost(genotype) == pytest.approx(exact, rel=1e-12, abs=0)
        if cost != "latency":
            assert table.genotype_cost(genotype) == exact  # to the unit


def test_inspect_counts_the_network_as_the_costs_do():
    space, shape = make_space("darts")
    genotype = next(random_genotypes(space, 1, seed=3))
    net = space.discrete(genotype)
    assert count_macs(net, shape) == build("costs", "macs", space, shape).genotype_cost(genotype)
    assert all(m.batch_edges for m in net.cells), "count_macs must restore the fast path"


def test_costs_at_other_sizes_match_that_network():
    space, shape = make_space("darts")
    table = build("costs", {"type": "macs", "channels": 3, "layers": 4, "input_size": 12}, space, shape)
    genotype = next(random_genotypes(space, 1))
    assert table.genotype_cost(genotype) == count_macs(space.discrete(genotype, channels=3, layers=4), (3, 12, 12))
    assert table.network["channels"] == 3 and table.network["layers"] == 4


def test_keep_share_counts_k_edges_per_node_of_uniform_alpha():
    space, shape = make_space("darts")
    table = build("costs", "macs", space, shape)
    uniform = {g: torch.full((14, 8), 1 / 8, dtype=torch.float64) for g in table.rows}
    every = float(table.expected(uniform)) - table.fixed
    kept = float(table.expected(uniform, keep=2)) - table.fixed
    # node j has j inputs: node 2 keeps both edges, nodes 3, 4, 5 keep 2 of 3, 4, 5; a kept edge's op is drawn from
    # the 7 ops that are not none
    shares = torch.tensor([1, 1] + [2 / 3] * 3 + [2 / 4] * 4 + [2 / 5] * 5, dtype=torch.float64)
    expected = sum(float(((rows / 7).sum(-1) * shares).sum()) for rows in table.rows.values())
    assert kept == pytest.approx(expected, rel=1e-12) and kept < every


@pytest.mark.parametrize("form", ["hinge", "absolute", "ratio"])
def test_resource_gradients_reach_every_alpha(form):
    space, shape = make_space("darts")
    loss = build("losses", {"type": "resource", "target": 1000, "form": form}, space, shape, 2)
    alphas = {g: torch.randn(14, 8, requires_grad=True) for g in ("normal", "reduce")}
    value = loss({g: torch.softmax(a, -1) for g, a in alphas.items()})
    value.backward()
    assert value.dtype == torch.float32 and value.item() > 0
    for alpha in alphas.values():
        assert torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


def test_straight_through_penalises_the_genotype_with_the_expected_gradient():
    space, shape = make_space("darts")
    loss = build("losses", {"type": "resource", "target": 20000, "form": "absolute", "straight_through": True},
                 space, shape, 2)
    alphas = {g: torch.randn(14, 8, generator=torch.Generator().manual_seed(2), requires_grad=True)
              for g in ("normal", "reduce")}
    genotype = space.genotype(build("discretizers", "topk")(alphas, space.edges, space.primitives))
    weights = loss.hardened({g: torch.softmax(a, -1) for g, a in alphas.items()}, genotype)
    value = loss(weights)
    exact = count_macs(space.discrete(genotype), shape)
    assert value.item() == pytest.approx(abs(exact / 20000 - 1), rel=1e-6)
    value.backward()
    assert all(a.grad.abs().sum() > 0 for a in alphas.values())


def test_hinge_below_target_has_no_gradient():
    space, shape = make_space("nas-bench-201")
    loss = build("losses", {"type": "resource", "target": "1G", "form": "hinge"}, space, shape)
    alpha = torch.randn(6, 5, requires_grad=True)
    value = loss({"cell": torch.softmax(alpha, -1)})
    value.backward()
    assert value.item() == 0 and alpha.grad.abs().sum() == 0


@pytest.mark.parametrize(("text", "amount"), [
    ("600M", Amount(6e8, "count")), ("5.4M", Amount(5.4e6, "count")), ("250K", Amount(2.5e5, "count")),
    ("1.2G", Amount(1.2e9, "count")), ("12ms", Amount(12.0, "time")), ("800us", Amount(0.8, "time")),
    ("0.5 s", Amount(500.0, "time")), (3, Amount(3.0, None)), ("1e3", Amount(1000.0, None)),
])
def test_target_units(text, amount):
    assert parse_target(text) == amount


@pytest.mark.parametrize("bad", ["600X", "-5M", "0", "", "12 parsecs", True, [1]])
def test_bad_target_is_a_config_error_with_its_path(bad):
    with pytest.raises(ConfigError) as info:
        validate_component("losses", {"type": "resource", "target": bad}, "strategy.resource")
    assert str(info.value).startswith(f"strategy.resource.target: invalid target {bad!r}; expected a positive "
                                      "number with an optional unit: 600M")


def test_target_unit_must_fit_the_cost(spec_space, tmp_path, monkeypatch):
    space, shape = spec_space("darts")
    with pytest.raises(ConfigError, match=r"resource target '12ms' is a latency, but the 'macs' cost is measured in "
                                          r"MACs \(give e.g. 600M\)"):
        build("losses", {"type": "resource", "target": "12ms"}, space, shape)
    write_table(space, shape, tmp_path / "lat.json", monkeypatch)
    with pytest.raises(ConfigError, match="is a count, but the 'latency' cost is measured in ms"):
        build("losses", {"type": "resource", "target": "5M", "cost": {"type": "latency", "table": str(
            tmp_path / "lat.json")}}, space, shape)
    with pytest.raises(ConfigError, match="'target' is required"):
        build("losses", {"type": "resource"}, space, shape)


def test_costs_registry_lists_the_builtins():
    assert {"macs", "params", "latency"} <= set(costs.names())
    assert costs.entry_point_group == "cdarts_costs"


# --- the budget --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def budget_setup():
    space, shape = make_space("darts")
    bound = build("discretizers", {"type": "topk", "budget": "1G"}).bind(space, shape)
    return space, bound, bound.table


def cheapest(table, k: int = 2) -> float:
    """The least a top-k genotype can cost: per node the k rows whose cheapest non-none op is cheapest."""
    total = table.fixed
    allowed = [i for i, p in enumerate(table.primitives) if p != "none"]
    for rows in table.rows.values():
        for node in sorted({n for _, n in table.edges}):
            best = sorted(float(rows[r, allowed].min()) for r, (_, n) in enumerate(table.edges) if n == node)
            total += sum(best[:k])
    return total


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), fraction=st.floats(0, 1.2))
def test_budget_never_returns_a_genotype_over_it(budget_setup, seed, fraction):
    space, bound, table = budget_setup
    generator = torch.Generator().manual_seed(seed)
    alphas = {g: 2 * torch.randn(14, 8, generator=generator) for g in table.rows}
    free = build("discretizers", "topk")(alphas, space.edges, space.primitives)
    unconstrained = table.choice_cost(free)
    low = cheapest(table)
    limit = low + fraction * (unconstrained - low)
    discretizer = replace(bound, limit=limit)
    fit = discretizer.explain(alphas, space.edges, space.primitives)
    genotype = space.genotype(fit.nodes)
    assert fit.cost == table.genotype_cost(genotype) <= limit
    assert fit.unconstrained == unconstrained
    assert (fit.changes == []) == (unconstrained <= limit)
    assert fit.nodes == discretizer(alphas, space.edges, space.primitives)
    assert all(len(node) == 2 and len({s for _, s in node}) == 2 for cell in fit.nodes.values() for node in cell)
    assert all(op != "none" for cell in fit.nodes.values() for node in cell for op, _ in node)


def test_budget_says_what_it_changed_and_checks_the_exact_count(budget_setup):
    space, bound, table = budget_setup
    alphas = {g: torch.randn(14, 8, generator=torch.Generator().manual_seed(1)) for g in table.rows}
    limit = (cheapest(table) + table.choice_cost(build("discretizers", "topk")(alphas, space.edges,
                                                                                 space.primitives))) / 2
    fit = replace(bound, limit=limit).explain(alphas, space.edges, space.primitives)
    assert fit.changes and all(" node " in c and " -> " in c and "MACs, weight " in c for c in fit.changes)
    assert count_macs(space.discrete(space.genotype(fit.nodes)), SPACES["darts"][1]) == fit.cost <= limit


def test_budget_below_the_cheapest_genotype_is_refused(budget_setup):
    space, bound, table = budget_setup
    discretizer = replace(bound, limit=cheapest(table) - 1)
    alphas = {g: torch.zeros(14, 8) for g in table.rows}
    with pytest.raises(ConfigError, match=r"^budget .* MACs is below the cheapest genotype this discretizer can "
                                          r"return \(.* MACs\)$"):
        discretizer(alphas, space.edges, space.primitives)


def test_argmax_budget_changes_ops_only():
    space, shape = make_space("nas-bench-201")
    table = build("costs", "macs", space, shape)
    alphas = {"cell": torch.randn(6, 5, generator=torch.Generator().manual_seed(0))}
    limit = table.fixed + 1
    fit = build("discretizers", {"type": "argmax", "budget": limit}).bind(space, shape).explain(
        alphas, space.edges, space.primitives)
    genotype = space.genotype(fit.nodes)
    assert count_macs(space.discrete(genotype), shape) == fit.cost <= limit
    assert [[s for _, s in node] for node in fit.nodes["cell"]] == [[0], [0, 1], [0, 1, 2]]


# --- latency tables and cdarts-profile ---------------------------------------------------------------------------


def test_profile_is_deterministic_in_shape_and_resumes(spec_space, tmp_path, monkeypatch):
    space, shape = spec_space("darts")
    first = write_table(space, shape, tmp_path / "a.json", monkeypatch)
    network = CostNetwork(space, shape)
    assert list(first["entries"]) == sorted(network.signatures) and first["fixed_ms"] >= 0
    assert list(first) == ["format", "version", "device", "batch_size", "precision", "statistic", "network",
                           "space_config",
                           "warmup", "min_time_s", "entries", "fixed_ms"]
    data = json.loads((tmp_path / "a.json").read_text())
    del data["entries"][next(iter(data["entries"]))]
    data["fixed_ms"] = None
    (tmp_path / "a.json").write_text(json.dumps(data))
    timed = []
    monkeypatch.setattr(latency_module, "time_ms", lambda *args: timed.append(args) or 1.0)
    second = latency_module.profile(network, tmp_path / "a.json", space_config=space.spec)
    assert len(timed) == 2  # the missing entry and the whole network for the fixed part
    assert list(second["entries"]) == list(first["entries"])


def test_profile_refuses_a_table_for_another_setting_or_network(spec_space, tmp_path, monkeypatch):
    space, shape = spec_space("darts")
    write_table(space, shape, tmp_path / "t.json", monkeypatch)
    with pytest.raises(FileError, match=r"t.json was profiled on cpu \(.*\), batch 1, fp32; this run is cpu "
                                        r"\(.*\), batch 4, fp32: give another --out, or delete it"):
        write_table(space, shape, tmp_path / "t.json", monkeypatch, batch_size=4)
    wider, _ = spec_space("darts")
    with pytest.raises(FileError, match=r"profiled for another network \(channels, fingerprint differ\): the table "
                                        r"has space=darts, channels=2, .*; this is space=darts, channels=3"):
        latency_module.profile(CostNetwork(wider, shape, channels=3), tmp_path / "t.json")
    other = build("spaces", {**SPACES["darts"][0], "stem_multiplier": 2}, 10, 3)
    with pytest.raises(FileError, match=r"\(fingerprint differ\)"):
        build("costs", {"type": "latency", "table": str(tmp_path / "t.json")}, other, shape)
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(FileError, match="not a cdarts latency table"):
        build("costs", {"type": "latency", "table": str(tmp_path / "junk.json")}, space, shape)


def test_profile_cli_times_every_op_and_refuses_another_batch(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("data: {type: digits, image_size: 8, channels: 3}\nspace: {type: darts, channels: 2, layers: 3, "
                      "eval_layers: 3, primitives: [none, max_pool_3x3, skip_connect, sep_conv_3x3]}\n")
    out = tmp_path / "table.json"
    args = ["--config", str(config), "--output", str(out), "--threads", "1", "--warmup", "1", "--min-time", "0.01"]
    assert profile_cli.main(args) == 0
    table = json.loads(out.read_text())
    space = build("spaces", table["space_config"], 10, 3)
    assert list(table["entries"]) == sorted(CostNetwork(space, (3, 8, 8)).signatures)
    assert all(v > 0 for v in table["entries"].values()) and table["device"]["threads"] == 1
    assert capsys.readouterr().out.startswith(f"{out}: {len(table['entries'])} op entries")
    with pytest.raises(SystemExit) as info:
        profile_cli.main(args + ["--batch-size", "2"])
    error = capsys.readouterr().err
    assert info.value.code == 2 and "batch 1, fp32; this run is" in error and "batch 2, fp32" in error
