"""cdarts-inspect and cdarts list: published parameter counts and MACs, the JSON report, one-line bad-input errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from cdarts.cli import inspect as inspect_cli
from cdarts.cli import main as main_cli
from cdarts.genotypes import load_genotype, parse_arch_string
from cdarts.registry import REGISTRIES
from cdarts.stats import count_macs, count_parameters, genotype_stats, resolve_settings

CIFAR_PARAMS = {
    "DARTS_V2": (3_349_342, 3.35e6),
    "PDARTS": (3_433_798, 3.43e6),
    "PC_DARTS_CIFAR": (3_634_678, 3.63e6),
    "CDARTS_CIFAR": (3_859_318, 3.86e6),
}
"""Our count without the auxiliary tower, and the papers' (DARTS Table 1, P-DARTS, PC-DARTS, CDARTS Table 3)."""

IMAGENET_PARAMS = {
    ("DARTS_V2", None): (4_718_752, 4.72e6),
    ("PDARTS", None): (4_944_352, 4.94e6),
    ("PC_DARTS_IMAGENET", None): (5_342_464, 5.34e6),
    ("CDARTS_IMAGENET", 44): (5_435_990, 5.44e6),
}

NB201_ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NB201_EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def run_main(main, argv, capsys):
    """``(exit code, stdout, stderr)`` of a CLI ``main``, whether it returns or raises SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


class OneConvOneLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
        self.fc = nn.Linear(8, 5)
        self.auxiliary_head = nn.Linear(8, 7)

    def forward(self, x):
        x = self.grouped(self.conv(x))
        if self.training:
            self.auxiliary_head(x.mean((2, 3)))
        return self.fc(x.mean((2, 3)))


def test_count_macs_matches_hand_count():
    model = OneConvOneLinear().train()
    # conv: 8x8 outputs x 8 channels x (3 in x 3x3); grouped: 8x8 x 8 x (8/4 x 3x3); linear: 8 x 5
    assert count_macs(model, (3, 16, 16)) == 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 2 * 9 + 8 * 5 == 23_080
    assert model.training, "count_macs must restore the training mode"
    assert not model.conv._forward_hooks and not model.fc._forward_hooks


class AlwaysAux(OneConvOneLinear):
    def forward(self, x):
        x = self.grouped(self.conv(x))
        return self.fc(x.mean((2, 3))) + self.auxiliary_head(x.mean((2, 3)))[:, :5]


def test_count_macs_skips_named_modules_even_when_they_run():
    model = AlwaysAux()
    assert count_macs(model, (3, 16, 16), skip=()) == 23_080 + 8 * 7
    assert count_macs(model, (3, 16, 16)) == 23_080
    assert count_macs(model, (3, 16, 16), skip=("auxiliary_head", "fc")) == 23_080 - 8 * 5


def test_count_parameters_separates_auxiliary_head():
    model = OneConvOneLinear()
    main, aux = count_parameters(model)
    assert aux == 8 * 7 + 7
    assert main == (3 * 9 * 8 + 8) + (2 * 9 * 8) + (8 * 5 + 5)


@pytest.mark.parametrize("name", sorted(CIFAR_PARAMS))
def test_cifar10_params_match_papers(name):
    ours, paper = CIFAR_PARAMS[name]
    stats = genotype_stats(load_genotype(name), resolve_settings("darts", "cifar10"), macs=False)
    assert stats["params"] == ours
    assert abs(ours - paper) / paper < 0.005
    assert stats["params_aux"] == 476_426
    assert stats["macs"] is None


@pytest.mark.parametrize(("name", "channels"), sorted(IMAGENET_PARAMS, key=str))
def test_imagenet_params_match_papers(name, channels):
    ours, paper = IMAGENET_PARAMS[(name, channels)]
    settings = resolve_settings("darts", "imagenet", channels=channels)
    assert genotype_stats(load_genotype(name), settings, macs=False)["params"] == ours
    assert abs(ours - paper) / paper < 0.005


def test_darts_v2_imagenet_macs():
    stats = genotype_stats(load_genotype("DARTS_V2"), resolve_settings("darts", "imagenet"))
    assert stats["macs"] == 529_911_552
    # DARTS Table 3 reports 574M multiply-adds; counting only conv and linear MACs gives 530M (7.7% fewer; the
    # paper's counter evidently counted more than convolutions). P-DARTS and PC-DARTS report 557M and 597M for
    # genotypes we count at 543M and 582M, 2.6% below each.
    assert 0.90 < stats["macs"] / 574e6 < 0.95


def test_presets_and_overrides():
    imagenet = resolve_settings("darts", "imagenet")
    assert (imagenet.channels, imagenet.layers, imagenet.input_size, imagenet.num_classes, imagenet.stem) == (
        48, 14, 224, 1000, "imagenet"
    )
    assert resolve_settings("darts", "cifar100").num_classes == 100
    assert resolve_settings("darts", "cifar10", channels=16, layers=8, num_classes=None).channels == 16
    nb201 = resolve_settings("nas-bench-201", "imagenet")
    assert (nb201.input_size, nb201.num_classes, nb201.layers) == (16, 120, 5)
    with pytest.raises(ValueError, match="unknown setting 'width'; valid: channels, layers, input_size, num_classes"):
        resolve_settings("darts", width=3)


@pytest.mark.parametrize(
    ("arch", "preset", "params", "macs"),
    [
        (NB201_ALL_CONV, "cifar10", 1_531_546, 220_119_680),
        (NB201_EMPTY, "cifar10", 73_306, 7_783_040),
        (NB201_ALL_CONV, "imagenet", 1_538_696, 55_037_440),
    ],
)
def test_nb201_extremes_match_the_benchmark(arch, preset, params, macs):
    """NAS-Bench-201 lists 0.07M-1.53M parameters and 7.78M-220.11M FLOPs on CIFAR-10, 55.03M on ImageNet16-120."""
    stats = genotype_stats(parse_arch_string(arch), resolve_settings("nas-bench-201", preset))
    assert (stats["params"], stats["macs"], stats["params_aux"]) == (params, macs, 0)


def test_json_report_from_the_command_line(cli_env):
    result = subprocess.run(
        [sys.executable, "-m", "cdarts.cli.inspect", "DARTS_V2", "--json"], env=cli_env, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["params"] == 3_349_342 and report["params_aux"] == 476_426 and report["macs"] == 528_359_040
    settings = {k: report[k] for k in ("space", "preset", "channels", "layers", "input_size", "num_classes", "stem")}
    assert settings == {
        "space": "darts", "preset": "cifar10", "channels": 36, "layers": 20, "input_size": 32, "num_classes": 10,
        "stem": "cifar",
    }
    assert report["source"] == "DARTS_V2"
    assert load_genotype(report["genotype"]) == load_genotype("DARTS_V2")
    assert load_genotype(report["genotype_text"]) == load_genotype("DARTS_V2")


def test_human_report_is_an_aligned_table(capsys):
    code, out, err = run_main(inspect_cli.main, ["PDARTS", "--channels", "8", "--layers", "5"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["genotype", "PDARTS"]
    assert lines[3].split() == ["channels", "8"]
    table = lines[: lines.index("")]
    assert len(table) == 10 and len({re.match(r"^.*?\S\s{2,}", line).end() for line in table}) == 1
    assert any(line.startswith("params ") and line.endswith(" M") for line in lines)
    assert lines[-1] == str(load_genotype("PDARTS"))


def test_genotype_json_file_and_run_folder(tmp_path, capsys):
    (tmp_path / "genotype.json").write_text(json.dumps(load_genotype("PC_DARTS_CIFAR").to_json()))
    tiny = ["--channels", "4", "--layers", "3", "--input-size", "8", "--json"]
    reports = []
    for ref in (str(tmp_path / "genotype.json"), str(tmp_path), "PC_DARTS_CIFAR"):
        code, out, _ = run_main(inspect_cli.main, [ref, *tiny], capsys)
        assert code == 0
        reports.append(json.loads(out))
    assert reports[0]["source"] == str(tmp_path / "genotype.json")
    strip = [{k: v for k, v in r.items() if k != "source"} for r in reports]
    assert strip[0] == strip[1] == strip[2]
    assert reports[0]["channels"] == 4 and reports[0]["input_size"] == 8


def test_nb201_arch_string_reports_canonical_form(capsys):
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"
    code, out, _ = run_main(inspect_cli.main, [arch, "--json", "--space", "nas-bench-201"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["space"] == "nas-bench-201" and (report["channels"], report["layers"]) == (16, 5)
    assert report["genotype_text"] == arch
    assert parse_arch_string(report["canonical"]).ops().count("none") >= 3
    assert report["params_aux"] == 0 and report["macs"] > 0


def test_unknown_genotype_name_is_one_line_exit_2(cli_env):
    result = subprocess.run(
        [sys.executable, "-m", "cdarts.cli.inspect", "DARTS_V3"], env=cli_env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cdarts-inspect: error: unknown genotype 'DARTS_V3'")
    assert "DARTS_V2, PC_DARTS_CIFAR" in lines[0] and "did you mean 'DARTS_V2'?" in lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["DARTS_V2", "--preset", "cifar"], "unknown preset 'cifar'; available: cifar10, cifar100, imagenet"),
        (["{tmp}/missing.json"], "no such genotype file or run folder: '{tmp}/missing.json'"),
        (["{tmp}/bad.json"], "{tmp}/bad.json: not a genotype JSON file"),
        (["{tmp}"], "folder '{tmp}' has no genotype.json"),
        (["DARTS_V2", "--space", "nb201"], "unknown space 'nb201'; available: darts, nas-bench-201"),
        (["DARTS_V2", "--space", "nas-bench-201"], "genotype 'DARTS_V2' belongs to the 'darts' space"),
        (["DARTS_V2", "--plot", "{tmp}/cell.jpg"], "unknown format '.jpg'; use one of .png, .svg, .pdf"),
        (["DARTS_V2", "--channels", "0"], "channels must be a positive integer, got 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, expected, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"normal": 1}')
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, out, err = run_main(inspect_cli.main, argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cdarts-inspect: error: ")
    assert expected.format(tmp=tmp_path) in err
    assert not (tmp_path / "cell.jpg").exists()


def test_list_ops_names_modules(capsys):
    code, out, _ = run_main(main_cli.main, ["list", "ops"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert "ops: sep_conv_3x3 (cdarts.ops.darts)" in lines
    assert "ops: nor_conv_3x3 (cdarts.ops.nb201)" in lines
    assert all(line.startswith("ops: ") for line in lines)


def test_inspect_list_is_deprecated_but_still_lists(capsys):
    _, out, _ = run_main(main_cli.main, ["list", "ops"], capsys)
    code, same, err = run_main(inspect_cli.main, ["--list", "ops"], capsys)
    assert code == 0 and same == out
    assert err == "warning: --list is deprecated; use cdarts list ops (removed in the next release)\n"


def test_list_all_kinds(capsys):
    code, out, _ = run_main(main_cli.main, ["list"], capsys)
    assert code == 0
    kinds = {line.split(":")[0] for line in out.splitlines()}
    assert kinds == set(REGISTRIES)
    assert "genotypes: DARTS_V2 (cdarts.genotypes)" in out.splitlines()


def test_list_unknown_kind_names_the_kinds(capsys):
    code, out, err = run_main(main_cli.main, ["list", "opz"], capsys)
    assert code == 2 and out == ""
    kinds = ", ".join(sorted(REGISTRIES))
    assert err == f"cdarts list: error: unknown component kind 'opz'; available: {kinds}; did you mean 'ops'?\n"


def test_main_dispatches_to_command_modules(capsys):
    code, out, _ = run_main(main_cli.main, ["inspect", "DARTS_V1", "--channels", "4", "--layers", "3", "--json"],
                            capsys)
    assert code == 0 and json.loads(out)["source"] == "DARTS_V1"


def test_missing_command_module_is_reported(monkeypatch, capsys):
    monkeypatch.setitem(main_cli.COMMANDS, "frobnicate", "not a real command")
    code, _, err = run_main(main_cli.main, ["frobnicate", "--x"], capsys)
    assert code == 2
    assert err == "cdarts: error: command 'frobnicate' is not implemented yet (cdarts.cli.frobnicate is missing)\n"


def test_plot_option_writes_the_drawing(tmp_path, capsys):
    out_file = tmp_path / "cells.svg"
    code, out, _ = run_main(inspect_cli.main, ["DARTS_V2", "--layers", "3", "--channels", "4", "--plot",
                                               str(out_file), "--json"], capsys)
    assert code == 0 and json.loads(out)["plot"] == str(out_file)
    assert "<svg" in out_file.read_text()


def test_macs_run_without_gradients():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    before = [p.clone() for p in model.parameters()]
    assert count_macs(model, (3, 4, 4)) == 4 * 4 * 2 * 3 + 32 * 3
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (json.dumps({"normal": [[op, j - back] for j in range(2, 1002) for op, back in (("sep_conv_3x3", 1),
                                                                                          ("skip_connect", 2))],
                     "normal_concat": list(range(2, 1002)), "reduce": [["skip_connect", 0]], "reduce_concat": [2]}),
         "normal: 1000 nodes; a cell has at most 16 intermediate nodes"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["1000_nodes", "100000_deep"],
)
def test_huge_or_deep_genotype_file_is_one_line_at_once(content, expected, tmp_path, capsys):
    path = tmp_path / "genotype.json"
    path.write_text(content)
    began = time.perf_counter()
    code, out, err = run_main(inspect_cli.main, [str(path)], capsys)
    assert time.perf_counter() - began < 5, "refused when parsed, before any network is built"
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"cdarts-inspect: error: {path}: not a genotype JSON file (") and expected in err
