"""Masked Fourier loss of the halves method and of the optional masked variant of IsoNet 1's mode.

Training targets carry their Fourier weights with them: ``y_true`` has shape
``(B, n, n, n, C)`` with channel 0 the target cube, channel 1 the weights of
the target term in the full unshifted ``fftn`` layout
(:func:`isonet.refine.fourier_weights.loss_weights`), and, with a
data-consistency term, channel 2 the network's input and channel 3 that
term's weights (``dc_weight`` x the input's measured region). The loss per cube is

``sum_k W(k) |P(k) - Y(k)|^2 / n^6  +  sum_k D(k) |P(k) - X(k)|^2 / n^6``

with ``P, Y, X`` the spectra of prediction, target and input; by Parseval
it equals the mean squared error when ``W = 1``. The spectra are real FFTs
(``n // 2 + 1`` columns along x; the inner columns count twice), half the work of full ones.
"""

import numpy as np

from isonet.devices import import_tensorflow

#: Channels of ``y_true``: target and its weights; + input and data-consistency weights.
TARGET_CHANNELS, DC_CHANNELS = 2, 4


def stack_targets(target, weights, inputs=None, dc_weights=None):
    """Pack targets and weights into ``y_true`` channels (last axis), float32.

    Parameters
    ----------
    target : ndarray, shape (B, n, n, n)
    weights : ndarray, shape (B, n, n, n) or (n, n, n)
        Target-term weights, full ``fftn`` layout.
    inputs, dc_weights : ndarray, optional
        The network's inputs ``(B, n, n, n)`` and the data-consistency weights, for the extra term.

    Returns
    -------
    ndarray of float32, shape (B, n, n, n, 2) or (B, n, n, n, 4)
    """
    parts = [target, np.broadcast_to(weights, target.shape)]
    if inputs is not None:
        parts += [inputs, np.broadcast_to(dc_weights, target.shape)]
    return np.stack(parts, axis=-1).astype(np.float32, copy=False)


def _column_multiplicity(n):
    """How often each ``rfft`` column stands for the full spectrum: 1 for k = 0 (and n/2), else 2."""
    counts = np.full(n // 2 + 1, 2.0, dtype=np.float32)
    counts[0] = 1.0
    if n % 2 == 0:
        counts[-1] = 1.0
    return counts


def masked_fourier_loss(n, data_consistency=False):
    """Keras loss ``f(y_true, y_pred) -> (B,)`` described in the module docstring.

    Parameters
    ----------
    n : int
        Edge of the training cubes.
    data_consistency : bool
        ``y_true`` has the input and data-consistency weights (4 channels).
    """
    tf = import_tensorflow()
    half = n // 2 + 1
    counts = tf.constant(_column_multiplicity(n))
    scale = float(n) ** 3

    def term(difference, weights):
        # TensorFlow has no gradient for rfft3d: a 2D real FFT over (y, x), then a 1D FFT over z
        # (moved last), layout (B, y, x-half, z); the weights follow the same transpose.
        spectrum = tf.signal.fft(tf.transpose(tf.signal.rfft2d(difference), (0, 2, 3, 1)))
        power = (tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))) / scale
        weights = tf.transpose(weights[..., :half], (0, 2, 3, 1)) * counts[:, None]
        return tf.reduce_sum(power * weights, axis=(1, 2, 3)) / scale

    def loss(y_true, y_pred):
        prediction = tf.cast(y_pred[..., 0], tf.float32)
        value = term(prediction - y_true[..., 0], y_true[..., 1])
        if data_consistency:
            value += term(prediction - y_true[..., 2], y_true[..., 3])
        return value

    loss.__name__ = "masked_fourier_dc" if data_consistency else "masked_fourier"
    return loss
