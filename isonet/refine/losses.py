"""Masked Fourier loss of the halves method.

Training targets carry their Fourier weights with them: ``y_true`` has shape
``(B, n, n, n, 2)`` with channel 0 the target cube and channel 1 the weights
in the full unshifted ``fftn`` layout
(:func:`isonet.refine.fourier_weights.loss_weights`). The loss per cube is

``sum_k W(k) |P(k) - Y(k)|^2 / n^6``

with ``P, Y`` the spectra of prediction and target; by Parseval
it equals the mean squared error when ``W = 1``. The spectra are real FFTs
(``n // 2 + 1`` columns along x; the inner columns count twice), half the work of full ones.
"""

import numpy as np

from isonet.devices import import_tensorflow


def stack_targets(target, weights):
    """Pack targets and their weights into ``y_true`` channels (last axis), float32.

    Parameters
    ----------
    target : ndarray, shape (B, n, n, n)
    weights : ndarray, shape (B, n, n, n) or (n, n, n)
        Per-frequency weights, full ``fftn`` layout.

    Returns
    -------
    ndarray of float32, shape (B, n, n, n, 2)
    """
    return np.stack([target, np.broadcast_to(weights, target.shape)], axis=-1).astype(np.float32, copy=False)


def _column_multiplicity(n):
    """How often each ``rfft`` column stands for the full spectrum: 1 for k = 0 (and n/2), else 2."""
    counts = np.full(n // 2 + 1, 2.0, dtype=np.float32)
    counts[0] = 1.0
    if n % 2 == 0:
        counts[-1] = 1.0
    return counts


def masked_fourier_loss(n):
    """Keras loss ``f(y_true, y_pred) -> (B,)`` described in the module docstring.

    Parameters
    ----------
    n : int
        Edge of the training cubes.
    """
    tf = import_tensorflow()
    half = n // 2 + 1
    counts = tf.constant(_column_multiplicity(n))
    scale = float(n) ** 3

    def loss(y_true, y_pred):
        # TensorFlow has no gradient for rfft3d: a 2D real FFT over (y, x), then a 1D FFT over z
        # (moved last), layout (B, y, x-half, z); the weights follow the same transpose.
        difference = tf.cast(y_pred[..., 0], tf.float32) - y_true[..., 0]
        spectrum = tf.signal.fft(tf.transpose(tf.signal.rfft2d(difference), (0, 2, 3, 1)))
        power = (tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))) / scale
        weights = tf.transpose(y_true[..., 1][..., :half], (0, 2, 3, 1)) * counts[:, None]
        return tf.reduce_sum(power * weights, axis=(1, 2, 3)) / scale

    loss.__name__ = "masked_fourier"
    return loss
