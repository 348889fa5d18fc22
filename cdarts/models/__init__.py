"""The retrain networks as timm models; importing this package registers the ``cdarts_*`` names with timm."""
from cdarts.models.darts import CdartsNet, cdarts_cifar, cdarts_imagenet, resolve_genotype

__all__ = ["CdartsNet", "cdarts_cifar", "cdarts_imagenet", "resolve_genotype"]
