"""The model zoo: ResNet-20 and VGG-small (CIFAR-10), ResNet-18/34 (ImageNet) and the small CNN for digits.

Plain torch.nn modules built from Conv2d/Linear, so that `convert_model` can swap those for quantized layers.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from dmbq_worker.errors import invalid


# ---------------------------------------------------------------- digits


class DigitsCNN(nn.Module):
    """Small CNN for the 8x8 sklearn digits: 3 conv layers (BN, ReLU), two max-pools, one linear layer."""

    def __init__(self, num_classes: int = 10, width: int = 1) -> None:
        super().__init__()
        c1, c2, c3 = 32 * width, 64 * width, 128 * width
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(c2, c3, 3, padding=1, bias=False),
            nn.BatchNorm2d(c3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Linear(c3 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def conv_after_relu(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(relu(x)). A quantized layer (folds_input_relu) folds the ReLU into its activation quantizer, whose levels
    start at 0 anyway: on the GPU that spares the ReLU's own pass over the tensor in forward and in backward. Only
    where relu(x) feeds this layer alone (a residual block's second conv, not its first: the shortcut reads that)."""
    if getattr(layer, "folds_input_relu", False):
        return layer(x, relu_input=True)  # type: ignore[no-any-return]
    return layer(F.relu(x))  # type: ignore[no-any-return]


# ---------------------------------------------------------------- ResNet-20 (CIFAR)


class _CifarBasicBlock(nn.Module):
    """He et al. 2016 CIFAR block with the parameter-free shortcut (option A: stride-2 subsample + zero channels)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad_channels = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad_channels == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.pad_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(conv_after_relu(self.conv2, self.bn1(self.conv1(x))))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; n=3 is ResNet-20 (about 0.27 M parameters)."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10, width: int = 1) -> None:
        super().__init__()
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers: list[nn.Module] = []
        in_planes = widths[0]
        for stage, planes in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_CifarBasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


# ---------------------------------------------------------------- VGG-small (CIFAR)


class VGGSmall(nn.Module):
    """VGG-small as the DMBQ authors and ALQ ran it.

    6 conv layers 128-128-256-256-512-512 (BN, ReLU; max-pool after each pair), then
    linear 8192 -> 1024 -> 1024 -> num_classes with BN. `single_linear=True` gives LQ-Net's variant
    (one linear layer 8192 -> num_classes).
    """

    def __init__(self, num_classes: int = 10, width: int = 1, single_linear: bool = False) -> None:
        super().__init__()
        chans = [128 * width, 128 * width, 256 * width, 256 * width, 512 * width, 512 * width]
        feats: list[nn.Module] = []
        in_c = 3
        for i, c in enumerate(chans):
            feats.append(nn.Conv2d(in_c, c, 3, padding=1, bias=False))
            if i % 2 == 1:
                feats.append(nn.MaxPool2d(2))
            feats += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            in_c = c
        self.features = nn.Sequential(*feats)
        flat = chans[-1] * 4 * 4  # 32 / 2^3 = 4
        if single_linear:
            self.classifier = nn.Sequential(nn.Linear(flat, num_classes))
        else:
            hidden = 1024 * width
            self.classifier = nn.Sequential(
                nn.Linear(flat, hidden, bias=False),
                nn.BatchNorm1d(hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, hidden, bias=False),
                nn.BatchNorm1d(hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, num_classes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# ---------------------------------------------------------------- ResNet-18/34 (ImageNet)


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(conv_after_relu(self.conv2, self.bn1(self.conv1(x))))
        return F.relu(out + identity)


class ResNetImageNet(nn.Module):
    """ResNet-18 ([2,2,2,2], 11.69 M parameters) and ResNet-34 ([3,4,6,3]) as in torchvision."""

    def __init__(self, blocks: list[int], num_classes: int = 1000, width: int = 1) -> None:
        super().__init__()
        widths = [64 * width, 128 * width, 256 * width, 512 * width]
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages: list[nn.Module] = []
        in_planes = widths[0]
        for i, (n, planes) in enumerate(zip(blocks, widths)):
            for b in range(n):
                stages.append(_BasicBlock(in_planes, planes, 2 if i > 0 and b == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


# ---------------------------------------------------------------- registry


ModelBuilder = Callable[[int, int], nn.Module]

MODEL_BUILDERS: dict[str, ModelBuilder] = {
    "digits_cnn": lambda num_classes, width: DigitsCNN(num_classes, width),
    "resnet20": lambda num_classes, width: ResNetCifar(3, num_classes, width),
    "vgg_small": lambda num_classes, width: VGGSmall(num_classes, width),
    "vgg_small_lqnet": lambda num_classes, width: VGGSmall(num_classes, width, single_linear=True),
    "resnet18": lambda num_classes, width: ResNetImageNet([2, 2, 2, 2], num_classes, width),
    "resnet34": lambda num_classes, width: ResNetImageNet([3, 4, 6, 3], num_classes, width),
}

MODEL_NAMES: list[str] = list(MODEL_BUILDERS)


def build_model(name: str, num_classes: int, *, width: int = 1, factory: str = "") -> nn.Module:
    """Build a zoo model by name, or call a user-named factory "pkg.module:function"(num_classes).

    The factory executes local code that the user named in the request; it is the user's own code on the
    user's own machine, never data received over the wire that is deserialized into code.
    """
    if num_classes <= 0:
        raise invalid("model.num_classes", f"must be positive, got {num_classes}")
    if width < 0:
        raise invalid("model.width", f"must be >= 0, got {width}")
    width = width or 1
    if factory:
        return _from_factory(factory, num_classes)
    builder = MODEL_BUILDERS.get(name)
    if builder is None:
        raise invalid("model.name", f"unknown model '{name}'; known: {', '.join(MODEL_NAMES)} (or set model.factory)")
    return builder(num_classes, width)


def _from_factory(factory: str, num_classes: int) -> nn.Module:
    module_name, sep, fn_name = factory.partition(":")
    if not sep or not module_name or not fn_name:
        raise invalid("model.factory", f"expected 'package.module:function', got '{factory}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise invalid("model.factory", f"cannot import module '{module_name}': {exc}") from exc
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise invalid("model.factory", f"'{module_name}' has no callable '{fn_name}'")
    model = fn(num_classes)
    if not isinstance(model, nn.Module):
        raise invalid("model.factory", f"'{factory}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
