"""The command line: python -m convpool validate / config."""

import subprocess
import sys

import numpy as np
import pytest

import convpool
from convpool.__main__ import main, validate


def test_validate_small_batch_agrees(capsys):
    assert validate(["--batch", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "input              (2, 1920, 1080, 3) float32" in out
    assert "(2, 384, 216, 16), 1200 parameters" in out
    assert "RESULT: convpool agrees" in out


def test_validate_reads_input_file(tmp_path, capsys):
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, size=(3, 50, 45, 3), dtype=np.uint8)
    path = tmp_path / "frames.npy"
    np.save(path, frames)
    assert validate(["--input", str(path), "--repeat", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "(3, 50, 45, 3) uint8" in out
    assert "(3, 10, 9, 16), 1200 parameters" in out
    convpool.set_num_threads(None)


def test_validate_fails_when_results_disagree(monkeypatch, capsys):
    """A kernel that is off by more than the tolerance must make validate exit 1."""
    real = convpool.Conv2D._call

    def off_by_a_little(self, x):
        y = real(self, x)
        y[0, 0, 0, 0] += 1e-2
        return y

    monkeypatch.setattr(convpool.Conv2D, "_call", off_by_a_little)
    assert validate(["--batch", "1", "--repeat", "1"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_validate_rejects_bad_arguments():
    with pytest.raises(SystemExit) as info:
        validate(["--batch", "0"])
    assert info.value.code == 2


def test_main_usage_and_config(capsys):
    assert main([]) == 2
    assert main(["config"]) == 0
    assert "simd_selected" in capsys.readouterr().out


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "convpool", "validate", "--batch", "1", "--repeat", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESULT: convpool agrees" in proc.stdout
