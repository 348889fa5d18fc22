"""The cdarts_* models as timm backbones: feature_info, features_only, forward_intermediates, pruning, fine-tuning."""
import json

import pytest
import timm
import torch
from safetensors.torch import save_file

import cdarts  # noqa: F401 - registers the cdarts_* models
from cdarts.models import CdartsNet

TINY = {"channels": 4, "layers": 5}
# name, input size, channels and strides of the four levels: stem, the cells before both reductions, the last cell
FAMILIES = [
    ("cdarts_cifar", 16, [12, 16, 32, 64], [1, 1, 2, 4]),
    ("cdarts_imagenet", 64, [4, 16, 32, 64], [8, 8, 16, 32]),
]


def make(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, **{**TINY, **kwargs}).eval()


def images(size: int) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_feature_info_lists_the_stem_and_the_last_cell_at_each_resolution(name, size, channels, strides):
    model = make(name)
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == list(zip(channels, strides, strict=True))
    stem = "stem.stem1" if name == "cdarts_imagenet" else "stem.stem"
    assert [f["module"] for f in model.feature_info] == [stem, "cells.0", "cells.2", "cells.4"]
    assert model.feature_info[-1]["num_chs"] == model.num_features


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_features_only_outputs_have_feature_info_channels_and_strides(name, size, channels, strides):
    model = make(name, features_only=True)
    assert (model.feature_info.channels(), model.feature_info.reduction()) == (channels, strides)
    with torch.no_grad():
        features = model(images(size))
    assert isinstance(features, list)
    expected = [(2, c, size // r, size // r) for c, r in zip(model.feature_info.channels(),
                                                              model.feature_info.reduction(), strict=True)]
    assert [tuple(f.shape) for f in features] == expected


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_features_only_values_are_forward_intermediates_of_the_same_weights(name, size, channels, strides):
    x = images(size)
    with torch.no_grad():
        reference = make(name).forward_intermediates(x, intermediates_only=True)
        features = make(name, features_only=True)(x)
    assert all(torch.equal(a, b) for a, b in zip(features, reference, strict=True))


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_hooks_at_the_feature_info_modules_see_the_same_maps(name, size, channels, strides):
    x, hook_net = images(size), make(name, features_only=True, feature_cls="hook")
    assert type(hook_net).__name__ == "FeatureHookNet"
    with torch.no_grad():
        hooked = hook_net(x)
        taken = make(name, features_only=True)(x)
    assert all(torch.equal(a, b) for a, b in zip(hooked, taken, strict=True))


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_out_indices_subset_keeps_only_the_cells_it_needs(name, size, channels, strides):
    x = images(size)
    model = make(name, features_only=True, out_indices=(1, 2))
    assert (model.feature_info.channels(), model.feature_info.reduction()) == (channels[1:3], strides[1:3])
    assert len(model.model.cells) == 3, "cells 3 and 4 come after level 2 and are pruned"
    with torch.no_grad():
        features = model(x)
        reference = make(name).forward_intermediates(x, indices=[1, 2], intermediates_only=True)
    assert [f.shape[1] for f in features] == channels[1:3]
    assert all(torch.equal(a, b) for a, b in zip(features, reference, strict=True))


def test_negative_out_indices_count_from_the_deepest_level():
    model = make("cdarts_cifar", features_only=True, out_indices=(-2, -1))
    assert model.feature_info.channels() == [32, 64]
    assert [f.shape[-1] for f in model(images(16))] == [8, 4]


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_forward_intermediates_final_map_is_forward_features(name, size, channels, strides):
    model, x = make(name), images(size)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert torch.equal(model.forward_head(final), model(x))
    assert [f.shape[1] for f in intermediates] == channels
    assert torch.equal(intermediates[-1], final)


def test_forward_intermediates_int_takes_the_last_n_and_a_list_takes_those_levels():
    model, x = make("cdarts_cifar"), images(16)
    with torch.no_grad():
        everything = model.forward_intermediates(x, intermediates_only=True)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        chosen = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
    assert len(everything) == 4
    assert [tuple(f.shape) for f in last_two] == [(2, 32, 8, 8), (2, 64, 4, 4)]
    assert all(torch.equal(a, b) for a, b in zip(last_two, everything[2:], strict=True))
    assert [tuple(f.shape) for f in chosen] == [(2, 12, 16, 16), (2, 64, 4, 4)]
    assert torch.equal(chosen[0], everything[0]) and torch.equal(chosen[1], everything[3])


def test_stop_early_returns_the_deepest_requested_level_as_the_final_map():
    model, x = make("cdarts_cifar"), images(16)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x, indices=[1], stop_early=True)
        full = model.forward_intermediates(x, intermediates_only=True)
    assert torch.equal(final, full[1]) and torch.equal(intermediates[0], full[1])


def test_forward_intermediates_refuses_another_output_format_and_a_level_out_of_range():
    model = make("cdarts_cifar")
    with pytest.raises(ValueError, match="output_fmt 'NHWC' is not supported; cdarts models give NCHW only"):
        model.forward_intermediates(images(16), output_fmt="NHWC")
    with pytest.raises(AssertionError, match=r"feature index 4 is out of range \(0 to 3\)"):
        model.forward_intermediates(images(16), indices=[4])


def test_pruned_backbone_ends_at_the_kept_level_and_takes_a_new_head():
    model = make("cdarts_cifar", auxiliary=True)
    assert model.prune_intermediate_layers([0, 1]) == [0, 1]
    assert (len(model.cells), model.num_features, model.auxiliary_head) == (1, 16, None)
    with torch.no_grad():
        assert tuple(model(images(16)).shape) == (2, 16, 16, 16), "no pooling, no classifier"
        model.reset_classifier(5, global_pool="avg")
        assert tuple(model(images(16)).shape) == (2, 5)


def test_pruning_to_the_stem_leaves_no_cells():
    model = make("cdarts_imagenet")
    assert model.prune_intermediate_layers([0]) == [0]
    assert (len(model.cells), model.num_features) == (0, 4)
    assert tuple(model.forward_features(images(64)).shape) == (2, 4, 8, 8)


def test_pruning_keeps_the_head_when_asked_and_the_last_level_is_kept():
    model = make("cdarts_cifar", num_classes=7)
    assert model.prune_intermediate_layers(2, prune_head=False) == [2, 3]
    assert (len(model.cells), model.get_classifier().out_features) == (5, 7)


@pytest.mark.parametrize(("name", "size", "channels", "strides"), FAMILIES)
def test_reset_classifier_gives_new_logits_or_pooled_features(name, size, channels, strides):
    model, x = make(name), images(size)
    model.reset_classifier(5)
    assert tuple(model(x).shape) == (2, 5)
    model.reset_classifier(0)
    assert tuple(model(x).shape) == (2, model.num_features) == (2, channels[-1])


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """A folder laid out as ``cdarts-export`` writes it: ``model.safetensors`` and timm's ``config.json``."""
    model = make("cdarts_cifar", seed=3)
    folder = tmp_path_factory.mktemp("export")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    cfg = model.pretrained_cfg
    config = {
        "architecture": "cdarts_cifar",
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": "avg",
        "model_args": {"genotype": model.genotype.to_json(), **TINY, "in_chans": 3, "auxiliary": False},
        "pretrained_cfg": {key: cfg[key] for key in (
            "input_size", "mean", "std", "crop_pct", "interpolation", "pool_size", "first_conv", "classifier",
        )},
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder, model


def test_export_loads_features_only_with_its_weights(export_folder):
    folder, model = export_folder
    backbone = timm.create_model(f"local-dir:{folder}", pretrained=True, features_only=True).eval()
    x = images(16)
    with torch.no_grad():
        features = backbone(x)
        reference = model.forward_intermediates(x, intermediates_only=True)
    assert backbone.feature_info.channels() == [12, 16, 32, 64]
    assert all(torch.equal(a, b) for a, b in zip(features, reference, strict=True))


def test_export_takes_a_new_classifier_for_fine_tuning(export_folder):
    folder, model = export_folder
    x = images(16)
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    fresh = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=5).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        loaded.reset_classifier(5)
        assert isinstance(loaded, CdartsNet) and tuple(loaded(x).shape) == (2, 5)
        assert tuple(fresh(x).shape) == (2, 5)
        assert torch.equal(fresh.forward_features(x), model.forward_features(x)), "the backbone weights are loaded"
