"""Train a small CNN on scikit-learn's bundled 8x8 digits, with convpool only.

    pip install scikit-learn matplotlib        # the data (no download) and the plot
    python examples/train_digits.py            # about 10-20 s on 2 cores

Conv2D(16, 3, same, relu) -> MaxPool2D(2) -> Conv2D(32, 3, same, relu) ->
MaxPool2D(2) -> Flatten -> Dense(10), trained with Adam on softmax
cross-entropy.  Prints the per-epoch loss and accuracy, the test accuracy, and
writes the loss curve to ``train_digits_loss.png`` (``--plot PATH``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import convpool
from convpool import Adam, Conv2D, Dense, Flatten, MaxPool2D, Sequential


def load_digits_split(seed: int, test_fraction: float = 0.2):
    """The 1797 digits as (N, 8, 8, 1) float32 in [0, 1], split into train and test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def make_model(seed: int) -> Sequential:
    return Sequential(
        [
            Conv2D(16, 3, padding="same", activation="relu", seed=seed),
            MaxPool2D(2),
            Conv2D(32, 3, padding="same", activation="relu", seed=seed + 1),
            MaxPool2D(2),
            Flatten(),
            Dense(10, seed=seed + 2),
        ],
        input_shape=(None, 8, 8, 1),
    )


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="train_digits_loss.png", help="PNG of the loss curve ('' for none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test = load_digits_split(args.seed)
    model = make_model(args.seed)
    model.summary()
    started = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=Adam(args.learning_rate), validation_data=(x_test, y_test),
        seed=args.seed, verbose=not args.quiet,
    )
    seconds = time.perf_counter() - started
    test_loss, test_acc = model.evaluate(x_test, y_test)
    print(f"trained {args.epochs} epochs on {len(x_train)} images in {seconds:.1f} s "
          f"({convpool.get_num_threads()} threads)")
    print(f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f} on {len(x_test)} images")
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(matplotlib is not installed: no plot)")
        else:
            epochs = np.arange(1, args.epochs + 1)
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(epochs, history["loss"], label="train loss")
            ax.plot(epochs, history["val_loss"], label="test loss")
            ax.set_xlabel("epoch")
            ax.set_ylabel("softmax cross-entropy")
            ax.set_yscale("log")
            ax.set_title(f"convpool CNN on 8x8 digits: test accuracy {test_acc:.3f}")
            ax.legend()
            fig.tight_layout()
            fig.savefig(args.plot, dpi=100)
            print(f"loss curve written to {args.plot}")
    return test_acc


if __name__ == "__main__":
    main()
