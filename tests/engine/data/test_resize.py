"""The one resize of prepared image stacks (engine/data/resize.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaug.engine.data.resize import resize_images
from xaug.store.errors import DataError


def test_resize_images_is_the_one_resize_of_prepared_stacks():
    ramp = np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (5, 64, 1))
    small = resize_images(ramp, 32, chunk=2)  # chunks do not change the result
    assert small.shape == (5, 32, 32) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, resize_images(ramp, 32))
    expected = torch.nn.functional.interpolate(torch.from_numpy(ramp[:1]).float().unsqueeze(1), size=(32, 32),
                                               mode="bilinear", antialias=True, align_corners=False)
    np.testing.assert_array_equal(small[0], expected.round()[0, 0].numpy().astype(np.uint8))
    assert resize_images(ramp, 64) is ramp  # already that size: untouched
    assert resize_images(np.zeros((0, 10, 10), np.uint8), 8).shape == (0, 8, 8)
    with pytest.raises(DataError, match="grey-scale images"):
        resize_images(np.zeros((4, 4, 3, 2), np.uint8), 8)
