"""The cdarts_* timm model family: registration, default cfgs, the timm model interface, genotype arguments."""
import pytest
import timm
import torch
from timm.data import resolve_data_config

import cdarts
from cdarts.data import CIFAR10_MEAN, CIFAR10_STD
from cdarts.models import CdartsNet
from cdarts.spaces.darts import DartsNetwork

TINY = {"channels": 4, "layers": 3}


def test_models_are_registered_with_timm_on_import():
    assert {"cdarts_cifar", "cdarts_imagenet"} <= set(timm.list_models("cdarts_*"))


def test_cdarts_cifar_parameter_count_matches_the_published_network():
    model = timm.create_model("cdarts_cifar", genotype="CDARTS_CIFAR")
    assert model.auxiliary_head is None
    assert sum(p.numel() for p in model.parameters()) == 3_859_318


def test_auxiliary_tower_adds_parameters_outside_the_inference_count():
    from cdarts.stats import inference_parameters

    model = timm.create_model("cdarts_cifar", auxiliary=True)
    assert inference_parameters(model) == 3_859_318
    assert sum(p.numel() for p in model.parameters()) > 3_859_318


def test_resolve_data_config_gives_cifar_input_and_normalisation():
    config = resolve_data_config({}, model=timm.create_model("cdarts_cifar", **TINY))
    assert config["input_size"] == (3, 32, 32)
    assert config["mean"] == pytest.approx(CIFAR10_MEAN)
    assert config["std"] == pytest.approx(CIFAR10_STD)
    assert config["crop_pct"] == 1.0


def test_resolve_data_config_gives_imagenet_input_and_crop():
    config = resolve_data_config({}, model=timm.create_model("cdarts_imagenet", **TINY))
    assert config["input_size"] == (3, 224, 224)
    assert config["crop_pct"] == 0.875
    assert config["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_defaults_follow_the_darts_layouts():
    cifar = timm.create_model("cdarts_cifar")
    imagenet = timm.create_model("cdarts_imagenet")
    assert (len(cifar.cells), cifar.num_classes, cifar.stem.kind) == (20, 10, "cifar")
    assert (len(imagenet.cells), imagenet.num_classes, imagenet.stem.kind) == (14, 1000, "imagenet")
    assert cifar.genotype == cdarts.load_genotype("CDARTS_CIFAR")
    assert imagenet.genotype == cdarts.load_genotype("CDARTS_IMAGENET")


def test_forward_features_head_and_pre_logits_shapes():
    model = timm.create_model("cdarts_cifar", num_classes=7, in_chans=1, **TINY).eval()
    x = torch.randn(2, 1, 8, 8)
    features = model.forward_features(x)
    assert features.shape == (2, model.num_features, 2, 2)
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    assert model.forward_head(features).shape == (2, 7)
    assert torch.equal(model(x), model.forward_head(features))


def test_reset_classifier_changes_the_head_and_zero_classes_gives_pooled_features():
    model = timm.create_model("cdarts_cifar", auxiliary=True, **TINY).eval()
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3
    assert model.auxiliary_head.classifier.out_features == 3
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, model.num_features)
    model.reset_classifier(0, global_pool="")
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, model.num_features, 2, 2)


def test_unpooled_head_with_classes_is_refused():
    with pytest.raises(ValueError, match="global_pool '' .* num_classes=0, got 10"):
        timm.create_model("cdarts_cifar", global_pool="", **TINY)


def test_forward_stages_returns_aux_logits_only_in_training():
    model = timm.create_model("cdarts_cifar", auxiliary=True, num_classes=5, **TINY)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    out = model.forward_stages(x)
    assert out.aux_logits.shape == (2, 5)
    assert [s.shape[-1] for s in out.stages] == [16, 8, 8], "after each reduction cell, then the last cell"
    model.eval()
    assert model.forward_stages(x).aux_logits is None
    assert model(x).shape == (2, 5)


def test_genotype_as_json_data_equals_genotype_by_name():
    torch.manual_seed(0)
    by_name = timm.create_model("cdarts_cifar", genotype="DARTS_V2", **TINY)
    torch.manual_seed(0)
    by_json = timm.create_model("cdarts_cifar", genotype=cdarts.load_genotype("DARTS_V2").to_json(), **TINY)
    assert by_name.genotype == by_json.genotype == cdarts.load_genotype("DARTS_V2")
    pairs = zip(by_name.state_dict().values(), by_json.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_unknown_genotype_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match="unknown genotype 'CDARTS_CIFAR10'.*did you mean 'CDARTS_CIFAR'"):
        timm.create_model("cdarts_cifar", genotype="CDARTS_CIFAR10")


def test_nas_bench_201_genotype_is_refused():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
    with pytest.raises(ValueError, match="need a DARTS-space genotype, got a nas-bench-201 one"):
        timm.create_model("cdarts_cifar", genotype=arch)


def test_state_dict_matches_the_darts_network_layout():
    genotype = cdarts.load_genotype("CDARTS_CIFAR")
    model = timm.create_model("cdarts_cifar", genotype="CDARTS_CIFAR", auxiliary=True, **TINY)
    reference = DartsNetwork(genotype, 10, auxiliary=True, **TINY)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_drop_path_rate_is_kept_apart_from_the_current_probability():
    model = timm.create_model("cdarts_cifar", drop_path_rate=0.3, **TINY)
    assert isinstance(model, CdartsNet)
    assert (model.drop_path_rate, model.drop_path_prob) == (0.3, 0.0)


def test_no_weight_decay_and_group_matcher():
    model = timm.create_model("cdarts_cifar", **TINY)
    assert model.no_weight_decay() == set()
    assert model.group_matcher(coarse=True) == {"stem": r"^stem", "blocks": r"^cells\.(\d+)"}
