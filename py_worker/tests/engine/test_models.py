"""The model zoo: output shapes and parameter counts against the published architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmbq_worker.engine.models import MODEL_NAMES, build_model, count_parameters
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb


def test_resnet20_has_about_027m_parameters_and_cifar_logits() -> None:
    model = build_model("resnet20", 10)
    assert count_parameters(model) == 269_722  # He et al.: 0.27 M
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # 1 + 3 stages x 3 blocks x 2 (+ the fc: 20 weight layers)


def test_resnet18_matches_torchvision_parameter_count() -> None:
    model = build_model("resnet18", 1000)
    assert count_parameters(model) == 11_689_512
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    assert count_parameters(build_model("resnet34", 1000)) == 21_797_672


def test_vgg_small_follows_the_spec() -> None:
    model = build_model("vgg_small", 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [128, 128, 256, 256, 512, 512]
    assert [(l.in_features, l.out_features) for l in linears] == [(8192, 1024), (1024, 1024), (1024, 10)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    lqnet = build_model("vgg_small_lqnet", 10)
    assert [(l.in_features, l.out_features) for l in lqnet.modules() if isinstance(l, nn.Linear)] == [(8192, 10)]


def test_digits_cnn_takes_8x8_grayscale() -> None:
    model = build_model("digits_cnn", 10)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_unknown_model_names_the_field_and_lists_known_names() -> None:
    with pytest.raises(WorkerError) as err:
        build_model("resnet1000", 10)
    assert err.value.field == "model.name"
    assert err.value.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert all(name in err.value.message for name in MODEL_NAMES)


def test_factory_builds_a_custom_model_and_rejects_bad_specs() -> None:
    model = build_model("", 4, factory="tests.engine.custom_model:tiny_mlp")
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    for bad in ("no_colon", "tests.engine.custom_model:missing", "not_a_module_xyz:fn"):
        with pytest.raises(WorkerError) as err:
            build_model("", 4, factory=bad)
        assert err.value.field == "model.factory"
