"""The learning rate of each refine iteration: constant (IsoNet 1) or a cosine decay over the run.

Every iteration trains with a fresh Adam optimizer (IsoNet 1's scheme) at the
rate of its iteration; the rate is a function of the iteration number alone,
so that a run resumed with ``--continue_from`` follows the same schedule.
"""

import math


def learning_rate_at(iteration, iterations, initial, final):
    """Learning rate of iteration ``iteration`` (1-based) of ``iterations``.

    Half a cosine from ``initial`` at the first iteration down to ``final`` at
    the last (``final == initial``: constant).

    Parameters
    ----------
    iteration, iterations : int
        ``1 <= iteration``; iterations past ``iterations`` get ``final``.
    initial, final : float

    Returns
    -------
    float
    """
    if iterations <= 1:
        return float(initial)
    progress = min(max(iteration - 1, 0) / (iterations - 1), 1.0)
    return float(final + (initial - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))
