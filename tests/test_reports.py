"""Multi-seed reports (Tables 1 and 6, Figure 3) and the alpha/benchmark correlation (Figure 5), on hand-made runs."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from cdarts.config import ConfigError, build
from cdarts.genotypes import enumerate_nb201, nb201_ops
from cdarts.reports.correlation import alpha_score, correlation, sample_cells, write_correlation
from cdarts.reports.markdown import markdown_report, write_report
from cdarts.reports.records import curve_metrics, curves, load_run, mean_std, read_metrics, summarize
from cdarts.reports.study import differences, plan_study
from cdarts.reports.variants import Variant, parse_sweep, parse_variant, read_variants, strategy_variant

PRIMITIVES = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder, strategy, seed, accs, arch=CONV, alpha=None):
    """A run folder as the engine writes it: config.yaml, genotype.json, metrics.csv (one row per acc), and
    genotypes.jsonl (uniform alpha unless given)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"seed: {seed}\nstrategy: {{type: {strategy}, epochs: {len(accs)}}}\n")
    (folder / "genotype.json").write_text(json.dumps({"space": "nas-bench-201", "arch": arch}))
    lines = ["epoch,phase,s_val_acc,s_test_acc,bench_test_acc,param_free_ops"]
    lines += [f"{e},search,{49 + e},{50 + e},{acc},0" for e, acc in enumerate(accs, 1)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    weights = alpha or [[0.2] * 5 for _ in range(6)]
    entries = [{"epoch": e, "genotype": {"space": "nas-bench-201", "arch": arch}, "primitives": PRIMITIVES,
                "alpha": {"cell": weights}} for e in range(1, len(accs) + 1)]
    (folder / "genotypes.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return load_run(folder)


@pytest.fixture
def runs(tmp_path):
    return [
        fake_run(tmp_path / "cdarts" / "seed-0", "cdarts", 0, [80.0, 90.0]),
        fake_run(tmp_path / "cdarts" / "seed-1", "cdarts", 1, [70.0, 94.0]),
        fake_run(tmp_path / "darts" / "seed-0", "darts", 0, [60.0, 54.3], arch=SKIP),
    ]


def test_mean_std_is_the_population_std_of_finite_values():
    assert mean_std([90.0, 94.0, math.nan]) == (92.0, 2.0)
    assert all(math.isnan(v) for v in mean_std([math.nan]))


def test_load_run_reads_label_seed_genotype_and_numbers(runs):
    run = runs[1]
    assert (run.label, run.seed, run.genotype) == ("cdarts", 1, CONV)
    assert run.rows[1] == {"epoch": 2, "phase": "search", "s_val_acc": 51.0, "s_test_acc": 52.0,
                           "bench_test_acc": 94.0, "param_free_ops": 0.0}


def test_read_metrics_takes_an_empty_cell_a_legacy_nan_and_a_short_row_as_no_value(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,phase,e_val_acc,lambda_reg\n1,pretrain,,\n2,search,nan,5\n3,search\n4,search,91.5,4.75\n")
    rows = read_metrics(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[3] == {"epoch": 4, "phase": "search",
                                                                        "e_val_acc": 91.5, "lambda_reg": 4.75}
    assert math.isnan(rows[0]["e_val_acc"]) and math.isnan(rows[0]["lambda_reg"])  # empty cells
    assert math.isnan(rows[1]["e_val_acc"]) and rows[1]["lambda_reg"] == 5.0  # "nan", as older logs wrote
    assert math.isnan(rows[2]["e_val_acc"]) and math.isnan(rows[2]["lambda_reg"])  # a short row
    assert mean_std([r["e_val_acc"] for r in rows]) == (91.5, 0.0)


def test_load_run_refuses_an_unfinished_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(FileNotFoundError, match="is not a finished run: genotype.json, metrics.csv missing"):
        load_run(tmp_path)


def test_summary_is_mean_and_std_of_final_epochs_per_strategy(runs):
    summary = summarize(runs, ["bench_test_acc", "s_val_acc"])
    assert summary == [
        {"strategy": "cdarts", "runs": 2, "bench_test_acc_mean": 92.0, "bench_test_acc_std": 2.0,
         "s_val_acc_mean": 51.0, "s_val_acc_std": 0.0},
        {"strategy": "darts", "runs": 1, "bench_test_acc_mean": 54.3, "bench_test_acc_std": 0.0,
         "s_val_acc_mean": 51.0, "s_val_acc_std": 0.0},
    ]


def test_markdown_report_has_table1_and_table6_forms(runs):
    text = markdown_report(runs, "study")
    lines = text.splitlines()
    assert lines[0] == "# study"
    assert "| strategy | runs | benchmark test_acc | s_val_acc | s_test_acc |" in lines
    assert "| cdarts | 2 | 92.00 ± 2.00 | 51.00 ± 0.00 | 52.00 ± 0.00 |" in lines
    escaped = CONV.replace("|", "\\|")
    assert f"| cdarts | 1 | 94.00 | 51.00 | 52.00 | `{escaped}` |" in lines
    runs_header = next(line for line in lines if line.startswith("| strategy | seed"))
    run_row = next(line for line in lines if line.startswith("| darts | 0"))
    assert run_row.replace("\\|", "").count("|") == runs_header.count("|"), "the arch string's pipes are escaped"


def test_curves_are_mean_and_std_per_epoch(runs):
    epochs, means, stds = curves(runs, "bench_test_acc")["cdarts"]
    assert (epochs, means, stds) == ([1, 2], [75.0, 92.0], [5.0, 2.0])


def test_write_report_writes_markdown_csvs_and_plot(runs, tmp_path):
    paths = write_report(runs, tmp_path / "report", "study")
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"report.md", "report.csv", "runs.csv", "curves.png"}
    with open(paths["csv"], newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert [(r["strategy"], r["runs"], r["bench_test_acc_mean"], r["bench_test_acc_std"]) for r in summary] == [
        ("cdarts", "2", "92", "2"), ("darts", "1", "54.3", "0")]
    with open(paths["runs"], newline="") as handle:
        per_run = list(csv.DictReader(handle))
    assert [(r["strategy"], r["seed"], r["bench_test_acc"], r["genotype"]) for r in per_run] == [
        ("cdarts", "0", "90", CONV), ("cdarts", "1", "94", CONV), ("darts", "0", "54.3", SKIP)]
    image = paths["plot"].read_bytes()
    assert image.startswith(PNG) and len(image) > 10_000
    assert "![accuracy against search epoch](curves.png)" in paths["markdown"].read_text()


def test_report_without_a_benchmark_says_so(tmp_path):
    run = fake_run(tmp_path / "run", "darts", 0, [1.0])
    (run.run_dir / "metrics.csv").write_text("epoch,phase,s_val_acc,s_test_acc\n0,search,40,41\n")
    text = markdown_report([load_run(run.run_dir)], "plain")
    assert "No benchmark was configured" in text and "| darts | 1 | 40.00 ± 0.00 | 41.00 ± 0.00 |" in text


# --- correlation


def test_alpha_score_sums_log_probabilities_of_the_chosen_ops():
    weights = [[0.1, 0.2, 0.3, 0.4, 0.0]] * 6
    ops = ["nor_conv_3x3", "none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1", "none"]
    expected = 2 * math.log(0.4) + 2 * math.log(0.1) + math.log(0.2) + math.log(0.3)
    assert alpha_score(weights, PRIMITIVES, ops) == pytest.approx(expected)
    assert alpha_score(weights, PRIMITIVES, ["avg_pool_3x3"] * 6) < -1000, "a zero weight is a huge penalty, not -inf"
    with pytest.raises(ValueError, match="op 'conv_7x7' is not among the run's primitives"):
        alpha_score(weights, PRIMITIVES, ["conv_7x7"] * 6)


def test_sample_cells_is_seeded_distinct_and_decodes_like_enumerate():
    cells = sample_cells(PRIMITIVES[:3], 50, seed=3)
    assert cells == sample_cells(PRIMITIVES[:3], 50, seed=3) != sample_cells(PRIMITIVES[:3], 50, seed=4)
    assert len(set(cells)) == 50
    every = [nb201_ops(cell) for cell in enumerate_nb201(PRIMITIVES[:3])]
    assert sorted(sample_cells(PRIMITIVES[:3], 10_000, seed=0)) == sorted(every), "all 729 when asking for more"
    with pytest.raises(ValueError, match="need at least 2 sampled cells"):
        sample_cells(PRIMITIVES, 1, seed=0)


ALPHA = [[w / sum(row) for w in row] for row in ([2 + (7 * edge + 3 * op) % 11 + 0.1 * edge for op in range(5)]
                                                 for edge in range(6))]
"""Generic softmax weights: distinct cells get distinct alpha scores (no ties to blur a perfect correlation)."""


def score_table(path, sign, keep=lambda index: True):
    """A table whose value is ``sign`` times each cell's alpha score under ``ALPHA``: a perfect (anti-)correlation."""
    lines = ["arch,acc,other"]
    for index, cell in enumerate(enumerate_nb201(PRIMITIVES)):
        if keep(index):
            lines.append(f"{cell},{50 + sign * alpha_score(ALPHA, PRIMITIVES, nb201_ops(cell)):.9f},1")
    path.write_text("\n".join(lines) + "\n")
    return build("benchmarks", {"type": "table", "path": str(path), "canonical": False})


def test_correlation_is_one_when_accuracy_follows_the_alpha_score(tmp_path):
    run = fake_run(tmp_path / "run", "cdarts", 0, [1.0, 2.0], alpha=ALPHA)
    result = correlation(run.run_dir, score_table(tmp_path / "up.csv", +1), samples=60, seed=1)
    assert (result["found"], result["missing"], result["epoch"], result["metric"]) == (60, 0, 2, "acc")
    assert result["kendall_tau"] == pytest.approx(1.0) and result["spearman_rho"] == pytest.approx(1.0)
    assert result["kendall_p"] < 1e-10
    down = correlation(run.run_dir, score_table(tmp_path / "down.csv", -1), samples=60, seed=1)
    assert down["kendall_tau"] == pytest.approx(-1.0) and down["spearman_rho"] == pytest.approx(-1.0)
    point = result["points"][0]
    assert point["value"] == pytest.approx(50 + point["score"], abs=1e-6)


def test_correlation_skips_cells_the_benchmark_lacks_and_writes_json_and_plot(tmp_path):
    run = fake_run(tmp_path / "run", "cdarts", 0, [1.0], alpha=ALPHA)
    bench = score_table(tmp_path / "half.csv", +1, keep=lambda index: index % 2 == 0)
    result = correlation(run.run_dir, bench, samples=100, seed=0)
    assert result["found"] + result["missing"] == 100 and 30 < result["found"] < 70
    assert result["kendall_tau"] == pytest.approx(1.0)
    paths = write_correlation(result, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["found"] == result["found"]
    assert paths["plot"].read_bytes().startswith(PNG)


def test_correlation_errors(tmp_path):
    bench = score_table(tmp_path / "t.csv", +1)
    run = fake_run(tmp_path / "run", "cdarts", 0, [1.0], alpha=ALPHA)
    with pytest.raises(ValueError, match="unknown benchmark metric 'test_acc'; available: acc, other"):
        correlation(run.run_dir, bench, metric="test_acc")
    with pytest.raises(ValueError, match="has no epoch 5; epochs: 1..1"):
        correlation(run.run_dir, bench, epoch=5)
    darts = tmp_path / "darts"
    darts.mkdir()
    (darts / "genotypes.jsonl").write_text(json.dumps(
        {"epoch": 1, "genotype": {"space": "darts"}, "primitives": [], "alpha": {"normal": [], "reduce": []}}) + "\n")
    with pytest.raises(ValueError, match="correlation needs a nas-bench-201 run; .* searched the 'darts' space"):
        correlation(darts, bench)
    with pytest.raises(FileNotFoundError, match="has no genotypes.jsonl"):
        correlation(tmp_path / "nowhere", bench)


def test_constant_scores_give_an_undefined_correlation(tmp_path):
    run = fake_run(tmp_path / "run", "cdarts", 0, [1.0])  # uniform alpha: every cell scores the same
    result = correlation(run.run_dir, score_table(tmp_path / "t.csv", +1), samples=20)
    assert result["kendall_tau"] is None and result["spearman_rho"] is None


# --- study planning


NB201_TINY = {
    "data": {"type": "digits", "image_size": 8, "channels": 3},
    "space": {"type": "nas-bench-201", "channels": 2, "cells_per_stage": 1},
    "strategy": {"type": "cdarts", "epochs": 3, "pretrain_epochs": 1, "eval_epochs": 2, "regularizer": None},
}


def test_strategy_variant_swaps_the_strategy_keeping_its_epochs():
    darts = strategy_variant(NB201_TINY, "darts")
    assert darts["strategy"] == {"type": "darts", "epochs": 3, "pretrain_epochs": 1}
    assert darts["space"] == NB201_TINY["space"]
    assert strategy_variant(NB201_TINY, "cdarts") == NB201_TINY
    with pytest.raises(LookupError, match="unknown strategy 'dartz'.*did you mean 'darts'"):
        strategy_variant(NB201_TINY, "dartz")


def test_differences_lists_dotted_paths():
    assert differences({"a": 1, "s": {"e": 2, "x": 1}}, {"a": 1, "s": {"e": 3}, "n": 0}) == ["s.e", "s.x", "n"]
    assert differences({"a": [1]}, {"a": [1]}) == []


def test_plan_study_layout_and_validation(tmp_path):
    single = plan_study(NB201_TINY, [0, 2], tmp_path)
    assert [(p.label, p.seed, p.run_dir) for p in single] == [
        ("cdarts", 0, tmp_path / "seed-0"), ("cdarts", 2, tmp_path / "seed-2")]
    assert single[1].config["seed"] == 2 and single[1].filled["strategy"]["eval_epochs"] == 2
    both = plan_study(NB201_TINY, [0], tmp_path, ["cdarts", "darts"], ["strategy.epochs=5"])
    assert [p.run_dir for p in both] == [tmp_path / "cdarts" / "seed-0", tmp_path / "darts" / "seed-0"]
    assert [p.filled["strategy"]["epochs"] for p in both] == [5, 5]
    with pytest.raises(ValueError, match="must not repeat"):
        plan_study(NB201_TINY, [0, 0], tmp_path)
    with pytest.raises(ConfigError, match="strategy.epochs: expected int, got str 'many'"):
        plan_study(NB201_TINY, [0], tmp_path, overrides=["strategy.epochs=many"])


# --- variants: labelled overrides, one report row each (paper Table 5, Figure 6)


ROOT = Path(__file__).resolve().parents[1]


def test_parse_variant_splits_overrides_only_before_a_key():
    variant = parse_variant("adam99:strategy.alpha_optimizer={type: adam, betas: [0.5, 0.99]},strategy.epochs=2")
    assert variant == Variant("adam99", ("strategy.alpha_optimizer={type: adam, betas: [0.5, 0.99]}",
                                         "strategy.epochs=2"))
    assert parse_variant("darts+reg: strategy.type=darts, strategy.reg_weight=5").overrides == (
        "strategy.type=darts", "strategy.reg_weight=5")


def test_parse_sweep_labels_each_value_by_its_last_key():
    assert parse_sweep("space.eval_layers=3,5,8") == [
        Variant("eval_layers=3", ("space.eval_layers=3",)), Variant("eval_layers=5", ("space.eval_layers=5",)),
        Variant("eval_layers=8", ("space.eval_layers=8",))]


@pytest.mark.parametrize(("parse", "text", "message"), [
    (parse_variant, "darts", "--variant 'darts': expected LABEL:KEY=VALUE[,KEY=VALUE...], "
                             "e.g. darts+reg:strategy.type=darts,strategy.reg_weight=5"),
    (parse_variant, "darts:", "--variant 'darts:': expected LABEL:KEY=VALUE[,KEY=VALUE...], "
                              "e.g. darts+reg:strategy.type=darts,strategy.reg_weight=5"),
    (parse_variant, "x:strategy", "--variant 'x:strategy': expected LABEL:KEY=VALUE[,KEY=VALUE...], "
                                  "e.g. darts+reg:strategy.type=darts,strategy.reg_weight=5"),
    (parse_variant, "my run:seed=1", "--variant 'my run': a label is letters, digits and _ . + = - (it names the "
                                     "variant's folder), e.g. darts+reg"),
    (parse_variant, "../up:strategy.epochs=1", "--variant '../up': a label is letters, digits and _ . + = - (it "
                                               "names the variant's folder), e.g. darts+reg"),
    (parse_variant, "x:strategy..epochs=1", "--variant 'x': 'strategy..epochs=1': expected KEY.PATH=VALUE, "
                                            "e.g. strategy.epochs=3"),
    (parse_variant, "x:seed=1", "--variant 'x': 'seed' is set by --seeds, not by a variant"),
    (parse_sweep, "space.eval_layers", "--sweep 'space.eval_layers': expected KEY=VALUE1,VALUE2,..., "
                                       "e.g. space.eval_layers=3,5,8"),
    (parse_sweep, "strategy.alpha_optimizer.betas=[0.5, 0.9]", "--sweep 'strategy.alpha_optimizer.betas=[0.5, 0.9]': "
     "value '[0.5, 0.9]' cannot name a folder; give it a label with --variant "
     "LABEL:strategy.alpha_optimizer.betas=[0.5, 0.9]"),
])
def test_bad_variants_are_refused_naming_the_value(parse, text, message):
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_plan_study_runs_each_variant_for_every_seed(tmp_path):
    variants = [parse_variant("reg:strategy.type=darts,strategy.reg_weight=5"), *parse_sweep("space.channels=2,3")]
    plans = plan_study(NB201_TINY, [0, 1], tmp_path, ["darts"], ["strategy.epochs=4"], variants)
    assert [(p.label, p.seed, p.run_dir) for p in plans] == [
        (label, seed, tmp_path / label / f"seed-{seed}")
        for label in ("darts", "reg", "channels=2", "channels=3") for seed in (0, 1)]
    strategies = [p.filled["strategy"] for p in plans]
    assert [(s["type"], s["epochs"], s["pretrain_epochs"], s["reg_weight"]) for s in strategies[::2]] == [
        ("darts", 4, 1, 0.0), ("darts", 4, 1, 5.0), ("cdarts", 4, 1, 5.0), ("cdarts", 4, 1, 5.0)]
    assert [p.filled["space"]["channels"] for p in plans[4:]] == [2, 2, 3, 3]
    assert not any(tmp_path.iterdir())


def test_plan_study_refuses_repeated_labels_and_names_the_variant_of_a_bad_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        plan_study(NB201_TINY, [0], tmp_path, ["darts"], variants=[parse_variant("darts:strategy.epochs=1")])
    assert str(caught.value) == "variant labels must not repeat: 'darts' given twice; labels: darts, darts"
    with pytest.raises(ConfigError, match=r"^--variant 'fast': strategy\.eval_epoch: unknown key for strategy "
                                          r"'cdarts'; .*did you mean 'eval_epochs'\?$"):
        plan_study(NB201_TINY, [0], tmp_path, variants=[parse_variant("fast:strategy.eval_epoch=1")])
    with pytest.raises(ConfigError, match=r"^--variant 'x': unknown strategy 'dartz'; .*did you mean 'darts'\?$"):
        plan_study(NB201_TINY, [0], tmp_path, variants=[parse_variant("x:strategy.type=dartz")])
    assert not any(tmp_path.iterdir())


def test_table5_preset_is_the_papers_four_objectives_on_the_demo(tmp_path):
    preset = ROOT / "configs" / "ablation-table5.yaml"
    plans = plan_study(ROOT / "configs" / "demo.yaml", [0], tmp_path, variants=read_variants(preset))
    assert [p.label for p in plans] == ["darts", "darts+reg", "darts+reg+kd", "cdarts"]
    rows = [p.filled["strategy"] for p in plans]
    assert [s["type"] for s in rows] == ["darts", "darts", "cdarts", "cdarts"]
    assert [(s["epochs"], s["pretrain_epochs"]) for s in rows] == [(8, 1)] * 4
    assert [s["reg_weight"] for s in rows] == [0.0, 5.0, 5.0, 5.0]
    assert [s["reg_stop_epoch"] for s in rows[1:]] == [4, 4, 4]
    assert [s["regularizer"] is not None for s in rows] == [True] * 4
    assert [(s["distill"] is not None, s["update_eval_in_joint_step"]) for s in rows[2:]] == [(True, False),
                                                                                                (True, True)]


def test_read_variants_wants_one_variants_mapping(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("variants:\n  plain:\n  fixed: {strategy.update_eval_in_joint_step: false, space.channels: 2}\n")
    assert read_variants(path) == [Variant("plain"), Variant("fixed", ("strategy.update_eval_in_joint_step=false",
                                                                      "space.channels=2"))]
    path.write_text("strategy: {type: darts}\n")
    with pytest.raises(ConfigError) as caught:
        read_variants(path)
    assert str(caught.value) == (f"{path}: expected one key 'variants' mapping labels to overrides, "
                                 "e.g. variants: {darts: {strategy.type: darts}}")
    path.write_text("variants: {a: [strategy.epochs=1]}\n")
    with pytest.raises(ConfigError, match=r"v\.yaml: variant 'a': expected a mapping of KEY\.PATH: VALUE, got list$"):
        read_variants(path)


def test_report_of_variants_has_a_row_per_label_with_its_overrides(runs, tmp_path):
    variants = [Variant("cdarts"), Variant("darts", ("strategy.type=darts", "strategy.reg_weight=5"))]
    lines = markdown_report(runs, "ablation", variants=variants).splitlines()
    assert "| variant | runs | benchmark test_acc | s_val_acc | s_test_acc | overrides |" in lines
    assert "| cdarts | 2 | 92.00 ± 2.00 | 51.00 ± 0.00 | 52.00 ± 0.00 | the config as given |" in lines
    assert ("| darts | 1 | 54.30 ± 0.00 | 51.00 ± 0.00 | 52.00 ± 0.00 | `strategy.type=darts`, "
            "`strategy.reg_weight=5` |") in lines
    assert "| variant | seed | benchmark test_acc | s_val_acc | s_test_acc | genotype |" in lines
    paths = write_report(runs, tmp_path / "report", "ablation", variants)
    with open(paths["csv"], newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert [(r["variant"], r["runs"], r["bench_test_acc_mean"], r["overrides"]) for r in summary] == [
        ("cdarts", "2", "92", ""), ("darts", "1", "54.3", "strategy.type=darts; strategy.reg_weight=5")]
    with open(paths["runs"], newline="") as handle:
        assert [(r["variant"], r["seed"]) for r in csv.DictReader(handle)] == [("cdarts", "0"), ("cdarts", "1"),
                                                                               ("darts", "0")]


def test_curves_show_e_when_every_run_has_one(tmp_path):
    """A sweep over E's depth (Figure 6) plots E's test accuracy per epoch; a study with a DARTS run does not."""
    runs = []
    for name, e_acc in (("deep", "60"), ("shallow", "55"), ("darts", "")):
        run = fake_run(tmp_path / name, "cdarts", 0, [1.0])
        header = "epoch,phase,s_val_acc,s_test_acc,e_test_acc"
        (run.run_dir / "metrics.csv").write_text(f"{header}\n0,search,40,41,{e_acc}\n")
        runs.append(load_run(run.run_dir, name))
    assert curve_metrics(runs[:2]) == ["s_val_acc", "s_test_acc", "e_test_acc"]
    assert curve_metrics(runs) == ["s_val_acc", "s_test_acc"]
