"""The learning-rate schedule of refine (isonet.refine.schedule)."""

import numpy as np
import pytest

from isonet.refine.schedule import learning_rate_at


def test_cosine_from_initial_to_final():
    rates = [learning_rate_at(i, 9, 0.002, 0.0002) for i in range(1, 10)]
    assert rates[0] == pytest.approx(0.002) and rates[-1] == pytest.approx(0.0002)
    assert rates[4] == pytest.approx(0.0011)  # the middle iteration: half way
    assert np.all(np.diff(rates) < 0)
    # Half a cosine: symmetric about the middle.
    np.testing.assert_allclose(np.array(rates) - 0.0011, -(np.array(rates[::-1]) - 0.0011), atol=1e-12)


def test_constant_and_edge_cases():
    assert [learning_rate_at(i, 5, 0.001, 0.001) for i in range(1, 6)] == [pytest.approx(0.001)] * 5
    assert learning_rate_at(1, 1, 0.003, 0.0003) == pytest.approx(0.003)  # a single iteration: the initial rate
    assert learning_rate_at(12, 10, 0.003, 0.0003) == pytest.approx(0.0003)  # resumed past the end
