"""A run's plots: curves.png panels drawn from metrics.csv columns, alphas.png heatmaps and leading-op curves, every
axis scaled to show change, and a search redrawing them after every epoch."""
import json

import numpy as np
import pytest

from cdarts import engine
from cdarts.genotypes import load_genotype
from cdarts.plotting import alpha_edges, plot_alphas, plot_retrain_curves, write_search_plots
from cdarts.plotting.training import RETRAIN_PANELS, SEARCH_PANELS, alphas_figure, curves_figure

PRIMITIVES = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"]


def search_rows():
    """metrics.csv rows of a CDARTS search with pretraining (E's columns empty there) and a benchmark column."""
    return [
        {"epoch": 1, "phase": "pretrain", "train_loss": 2.0, "train_acc": 40.0, "s_val_acc": 50.0, "s_test_acc": 51.0,
         "e_val_acc": float("nan"), "bench_test_acc": 90.1},
        {"epoch": 2, "phase": "search", "train_loss": 1.5, "train_acc": 45.0, "s_val_acc": 50.5, "s_test_acc": 51.5,
         "e_val_acc": 48.0, "e_train_loss": 1.9, "joint_ce_e": 1.8, "lambda_reg": 5.0, "bench_test_acc": 90.3},
        {"epoch": 3, "phase": "search", "train_loss": 1.2, "train_acc": 47.0, "s_val_acc": 50.8, "s_test_acc": 51.2,
         "e_val_acc": 49.0, "e_train_loss": 1.7, "joint_ce_e": 1.6, "lambda_reg": 2.5, "bench_test_acc": 90.2},
    ]


def lines(ax):
    return {line.get_label().split(":")[0]: list(line.get_ydata()) for line in ax.get_lines()}


def test_search_curves_draw_s_e_lambda_and_the_benchmark():
    rows = search_rows()
    fig = curves_figure(rows, SEARCH_PANELS, "search")
    drawn = {ax.get_title(): lines(ax) for ax in fig.axes if ax.get_title()}
    assert list(drawn) == ["S (search network): loss", "E (evaluation network): loss", "loss weights",
                           "S: top-1 accuracy", "E: top-1 accuracy", "benchmark: each epoch's genotype looked up"]
    assert drawn["S (search network): loss"] == {"train_loss": [2.0, 1.5, 1.2]}
    assert drawn["S: top-1 accuracy"] == {"train_acc": [40.0, 45.0, 47.0], "s_val_acc": [50.0, 50.5, 50.8],
                                          "s_test_acc": [51.0, 51.5, 51.2]}
    assert np.isnan(drawn["E (evaluation network): loss"]["e_train_loss"][0])  # no E while pretraining: a gap
    assert drawn["E (evaluation network): loss"]["joint_ce_e"][1:] == [1.8, 1.6]
    assert drawn["loss weights"]["lambda_reg"][1:] == [5.0, 2.5]
    assert drawn["benchmark: each epoch's genotype looked up"] == {"bench_test_acc": [90.1, 90.3, 90.2]}
    bench = next(ax for ax in fig.axes if ax.get_title().startswith("benchmark"))
    low, high = bench.get_ylim()
    assert 89.5 < low < 90.1 and 90.3 < high < 91  # scaled to the 0.2-point change, not 0..100
    assert [int(t) for t in fig.axes[0].get_lines()[0].get_xdata()] == [1, 2, 3]


def test_curves_read_metrics_csv_text_and_leave_out_absent_panels():
    rows = [{"epoch": "1", "phase": "search", "train_loss": "2.5", "alpha_loss": "", "s_alpha_acc": "nan"}]
    fig = curves_figure(rows, SEARCH_PANELS, "search")
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["S (search network): loss", "S: top-1 accuracy"]
    assert lines(fig.axes[0])["train_loss"] == [2.5] and np.isnan(lines(fig.axes[0])["alpha_loss"][0])
    with pytest.raises(ValueError, match="no epochs to plot"):
        curves_figure([], SEARCH_PANELS, "search")


def test_retrain_curves_draw_loss_top1_and_lr(tmp_path):
    rows = [{"epoch": e, "lr": 0.1 / e, "train_loss": 2 / e, "val_loss": 2.1 / e, "test_loss": 2.2 / e,
             "train_top1": 50 + e, "val_top1": 49 + e, "test_top1": 48 + e, "test_top5": 90.0} for e in (1, 2)]
    fig = curves_figure(rows, RETRAIN_PANELS, "retrain")
    drawn = {ax.get_title(): lines(ax) for ax in fig.axes if ax.get_title()}
    assert drawn == {"loss": {"train_loss": [2.0, 1.0], "val_loss": [2.1, 1.05], "test_loss": [2.2, 1.1]},
                     "top-1 accuracy": {"train_top1": [51, 52], "val_top1": [50, 51], "test_top1": [49, 50]},
                     "learning rate": {"lr": [0.1, 0.05]}}
    path = plot_retrain_curves(rows, tmp_path / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_alpha_edges_follow_the_genotype_numbering():
    assert alpha_edges("darts", 5) == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert alpha_edges("darts", 14)[-1] == (4, 5)
    assert alpha_edges("nas-bench-201", 6) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def alpha_history():
    """Three epochs of a 2-node DARTS cell pair (5 edges) whose ``sep_conv_3x3`` weights grow by 0.001 a step."""
    genotype = {"space": "darts", "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["sep_conv_3x3", 2],
                                             ["max_pool_3x3", 0]],
                "normal_concat": [2, 3], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1],
                                                    ["sep_conv_3x3", 1], ["skip_connect", 2]], "reduce_concat": [2, 3]}
    history = []
    for epoch in (1, 2, 3):
        weights = np.full((5, 4), 0.25)
        weights[:, 3] += 0.001 * epoch
        weights[:, 0] -= 0.001 * epoch
        history.append({"epoch": epoch, "primitives": PRIMITIVES, "genotype": genotype,
                        "alpha": {"normal": weights.tolist(), "reduce": weights[::-1].tolist()}})
    return history


def test_alphas_heatmap_is_the_last_epoch_and_boxes_the_genotype():
    history = alpha_history()
    fig = alphas_figure(history)
    heat = fig.axes[0]
    assert heat.get_title() == "normal cell: softmax(alpha) at epoch 3 (red: in the genotype)"
    assert np.allclose(heat.get_images()[0].get_array(), history[-1]["alpha"]["normal"])
    assert [t.get_text() for t in heat.get_yticklabels()] == ["0→2", "1→2", "0→3", "1→3", "2→3"]
    assert [t.get_text() for t in heat.get_xticklabels()] == PRIMITIVES
    boxes = sorted((int(p.get_x() + 0.5), int(p.get_y() + 0.5)) for p in heat.patches)
    assert boxes == [(1, 2), (2, 1), (3, 0), (3, 4)]  # (op column, edge row) of each genotype edge
    assert "0.2530" in [t.get_text() for t in heat.texts]  # digits enough to tell 0.253 from 0.250


def test_leading_op_curves_show_their_change():
    history = alpha_history()
    fig = alphas_figure(history)
    curves = next(ax for ax in fig.axes if ax.get_title() == "normal cell: weight of each edge's leading op")
    drawn = {line.get_label(): list(line.get_ydata()) for line in curves.get_lines()}
    assert drawn["0→2 sep_conv_3x3"] == pytest.approx([0.251, 0.252, 0.253])
    assert drawn["uniform"] == pytest.approx([0.25, 0.25])
    low, high = curves.get_ylim()
    assert 0.2495 < low < 0.25 and 0.253 < high < 0.2535  # the 0.003 change fills the axis, not 0..1


def test_alphas_png_of_a_nas_bench_201_search(tmp_path):
    weights = np.full((6, 5), 0.2)
    weights[:, 1] = 0.21
    history = [{"epoch": 1, "alpha": {"cell": weights.tolist()}, "primitives": ["none", "skip_connect",
                "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
                "genotype": load_genotype("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|"
                                          "skip_connect~1|skip_connect~2|").to_json()}]
    heat = alphas_figure(history).axes[0]
    assert heat.get_title() == "cell: softmax(alpha) at epoch 1 (red: in the genotype)"
    assert [t.get_text() for t in heat.get_yticklabels()] == ["0→1", "0→2", "1→2", "0→3", "1→3", "2→3"]
    assert sorted((int(p.get_x() + 0.5), int(p.get_y() + 0.5)) for p in heat.patches) == [(1, r) for r in range(6)]
    assert plot_alphas(history, tmp_path / "alphas.svg").read_text().startswith("<?xml")


def test_write_search_plots_redraws_the_genotype_only_when_it_changes(tmp_path, monkeypatch):
    from cdarts.plotting import cells, training

    history = [{**h, "metrics": row} for h, row in zip(alpha_history(), search_rows(), strict=True)]
    drawn = []
    monkeypatch.setattr(cells, "plot_genotype", lambda genotype, path: drawn.append(genotype) or path.touch())
    monkeypatch.setattr(training, "plot_search_curves", lambda rows, path: path.touch())
    monkeypatch.setattr(training, "plot_alphas", lambda history, path: path.touch())
    for count in (1, 2, 3):
        write_search_plots(tmp_path, history[:count])
    assert len(drawn) == 1 and drawn[0].to_json() == history[0]["genotype"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alphas.png", "curves.png", "genotype.png"]
    (tmp_path / "genotype.png").unlink()
    write_search_plots(tmp_path, history)
    assert len(drawn) == 2


def test_a_search_redraws_its_plots_after_every_epoch(tmp_path, tiny_config, monkeypatch):
    seen = []
    monkeypatch.setattr(engine, "write_search_plots", lambda _, history: seen.append([h["epoch"] for h in history]))
    result = engine.search(tiny_config(plots=True, max_steps_per_epoch=1), output=tmp_path / "run", quiet=True)
    assert seen == [[1], [1, 2], [1, 2, 3]]
    lines = (result.run_dir / "genotypes.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == seen[-1]
