"""cdarts: Cyclic Differentiable Architecture Search (CDARTS) and DARTS-family search, assembled from YAML.

Importing the package registers the built-in components (ops, spaces, losses, discretizers, strategies,
datasets, genotypes) and the ``cdarts_*`` timm models; heavy optional dependencies load lazily.
"""
from cdarts import discretizers, genotypes, losses, ops, spaces  # noqa: F401 - registration on import
from cdarts.config import ConfigError
from cdarts.genotypes import DartsGenotype, NB201Genotype, load_genotype

__version__ = "0.1.0"

__all__ = ["ConfigError", "DartsGenotype", "NB201Genotype", "load_genotype", "__version__"]
