"""Static typing: ``mypy --strict`` on the installed package, stubtest on the extension.

Both run mypy in a subprocess on the package that ``import convpool`` finds
(the installed wheel in CI, where the checkout's ``src/`` is not on sys.path),
from an empty temporary directory with an empty configuration, so neither the
checkout nor a user's mypy configuration changes the result.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import convpool

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed"
)

TIMEOUT = 300  # seconds; both runs take a few seconds
ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")

# Type-checked, never run: the public API as a --strict client uses it.  Each
# assert_type pins a promised type; each `type: ignore[...]` line must be an
# error, or --strict (warn_unused_ignores) reports the unused ignore.
CLIENT = textwrap.dedent(
    '''
    from __future__ import annotations

    from typing import Any

    import numpy as np
    from numpy.typing import NDArray
    from typing_extensions import assert_type

    import convpool
    from convpool import reference

    F = NDArray[np.floating[Any]]
    x = np.zeros((2, 8, 8, 3), np.float32)
    k = np.ones((3, 3, 3, 4), np.float32)

    y = convpool.conv2d(x, k, np.zeros(4, np.float32), strides=(1, 2), padding="same",
                        dilation_rate=[1, 1], groups=1, activation="relu")
    assert_type(y, F)
    assert_type(reference.conv2d(x.tolist(), k, padding=((1, 0), (0, 1))), F)
    assert_type(convpool.max_pool2d(x, 2, strides=np.array([2, 1]), padding=1), F)
    assert_type(convpool.avg_pool2d(x, (2, 2), count_include_pad=True,
                                    out=np.empty((2, 4, 4, 3), np.float32)), F)
    gx, gk, gb = convpool.conv2d_backward(np.ones((2, 8, 4, 4), np.float32), x, k,
                                          strides=(1, 2), padding="same", input_grad=False)
    assert_type(gx, F | None)
    assert_type(gk, F)
    assert_type(convpool.max_pool2d_backward(np.ones((2, 4, 4, 3)), x, 2), F)
    assert_type(reference.avg_pool2d_backward(np.ones((2, 4, 4, 3)), x, 2), F)

    model = convpool.Sequential(
        [convpool.Conv2D(4, 3, activation="relu", seed=0), convpool.MaxPool2D(2),
         convpool.Flatten(), convpool.Dense(10, dtype=np.float32)],
        input_shape=(None, 8, 8, 3),
    )
    assert_type(model.compute_output_shape((None, 8, 8, 3)), tuple[int | None, ...])
    assert_type(model(x), NDArray[Any])
    history = model.fit(x, np.zeros(2, np.int64), epochs=1, batch_size=2,
                        optimizer=convpool.SGD(0.1, momentum=0.9), verbose=False)
    assert_type(history, convpool.callbacks.History)
    assert_type(history.history, dict[str, list[Any]])
    assert_type(model.summary_table().total_params, int)
    assert_type(convpool.load("model.npz"), convpool.Sequential | convpool.Model)
    layer = convpool.Conv2D.from_config(convpool.Conv2D(4, 3).get_config())
    assert_type(layer, convpool.Conv2D)
    assert_type(layer.kernel, NDArray[Any] | None)
    assert_type(layer.backward(np.ones((2, 6, 6, 4))), NDArray[Any] | None)
    convpool.Adam(1e-3).apply(model.weights, model.grads)
    assert_type(convpool.softmax_cross_entropy(np.zeros((2, 3)), [0, 1]), tuple[float, F])
    assert_type(convpool.get_num_threads(), int)
    convpool.set_num_threads(None)
    assert_type(convpool.get_workspace_limit(), int)
    assert_type(convpool.show_config(), dict[str, Any])

    convpool.conv2d(x, k, padding=1.5)  # type: ignore[arg-type]
    convpool.max_pool2d(x, pool_size="2")  # type: ignore[arg-type]
    convpool.MaxPool2D(2).forward(x, training=True).no_such_attribute  # type: ignore[attr-defined]
    '''
)


def _mypy(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    env["MYPY_FORCE_COLOR"] = "0"
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_mypy_strict_on_installed_package(tmp_path):
    """``mypy --strict`` on every module of the installed package (its .py and
    the extension's .pyi) and on a client of its public API: no error."""
    package_dir = Path(convpool.__file__).parent
    for name in ("py.typed", "_kernels/_core.pyi"):
        assert (package_dir / name).is_file(), f"{name} is missing from {package_dir}"
    modules = [*package_dir.rglob("*.py"), *package_dir.rglob("*.pyi")]
    (tmp_path / "convpool_typing_client.py").write_text(CLIENT)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")  # shields the run from any user or project config
    result = _mypy(
        ["mypy", "--config-file", str(config), "--strict", "--cache-dir", str(tmp_path / "cache"),
         "-p", "convpool", "-m", "convpool_typing_client"],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mypy --strict failed on {package_dir}:\n{output}"
    # Every module of the package was checked (the extension through its .pyi), and the client.
    assert f"no issues found in {len(modules) + 1} source files" in result.stdout, output


def test_stubtest_agrees_with_extension(tmp_path):
    """``mypy.stubtest``: _core.pyi matches what the compiled module really defines."""
    result = _mypy(
        ["mypy.stubtest", "convpool._kernels._core", "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"stubtest found differences:\n{output}"
