"""The package's import graph: every module imports on its own (no cycle that only an import order hides), and the
commands that load a trained network import no search or training code."""
from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, cli_env

EVERY_MODULE_ALONE = r"""
import importlib, pkgutil, sys, warnings
import catalogue
import cdarts

names = sorted(m.name for m in pkgutil.walk_packages(cdarts.__path__, "cdarts."))
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "cdarts" or m.startswith("cdarts.")]:
        del sys.modules[loaded]
    for key in [k for k in catalogue.REGISTRY if k[0] == "cdarts"]:
        del catalogue.REGISTRY[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm warns that it overwrites the cdarts_* models it registered before
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names))
print("\n".join(failed))
"""

LOADING_ONLY = r"""
import sys
import cdarts.cli.eval, cdarts.cli.export, cdarts.evaluate, cdarts.models.export, cdarts.models.load
print(" ".join(sorted(m for m in sys.modules if m.startswith(
    ("cdarts.engine", "cdarts.retrain", "cdarts.runtime", "cdarts.strategies", "cdarts.losses")))))
"""


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_module_imports_first_and_alone():
    count, *failed = run_python(EVERY_MODULE_ALONE).strip().split("\n")
    assert int(count) > 60
    assert [line for line in failed if line] == []


def test_export_and_eval_import_no_search_or_training_code():
    assert run_python(LOADING_ONLY).strip() == ""


def test_a_registry_imports_its_built_in_components_at_its_first_look_up():
    code = ("import sys, cdarts\nfrom cdarts.registry import strategies\nbefore = 'cdarts.strategies' in sys.modules\n"
            "print(before, strategies.has('cdarts'), 'cdarts.strategies.cdarts' in sys.modules)")
    assert run_python(code).split() == ["False", "True", "True"]
