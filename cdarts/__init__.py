"""cdarts: Cyclic Differentiable Architecture Search (CDARTS) and DARTS-family search, assembled from YAML.

Importing the package registers the ``cdarts_*`` timm models. Each registry (ops, spaces, losses, discretizers,
strategies, datasets, genotypes, benchmarks, costs, ...) imports its built-in components at its first look-up
(``cdarts.registry.BUILTINS``), so a command that only loads a trained network imports no search or training code.
"""
import cdarts.models  # noqa: F401 - registers the cdarts_* timm models
from cdarts.config import ConfigError
from cdarts.genotypes import DartsGenotype, NB201Genotype, load_genotype

__version__ = "0.1.0"

__all__ = ["ConfigError", "DartsGenotype", "NB201Genotype", "load_genotype", "search", "__version__"]


def search(config, overrides=(), output=None, resume=False):
    """Run a search (see ``cdarts.engine.search``); imported lazily to keep ``import cdarts`` light."""
    from cdarts.engine import search as run

    return run(config, overrides=overrides, output=output, resume=resume)
