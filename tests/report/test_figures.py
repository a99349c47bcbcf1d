"""Report figures drawn from odd but legal inputs."""

import numpy as np

from ctpmaps.report.figures import input_locations_figure


def test_input_voxels_outside_the_crop_are_left_unmarked():
    """An AIF or VOF voxel outside the brain's crop (found on a registered moving study at
    64 x 64) must not break the figure: the figure shows the crop, and marks what lies in
    it."""
    image = np.random.default_rng(0).normal(40, 10, (64, 64, 4)).astype(np.float32)
    aif = np.array([[30, 30, 1], [62, 43, 1]])  # the second one lies outside the crop
    vof = np.array([[5, 5, 2]])  # outside the crop as well
    png = input_locations_figure(
        image, np.eye(4), aif_voxels=aif, vof_voxels=vof, crop=(slice(10, 54), slice(2, 44))
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
