"""The seed study's U-Net: frames of one slice as channels in, one perfusion map out.

Four encoder stages of two 3x3 convolutions (batch norm, ReLU), each followed by 2x2
average pooling (the features are dense, not sparse, so max pooling would discard most of
them); a bottleneck of the same block; four decoder stages that up-sample by 2 with a 2x2
transposed convolution, concatenate the encoder's skip and apply the block; a 1x1
convolution and a sigmoid. With the paper's widths ``(64, 128, 256, 512, 1024)`` it has
about 31 M parameters.

Optionally (``temporal=F``, not in the seed) a *temporal stem* comes first: two 1x1
convolutions (batch norm, ReLU) that turn each pixel's T frames into F features before the
first 3x3 convolution. Without it the first convolution must squeeze every pixel's curve
into the first stage's width (8-16 channels on a CPU) by one linear map; timing features
such as the time to peak need more than that (docs/unet.md, "Temporal stem").

The network is configured by its constructor arguments alone, checked before anything is
built (MONAI's ``BasicUNet`` pattern); `PRESETS` names the widths of the paper and of a
small CPU model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InputError

__all__ = ["UNet", "PRESETS", "DIVISOR", "count_parameters"]

#: Widths per preset: four encoder stages then the bottleneck.
PRESETS: dict[str, tuple[int, ...]] = {
    "paper": (64, 128, 256, 512, 1024),
    "small": (16, 32, 64, 128, 256),
}
#: Height and width of the input must be multiples of this (four 2x2 poolings).
DIVISOR = 16


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by batch norm and ReLU; keeps H and W.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class TemporalStem(nn.Sequential):
    """Per-pixel 1x1 convolutions over the frames (batch norm, ReLU): T -> F -> F.

    Parameters
    ----------
    in_channels : int
        Frames T.
    width : int
        Features F per pixel.
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Decoder stage: 2x2 transposed convolution (x2), skip concatenation, `ConvBlock`.

    Parameters
    ----------
    in_channels : int
        Channels of the coarser input.
    skip_channels : int
        Channels of the encoder's skip at the finer resolution.
    out_channels : int
        Channels out.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, skip_channels, 2, stride=2)
        self.block = ConvBlock(2 * skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) and (B, skip, 2H, 2W) -> (B, out, 2H, 2W)."""
        return self.block(torch.cat([skip, self.up(x)], dim=1))


def _check_features(features: Any) -> tuple[int, ...]:
    try:
        feats = tuple(int(f) for f in features)
    except (TypeError, ValueError):
        raise InputError("features", f"expected 5 positive integers, got {features!r}") from None
    if len(feats) != 5 or any(f < 1 for f in feats) or feats != tuple(features):
        raise InputError(
            "features",
            f"expected 5 positive integers (4 encoder stages, bottleneck), got {features!r}",
        )
    return feats


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(name, f"expected a positive integer, got {value!r}")
    return value


class UNet(nn.Module):
    """U-Net from T frames of one slice to one map in [0, 1].

    Parameters
    ----------
    in_channels : int
        Number of input frames T (frames are the channels).
    out_channels : int, optional
        Maps out (1: one model per map, as the seed).
    features : sequence of 5 int, optional
        Widths of the four encoder stages and of the bottleneck; the decoder mirrors them.
        ``PRESETS["paper"]`` (default, ~31 M parameters) or ``PRESETS["small"]``.
    sigmoid : bool, optional
        End with a sigmoid (outputs in [0, 1], as the seed); False returns logits.
    temporal : int, optional
        Width F of a `TemporalStem` before the first stage (0, the default and the seed's
        architecture: none).

    Raises
    ------
    InputError
        A non-positive channel count, widths that are not 5 positive integers or a
        negative ``temporal``.

    Examples
    --------
    >>> import torch
    >>> net = UNet(5, features=PRESETS["small"]).eval()
    >>> net(torch.zeros(2, 5, 64, 48)).shape
    torch.Size([2, 1, 64, 48])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 1,
        *,
        features: Sequence[int] = PRESETS["paper"],
        sigmoid: bool = True,
        temporal: int = 0,
    ) -> None:
        in_channels = _check_positive("in_channels", in_channels)
        out_channels = _check_positive("out_channels", out_channels)
        feats = _check_features(features)
        if temporal != 0:
            temporal = _check_positive("temporal", temporal)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.features = feats
        self.use_sigmoid = bool(sigmoid)
        self.temporal = temporal
        self.stem = TemporalStem(in_channels, temporal) if temporal else nn.Identity()
        widths = (temporal or in_channels, *feats[:4])
        self.encoders = nn.ModuleList(ConvBlock(widths[i], widths[i + 1]) for i in range(4))
        self.pool = nn.AvgPool2d(2)
        self.bottleneck = ConvBlock(feats[3], feats[4])
        self.decoders = nn.ModuleList(Up(feats[i + 1], feats[i], feats[i]) for i in range(4))
        self.head = nn.Conv2d(feats[0], out_channels, 1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``UNet(**net.config())`` rebuilds the architecture
        (``temporal`` only when there is a stem, so that the seed's architecture is
        described as before)."""
        config = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "features": list(self.features),
            "sigmoid": self.use_sigmoid,
        }
        if self.temporal:
            config["temporal"] = self.temporal
        return config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of slices.

        Parameters
        ----------
        x : Tensor, shape (B, T, H, W)
            Normalised frames (see `ctpmaps.nn.normalise`); H and W multiples of 16.

        Returns
        -------
        Tensor, shape (B, out_channels, H, W)
            In [0, 1] with ``sigmoid=True``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                "x", f"expected shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[2] % DIVISOR or x.shape[3] % DIVISOR:
            raise InputError(
                "x",
                f"expected H and W divisible by {DIVISOR}, got {tuple(x.shape[2:])} "
                "(pad the slice, as `predict_maps` does)",
            )
        x = self.stem(x)
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for i in reversed(range(4)):
            x = self.decoders[i](x, skips[i])
        x = self.head(x)
        return torch.sigmoid(x) if self.use_sigmoid else x


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
