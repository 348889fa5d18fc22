"""The retrained DARTS-space network as a timm model family: ``cdarts_cifar`` and ``cdarts_imagenet``.

``timm.create_model("cdarts_cifar", genotype="CDARTS_CIFAR")`` builds the DARTS NetworkCIFAR layout (C=36, 20 cells)
for any DARTS-space genotype, given as a registered name, DARTS text or ``DartsGenotype.to_json()`` data. The
genotype travels in ``model_args`` as plain JSON, so an export folder rebuilds with ``local-dir:``. The models are
timm backbones too: ``features_only=True`` (with ``out_indices``) and ``forward_intermediates`` give the feature
levels described in ``CdartsNet``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from cdarts.errors import ConfigError
from cdarts.genotypes import DartsGenotype, load_genotype
from cdarts.spaces.base import StageOutputs
from cdarts.spaces.darts import DartsNetwork, Stem, stage_ends

__all__ = ["ARCHITECTURES", "CdartsNet", "resolve_genotype"]

CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "cdarts_cifar": {"genotype": "CDARTS_CIFAR", "channels": 36, "layers": 20, "stem": "cifar"},
    "cdarts_imagenet": {"genotype": "CDARTS_IMAGENET", "channels": 48, "layers": 14, "stem": "imagenet"},
}
"""The registered model names and the arguments each fills in when a caller leaves them out."""


def resolve_genotype(genotype: str | Mapping[str, Any] | DartsGenotype) -> DartsGenotype:
    """A DARTS-space genotype from a registered name, DARTS text, JSON data or a genotype file."""
    resolved = load_genotype(dict(genotype) if isinstance(genotype, Mapping) else genotype)
    if not isinstance(resolved, DartsGenotype):
        raise ConfigError(f"cdarts models need a DARTS-space genotype, got a {resolved.space} one: {resolved}")
    return resolved


class CdartsNet(DartsNetwork):
    """The DARTS evaluation network with timm's model interface.

    ``forward`` returns logits only; ``forward_stages`` also returns the stage outputs and, in training with
    ``auxiliary=True``, the auxiliary tower's logits (the training loop weights them into the loss).
    ``drop_path_prob`` is the current drop-path probability; training ramps it up to ``drop_path_rate``.

    As a timm backbone it has four feature levels (``feature_info``): 0 is the stem's output (the input of the first
    cell; stride 1 on CIFAR, 8 on ImageNet), 1-3 are the last cell at each resolution, i.e. the cell before each of
    the two reduction cells and the last cell (strides 1, 2, 4 on CIFAR; 8, 16, 32 on ImageNet). These are the
    deepest, most processed maps at each stride; the distillation taps of ``forward_stages`` (after each reduction
    cell by default) are a training choice and stay as they are.
    """

    def __init__(
        self,
        genotype: str | Mapping[str, Any] | DartsGenotype,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: int = 36,
        layers: int = 20,
        stem: Stem = "cifar",
        auxiliary: bool = False,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        stem_multiplier: int = 3,
    ) -> None:
        resolved = resolve_genotype(genotype)
        super().__init__(
            resolved, max(num_classes, 1), in_chans, channels, layers, stem, auxiliary, drop_path_rate=0.0,
            stem_multiplier=stem_multiplier,
        )
        self.in_chans = in_chans
        self.drop_path_rate = drop_path_rate
        self.drop_rate = drop_rate
        self.reset_classifier(num_classes, global_pool)
        self.feature_cells = stage_ends(layers, "before_reduction")
        self.feature_info = self._feature_info()

    def _feature_info(self) -> list[dict[str, Any]]:
        """timm's feature description: channels, stride and the module whose output each level is."""
        reduction = 8 if self.stem.reduces else 1
        info = [{"num_chs": self.stem.out_channels[1], "reduction": reduction,
                 "module": "stem.stem1" if self.stem.reduces else "stem.stem"}]
        for i, cell in enumerate(self.cells):
            reduction *= 2 if cell.reduction else 1
            if i in self.feature_cells:  # a cell concatenates its nodes, each preprocess1's width
                channels = len(cell.concat) * cell.preprocess1[1].out_channels
                info.append({"num_chs": channels, "reduction": reduction, "module": f"cells.{i}"})
        return info

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The feature maps of the ``feature_info`` levels in ``indices`` (timm's contract: an int takes the last n,
        None all), and unless ``intermediates_only`` the final feature map too. ``norm`` is accepted and has no
        effect: DARTS has no final norm layer. ``stop_early`` (implied by ``intermediates_only``) skips the cells
        after the deepest level asked for; the final feature map is then that level's.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt {output_fmt!r} is not supported; cdarts models give NCHW only")
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        s0, s1 = self.stem(x)
        intermediates = [s1] if 0 in take else []
        cells = self.cells
        if stop_early or intermediates_only:
            cells = cells[:self.feature_cells[max_index - 1] + 1] if max_index > 0 else []
        for i, cell in enumerate(cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i in self.feature_cells and self.feature_cells.index(i) + 1 in take:
                intermediates.append(s1)
        return intermediates if intermediates_only else (s1, intermediates)

    def prune_intermediate_layers(
        self, indices: int | list[int] | tuple[int, ...] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the cells after the deepest level in ``indices`` (and the head); returns the absolute indices kept.

        The pruned network's ``forward_features`` ends at that level, so ``num_features`` becomes its width.
        """
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        keep = self.feature_cells[max_index - 1] + 1 if max_index > 0 else 0
        if keep < len(self.cells):
            self.cells = self.cells[:keep]
            self.num_features = self.feature_info[max_index]["num_chs"]
            if self.aux_index >= keep:
                self.auxiliary_head, self.aux_index = None, -1
            prune_head = True  # the classifier was sized for the dropped cells
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_cells(x)[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward_stages(self, x: Tensor) -> StageOutputs:
        features, stages, aux_logits = self.forward_cells(x)
        return StageOutputs(self.forward_head(features), stages, aux_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New classifier (and auxiliary classifier) for ``num_classes``; 0 makes ``forward`` return pooled features."""
        if global_pool is not None:
            if not global_pool and num_classes > 0:
                raise ValueError(f"global_pool '' (no pooling) works only with num_classes=0, got {num_classes}")
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.num_classes = num_classes
        features = self.num_features * self.global_pool.feat_mult()
        self.classifier = nn.Linear(features, num_classes) if num_classes > 0 else nn.Identity()
        if self.auxiliary_head is not None:
            head = self.auxiliary_head
            head.classifier = nn.Linear(head.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def no_weight_decay(self) -> set[str]:
        """No parameter is exempt by name: DARTS decays every weight (timm filters biases and norms itself)."""
        return set()

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise LR decay: the stem, then one group per cell."""
        return {"stem": r"^stem", "blocks": r"^cells\.(\d+)" if coarse else [(r"^cells\.(\d+)", None)]}


def _create_cdarts(variant: str, pretrained: bool = False, **kwargs: Any) -> CdartsNet:
    """``features_only`` goes through ``forward_intermediates`` (timm's getter): a cell reads the two previous
    outputs, so the network is no chain of modules that ``FeatureListNet`` could re-run one by one."""
    feature_cfg = {"feature_cls": "getter", "out_indices": (0, 1, 2, 3)}
    return build_model_with_cfg(CdartsNet, variant, pretrained, feature_cfg=feature_cfg, **kwargs)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.stem0.0",
        "classifier": "classifier",
        "license": "mit",
        "paper_name": "Cyclic Differentiable Architecture Search",
        "paper_ids": "arXiv:2006.10724",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "cdarts_cifar": _cfg(
        num_classes=10, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, mean=CIFAR_MEAN, std=CIFAR_STD,
        first_conv="stem.stem.0",
    ),
    "cdarts_imagenet": _cfg(),
})


@register_model
def cdarts_cifar(pretrained: bool = False, **kwargs: Any) -> CdartsNet:
    """DARTS NetworkCIFAR layout: 3x3-conv stem, C=36, 20 cells; genotype CDARTS_CIFAR unless given."""
    return _create_cdarts("cdarts_cifar", pretrained, **{**ARCHITECTURES["cdarts_cifar"], **kwargs})


@register_model
def cdarts_imagenet(pretrained: bool = False, **kwargs: Any) -> CdartsNet:
    """DARTS NetworkImageNet layout: 3-conv stride-8 stem, C=48, 14 cells; genotype CDARTS_IMAGENET unless given."""
    return _create_cdarts("cdarts_imagenet", pretrained, **{**ARCHITECTURES["cdarts_imagenet"], **kwargs})
