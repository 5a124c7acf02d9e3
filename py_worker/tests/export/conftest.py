"""Fixtures of the export tests: a real run folder (digits_run.py) and its exported file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.export.digits_run import DigitsRun, make_digits_run

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> DigitsRun:
    return make_digits_run(tmp_path_factory.mktemp("runs") / "digits-w2a2", epochs=3)


@pytest.fixture(scope="session")
def digits_file(digits_run: DigitsRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dmbq_worker.export import export_run

    out = tmp_path_factory.mktemp("export") / "digits.dmbq"
    export_run(digits_run.dir, out)
    return out


@pytest.fixture(scope="session")
def digits_run_max_abs(tmp_path_factory: pytest.TempPathFactory) -> DigitsRun:
    """The min-max baseline: scales that follow max|w|, the min-max tables."""
    return make_digits_run(tmp_path_factory.mktemp("runs") / "digits-w2a2-max-abs", epochs=2, max_abs=True)
