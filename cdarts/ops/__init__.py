"""Primitive operations, one registered factory each: ``factory(channels, stride, affine) -> nn.Module``."""
from cdarts.ops.darts import DARTS_PRIMITIVES
from cdarts.ops.nb201 import NB201_PRIMITIVES
from cdarts.registry import ops


def build_op(name: str, channels: int, stride: int, affine: bool):
    """Instantiate a registered op; an unknown name raises with the available names."""
    return ops.get(name)(channels, stride, affine)


__all__ = ["DARTS_PRIMITIVES", "NB201_PRIMITIVES", "build_op"]
