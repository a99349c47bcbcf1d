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

Optionally (``time_head=u``, not in the seed) the output is an expectation over the
frames' times instead of a sigmoid: T logits per pixel, from the pixel's own frames and
the decoder's features, a softmax over them weights the frames, and the map is the
weighted mean of ``u``, the frames' times on the map's normalised scale (`TimeHead`). A
time to peak is an argmax over the frames; this head reads it as a soft argmax, in the
frames' time range by construction and between frames where the weights share
(docs/unet.md, "Time head").

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

__all__ = ["UNet", "TimeHead", "PRESETS", "DIVISOR", "count_parameters"]

#: Widths per preset: four encoder stages then the bottleneck.
PRESETS: dict[str, tuple[int, ...]] = {
    "paper": (64, 128, 256, 512, 1024),
    "small": (16, 32, 64, 128, 256),
}
#: Height and width of the input must be multiples of this (four 2x2 poolings).
DIVISOR = 16
#: `TimeHead`'s initial weight of a pixel's own frames in its logits. The input's scale
#: (`ctpmaps.nn.normalise`) is 0.0079 per HU, so a frame 1 HU below the peak starts with
#: 0.45 of its weight and the baseline of a 20 HU bolus with 1e-7 (at 20 instead, 0.04 per
#: baseline frame pulled a peak at 8 s of 22 frames 3.4 s late).
TIME_HEAD_GAIN = 100.0


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


class TimeHead(nn.Module):
    """A soft argmax over the frames: per pixel, T logits, their softmax over the frames,
    and the weighted mean of the frames' normalised times ``u``.

    The logits are a per-pixel linear map of the pixel's own T input frames (T x T, which
    can smooth the curve in time and sets how sharp the argmax is) plus a 1x1 convolution
    of the decoder's features (the spatial context). The first starts as
    `TIME_HEAD_GAIN` x the identity and the second at zero, so that an untrained head
    already reads each pixel's time to peak from its own frames, and training learns the
    corrections.

    Parameters
    ----------
    in_channels : int
        Decoder features in.
    times : sequence of float
        ``u``: the T input frames' times on the target's normalised scale (the time of the
        k-th frame after the first, divided by the target's range).
    """

    def __init__(self, in_channels: int, times: Sequence[float]) -> None:
        super().__init__()
        n = len(times)
        self.context = nn.Conv2d(in_channels, n, 1)
        self.frames = nn.Conv2d(n, n, 1, bias=False)
        with torch.no_grad():
            self.context.weight.zero_()
            self.context.bias.zero_()
            self.frames.weight.copy_(TIME_HEAD_GAIN * torch.eye(n).view(n, n, 1, 1))
        self.register_buffer("times", torch.tensor(list(times), dtype=torch.float32))

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) and the input (B, T, H, W) -> (B, 1, H, W), within ``times``."""
        logits = self.context(features).float() + self.frames(frames).float()
        w = torch.softmax(logits, dim=1)
        return (w * self.times.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)


def _check_times(times: Any, n_frames: int) -> tuple[float, ...]:
    try:
        u = tuple(float(v) for v in times)
    except (TypeError, ValueError):
        raise InputError("time_head", f"expected {n_frames} numbers, got {times!r}") from None
    if len(u) != n_frames or not all(0.0 <= v <= 1.0 for v in u):
        raise InputError(
            "time_head",
            f"expected one normalised time in [0, 1] per input frame ({n_frames}), got {times!r}",
        )
    return u


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
    time_head : sequence of float, optional
        The input frames' times on the target's normalised scale, one per frame: the output
        is then their mean weighted by a per-pixel softmax over the frames (`TimeHead`,
        for a time to peak) instead of a sigmoid. Needs ``out_channels=1``.

    Raises
    ------
    InputError
        A non-positive channel count, widths that are not 5 positive integers, a
        negative ``temporal``, or ``time_head`` not one time in [0, 1] per frame.

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
        time_head: Sequence[float] | None = None,
    ) -> None:
        in_channels = _check_positive("in_channels", in_channels)
        out_channels = _check_positive("out_channels", out_channels)
        feats = _check_features(features)
        if temporal != 0:
            temporal = _check_positive("temporal", temporal)
        times = None if time_head is None else _check_times(time_head, in_channels)
        if times is not None and out_channels != 1:
            raise InputError("time_head", f"expected out_channels=1, got {out_channels}")
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
        self.time_head = times
        self.head = TimeHead(feats[0], times) if times else nn.Conv2d(feats[0], out_channels, 1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``UNet(**net.config())`` rebuilds the architecture
        (``temporal`` and ``time_head`` only when there is one, so that the seed's
        architecture is described as before)."""
        config = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "features": list(self.features),
            "sigmoid": self.use_sigmoid,
        }
        if self.temporal:
            config["temporal"] = self.temporal
        if self.time_head:
            config["time_head"] = list(self.time_head)
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
            In [0, 1] with ``sigmoid=True``; within ``time_head``'s range with one.
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
        frames = x
        x = self.stem(x)
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for i in reversed(range(4)):
            x = self.decoders[i](x, skips[i])
        if self.time_head:
            return self.head(x, frames)
        x = self.head(x)
        return torch.sigmoid(x) if self.use_sigmoid else x


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
