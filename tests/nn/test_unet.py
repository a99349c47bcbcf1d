"""The U-Net: shapes, parameter count, presets, argument checks."""

from __future__ import annotations

import pytest
import torch

from ctpmaps.errors import InputError
from ctpmaps.nn.unet import PRESETS, UNet, count_parameters


def test_paper_preset_has_about_31m_parameters():
    # 64..512 and a 1024 bottleneck: the classic U-Net count (31.04 M for 1 input channel).
    n = count_parameters(UNet(1))
    assert 30.5e6 < n < 31.5e6
    assert n == 31_036_481
    # frames as channels only change the first convolution: 64 * 9 weights per frame
    assert count_parameters(UNet(89)) - n == 88 * 64 * 9


def test_small_preset_is_16x_smaller():
    n = count_parameters(UNet(1, features=PRESETS["small"]))
    assert 1.8e6 < n < 2.1e6


@pytest.mark.parametrize("shape", [(2, 5, 32, 32), (1, 5, 64, 48), (3, 5, 16, 80)])
def test_output_shape_and_range(shape):
    torch.manual_seed(0)
    net = UNet(5, features=(4, 8, 8, 16, 16))
    with torch.no_grad():
        y = net(torch.randn(shape) * 3)
    assert y.shape == (shape[0], 1, *shape[2:])
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_logits_without_sigmoid_and_several_outputs():
    net = UNet(3, 2, features=(4, 4, 4, 4, 4), sigmoid=False).eval()
    y = net(torch.full((1, 3, 16, 16), 50.0))
    assert y.shape == (1, 2, 16, 16)
    assert UNet(**net.config()).config() == net.config()


def test_uses_average_pooling_and_transposed_convolutions():
    net = UNet(2, features=(4, 4, 4, 4, 4))
    kinds = {type(m).__name__ for m in net.modules()}
    assert "AvgPool2d" in kinds and "MaxPool2d" not in kinds
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules()) == 4
    convs = [m for m in net.modules() if type(m) is torch.nn.Conv2d]
    assert len(convs) == 19  # 9 blocks of two 3x3 convolutions + the 1x1 head
    assert convs[-1].kernel_size == (1, 1)


@pytest.mark.parametrize("hw", [(30, 32), (32, 40)])
def test_size_not_divisible_by_16_is_a_clear_error(hw):
    net = UNet(2, features=(4, 4, 4, 4, 4))
    with pytest.raises(InputError, match="divisible by 16"):
        net(torch.zeros(1, 2, *hw))


def test_wrong_number_of_frames():
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        UNet(3, features=(4, 4, 4, 4, 4))(torch.zeros(1, 4, 16, 16))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"in_channels": 2.5},
        {"in_channels": 2, "features": (4, 4, 4, 4)},
        {"in_channels": 2, "features": (4, 4, 0, 4, 4)},
        {"in_channels": 2, "features": "small"},
        {"in_channels": 2, "out_channels": 0},
        {"in_channels": 2, "temporal": -1},
        {"in_channels": 2, "temporal": 2.5},
        {"in_channels": 2, "time_head": [0.0]},
        {"in_channels": 2, "time_head": [0.0, 1.5]},
        {"in_channels": 2, "time_head": "ab"},
        {"in_channels": 2, "out_channels": 2, "time_head": [0.0, 0.5]},
    ],
)
def test_bad_arguments_fail_before_building(kwargs):
    with pytest.raises(InputError):
        UNet(**kwargs)


def test_temporal_stem_is_two_per_pixel_layers_before_the_first_stage():
    plain = UNet(22, features=(4, 8, 8, 16, 16))
    stem = UNet(22, features=(4, 8, 8, 16, 16), temporal=32)
    convs = [m for m in stem.stem.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (1, 1)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(22, 32), (32, 32)]
    # the stem's weights and batch norms; the first 3x3 convolution reads 32 features, not 22
    extra = 22 * 32 + 32 * 32 + 2 * 2 * 32 + (32 - 22) * 4 * 9
    assert count_parameters(stem) - count_parameters(plain) == extra
    # a pixel's features come from its own frames only: a change at one pixel moves the
    # stem's output there and nowhere else
    x = torch.randn(1, 22, 16, 16)
    y = x.clone()
    y[0, :, 5, 7] += 1.0
    stem.stem.eval()
    with torch.no_grad():
        moved = (stem.stem(y) - stem.stem(x)).abs().sum(1)[0]
    assert moved[5, 7] > 0 and float(moved.sum() - moved[5, 7]) == 0.0


def test_config_names_the_stem_only_when_there_is_one():
    assert "temporal" not in UNet(3, features=(4, 4, 4, 4, 4)).config()
    net = UNet(3, features=(4, 4, 4, 4, 4), temporal=8)
    assert net.config()["temporal"] == 8
    assert UNet(**net.config()).config() == net.config()


def _bolus(centre_s: torch.Tensor, times: torch.Tensor, height: float) -> torch.Tensor:
    """(H, W) bolus centres (s) -> (1, T, H, W) Gaussian curves of FWHM 8 s."""
    return height * torch.exp(-0.5 * ((times[:, None, None] - centre_s) / 3.4) ** 2)[None]


def test_untrained_time_head_reads_each_pixels_time_to_peak():
    # 22 frames every 2 s; time to peak on the [0, 50] s scale. Boluses peaking anywhere
    # between 8 and 30 s, on and between frames, 20 HU high (0.16 in the input's units)
    # over a baseline of 0.1: the head's own frames term reads their peak (the decoder's
    # term starts at zero), within a fifth of a frame interval, whatever the weights before it.
    times = torch.arange(22) * 2.0
    net = UNet(22, features=(4, 4, 4, 4, 4), time_head=(times / 50).tolist()).eval()
    centre = torch.linspace(8.0, 30.0, 16 * 16).view(16, 16)
    with torch.no_grad():
        ttp = net(0.1 + _bolus(centre, times, 0.16))[0, 0] * 50
    print("largest error of the untrained head (s):", float((ttp - centre).abs().max()))
    assert float((ttp - centre).abs().max()) < 0.4
    # an expectation over the frames' times: never outside them, however large the input
    with torch.no_grad():
        wild = net(50 * torch.randn(2, 22, 16, 16))
    assert float(wild.min()) >= 0.0 and float(wild.max()) <= float(times[-1] / 50) + 1e-6


def test_time_head_is_in_the_config_and_learns_from_the_decoder():
    u = [0.0, 0.1, 0.2, 0.3]
    net = UNet(4, features=(4, 4, 4, 4, 4), time_head=u)
    assert net.config()["time_head"] == pytest.approx(u)
    assert UNet(**net.config()).config() == net.config()
    assert "time_head" not in UNet(4, features=(4, 4, 4, 4, 4)).config()
    # the decoder's term starts at zero and has a gradient: training moves it
    x = torch.randn(2, 4, 16, 16)
    net(x).mean().backward()
    assert float(net.head.context.weight.detach().abs().sum()) == 0.0
    assert float(net.head.context.weight.grad.abs().sum()) > 0.0
