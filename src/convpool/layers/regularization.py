"""Regularization layers: Dropout."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import _random
from .._checks import check_number, compute_dtype
from .base import Layer, Shape, ShapeLike


class Dropout(Layer):
    """Keras's inverted dropout: in training, each input is zeroed with probability
    ``rate`` and the others are scaled by ``1 / (1 - rate)``; in inference the
    input passes unchanged.

    Parameters
    ----------
    rate : float
        In [0, 1).
    noise_shape : tuple, optional
        The mask's shape, broadcast against the input (None entries take the
        input's size), e.g. ``(None, 1, 1, None)`` drops whole channels of an
        NHWC batch.
    seed : int, optional
        Seed of the masks' generator (``numpy.random.default_rng``): the same
        seed gives the same sequence of masks.
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5, seed=0)
    >>> x = np.ones((2, 4), np.float32)
    >>> layer(x) is x                      # inference: the input itself
    True
    >>> y = layer.forward(x, training=True)
    >>> sorted(set(y.ravel().tolist()))    # kept values are scaled by 2
    [0.0, 2.0]
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, *,
                 name: str | None = None, input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, seed=seed, input_shape=input_shape)
        self.rate = check_number(rate, "rate", low=0, high=1, high_open=True)
        if noise_shape is not None:
            if not isinstance(noise_shape, (tuple, list)) or not all(
                    d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                  and d >= 0) for d in noise_shape):
                raise TypeError(f"noise_shape must be a tuple of ints or None, got {noise_shape!r}")
            noise_shape = tuple(None if d is None else int(d) for d in noise_shape)
        self.noise_shape: tuple[int | None, ...] | None = noise_shape
        self._rng = _random.generator(seed)
        self._mask: NDArray[Any] | None = None

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if self.noise_shape is not None and len(self.noise_shape) != len(input_shape):
            raise ValueError(f"noise_shape {self.noise_shape} must have the input's rank, got "
                             f"input shape {input_shape}")
        return input_shape

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        dtype = compute_dtype(x, "x")
        return x if x.dtype == dtype else x.astype(dtype)

    def _activate(self, z: NDArray[Any], training: bool) -> NDArray[Any]:
        self._mask = None
        if not training or self.rate == 0:
            return z
        shape = z.shape if self.noise_shape is None else tuple(
            z.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        try:
            np.broadcast_shapes(shape, z.shape)
        except ValueError:
            raise ValueError(f"noise_shape {self.noise_shape} does not broadcast against the "
                             f"input shape {z.shape}") from None
        dtype = z.dtype
        keep = self._rng.random(shape) >= self.rate
        self._mask = keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.rate))
        out: NDArray[Any] = z * self._mask
        return out

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return (grad_out if self._mask is None else grad_out * self._mask), []

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate, "noise_shape": None if self.noise_shape is None
                else list(self.noise_shape), "seed": self.seed, "name": self.name}
