"""Datasets: CIFAR pickles written by the test, errors that say what was expected where, on-device augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmbq_worker.engine.data import (
    DataOptions,
    SplitArrays,
    TensorDataSource,
    load_data,
    resolve_cifar_folder,
)
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import write_image_folder


def write_tiny_cifar(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """A cifar-10-batches-py folder of random uint8 images in the standard pickle layout."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [b"x.png"] * per_batch,
        }
        with (folder / name).open("wb") as fh:
            pickle.dump(entry, fh)
    return folder


def opts(name: str, path: str = "", **kw: object) -> DataOptions:
    base: dict[str, object] = dict(name=name, path=path, augment=False, train_limit=0, test_limit=0, num_workers=0,
                                   image_size=0, seed=0, device=torch.device("cpu"), channels_last=False)
    base.update(kw)
    return DataOptions(**base)  # type: ignore[arg-type]


def test_cifar_pickles_load_from_the_parent_or_the_folder_itself(tmp_path: Path) -> None:
    folder = write_tiny_cifar(tmp_path)
    for path in (tmp_path, folder):
        data = load_data(opts("cifar10", str(path)))
        assert (data.train_size, data.test_size, data.num_classes) == (100, 20, 10)
    with (folder / "data_batch_1").open("rb") as fh:
        first = pickle.load(fh, encoding="bytes")
    x, y = next(load_data(opts("cifar10", str(tmp_path))).eval_batches("train", 4))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == first[b"labels"][:4]


def test_missing_cifar_names_the_expected_folder(tmp_path: Path) -> None:
    with pytest.raises(WorkerError) as err:
        load_data(opts("cifar10", str(tmp_path / "nowhere")))
    assert err.value.code == pb.ERROR_CODE_DATA
    assert "cifar-10-batches-py" in err.value.message and "nowhere" in err.value.message


def test_missing_or_malformed_pickle_names_the_file(tmp_path: Path) -> None:
    folder = write_tiny_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(WorkerError) as err:
        load_data(opts("cifar10", str(tmp_path)))
    assert "data_batch_3" in err.value.message and err.value.code == pb.ERROR_CODE_DATA
    with (folder / "data_batch_3").open("wb") as fh:
        pickle.dump({b"data": np.zeros((5, 100), dtype=np.uint8), b"labels": [0] * 5}, fh)
    with pytest.raises(WorkerError) as err:
        load_data(opts("cifar10", str(tmp_path)))
    assert "data_batch_3" in err.value.message and "(N, 3072)" in err.value.message
    other = write_tiny_cifar(tmp_path / "other")
    (other / "test_batch").write_bytes(b"garbage")
    with pytest.raises(WorkerError) as err:
        load_data(opts("cifar10", str(other)))
    assert "test_batch" in err.value.message and "not a readable" in err.value.message


def test_cifar_path_empty_without_env_says_what_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    with pytest.raises(WorkerError) as err:
        resolve_cifar_folder("")
    assert err.value.field == "dataset.path" and "cifar-10-batches-py" in err.value.message


def test_imagefolder_errors_name_the_expected_layout(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    (tmp_path / "train").mkdir()
    with pytest.raises(WorkerError) as err:
        load_data(opts("imagefolder", str(tmp_path)))
    assert err.value.code == pb.ERROR_CODE_DATA and "train" in err.value.message


def test_imagefolder_without_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(WorkerError) as err:
        load_data(opts("imagefolder", str(tmp_path / "missing")))
    assert err.value.code == pb.ERROR_CODE_DATA


def test_digits_split_is_fixed_and_limits_cut_it() -> None:
    a = load_data(opts("digits", seed=1))
    b = load_data(opts("digits", seed=2, train_limit=100, test_limit=50))
    assert (a.train_size, a.test_size) == (1437, 360)
    assert (b.train_size, b.test_size) == (100, 50)
    xa, ya = next(a.eval_batches("test", 8))
    xb, yb = next(b.eval_batches("test", 8))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # the split does not depend on the run seed


def test_unknown_dataset_names_the_field() -> None:
    with pytest.raises(WorkerError) as err:
        load_data(opts("mnist"))
    assert err.value.field == "dataset.name"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6))
def test_augmented_batch_is_a_padded_crop_of_each_sample_maybe_flipped(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (8, 3, 6, 5), dtype=np.uint8)
    split = SplitArrays(images, np.zeros(8, dtype=np.int64))
    src = TensorDataSource(split, split, num_classes=10, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                           pixel_max=1.0, augment=True, pad=2, flip=True, device=torch.device("cpu"), seed=seed,
                           channels_last=False)
    idx = torch.from_numpy(rng.integers(0, 8, n))
    offsets, flip = src.epoch_draws(int(rng.integers(0, 100)), n)
    out = src.augmented(idx, offsets, flip).numpy()
    for k, i in enumerate(idx.tolist()):
        padded = np.pad(images[i], ((0, 0), (2, 2), (2, 2))).astype(np.float32)
        candidates = [padded[:, r : r + 6, c : c + 5] for r in range(5) for c in range(5)]
        candidates += [cand[:, :, ::-1] for cand in candidates]
        assert any(np.array_equal(out[k], cand) for cand in candidates)


def test_an_epoch_resumed_mid_way_sees_the_same_augmentation_and_the_next_epoch_other_draws() -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 3, 6, 5), dtype=np.uint8)
    split = SplitArrays(images, np.arange(40, dtype=np.int64))
    src = TensorDataSource(split, split, num_classes=10, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                           pixel_max=1.0, augment=True, pad=2, flip=True, device=torch.device("cpu"), seed=5,
                           channels_last=False)
    order = torch.from_numpy(rng.permutation(40))
    whole = list(src.train_batches(order, 0, 8, epoch=2))
    assert len(whole) == 5
    for k, (x, y) in enumerate(whole):
        assert torch.equal(y, order[8 * k : 8 * (k + 1)])
    resumed = list(src.train_batches(order, 3, 8, epoch=2))
    assert len(resumed) == 2
    for (x, y), (xr, yr) in zip(whole[3:], resumed):
        assert torch.equal(x, xr) and torch.equal(y, yr)
    other = list(src.train_batches(order, 0, 8, epoch=3))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(whole, other))  # epoch 3 draws again
    assert list(src.train_batches(order, 5, 8, epoch=2)) == []


def test_imagefolder_reads_class_folders_with_random_resized_crops(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"train": 3, "val": 2}, lambda i: (40 + 7 * i, 50))
    data = load_data(opts("imagefolder", str(tmp_path), image_size=32))
    assert (data.num_classes, data.train_size, data.test_size) == (2, 6, 4)
    x, y = next(data.train_batches(torch.arange(6), 0, 4, 0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and set(y.tolist()) <= {0, 1}
    xs = [b[0] for b in data.eval_batches("test", 3)]
    assert [t.shape[0] for t in xs] == [3, 1]
