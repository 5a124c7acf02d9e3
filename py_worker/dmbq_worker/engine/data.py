"""Datasets: digits, CIFAR-10 (the python pickles), synthetic CIFAR-shaped tensors, and ImageFolder trees.

CIFAR-sized data lives whole on the training device as uint8, and an epoch is one gather at its start that also does
the augmentation (4-pixel pad + random crop + horizontal flip; draws a function of seed and epoch), so the GPU never
waits for a loader and a step only slices it. ImageFolder
trees go through a torch DataLoader (PIL decode, random-resized crop + flip in workers).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

from dmbq_worker.distributed.runtime import owns_eval_batch, rank_slice
from dmbq_worker.errors import data_error, invalid

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_MEAN = (0.305,)  # of the 0..16 pixel values divided by 16
DIGITS_STD = (0.376,)

DATASET_NAMES: list[str] = ["digits", "cifar10", "imagefolder", "synthetic"]

Batch = tuple[torch.Tensor, torch.Tensor]


class DataSource(Protocol):
    """What the training loop needs from a dataset."""

    num_classes: int
    train_size: int
    test_size: int

    def train_batches(self, order: torch.Tensor, start_step: int, batch_size: int, epoch: int) -> Iterator[Batch]:
        """Batches of the training split in `order` (drop-last), from batch `start_step` on, augmented (epoch
        `epoch`'s draws: a resumed epoch sees the same augmentation)."""
        ...

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        """The whole split in order, not augmented (the last batch may be short)."""
        ...

    def aug_state(self) -> torch.Tensor | None:
        """The augmentation RNG state (for checkpoints), or None where augmentation has no own generator."""
        ...

    def set_aug_state(self, state: torch.Tensor) -> None: ...


# ---------------------------------------------------------------- in-memory tensors (digits, CIFAR, synthetic)


@dataclass
class SplitArrays:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


class TensorDataSource:
    """A dataset held whole on `device` as uint8; batches are gathered and augmented there."""

    def __init__(
        self,
        train: SplitArrays,
        test: SplitArrays,
        *,
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        pixel_max: float,
        augment: bool,
        pad: int,
        flip: bool,
        device: torch.device,
        seed: int,
        channels_last: bool,
    ) -> None:
        self.device = device
        self.flip = flip
        self.num_classes = num_classes
        self.train_size = int(train.labels.shape[0])
        self.test_size = int(test.labels.shape[0])
        self.augment = augment
        self.pad = pad if augment else 0
        self.channels_last = channels_last
        self._train_x = torch.from_numpy(np.ascontiguousarray(train.images)).to(device)
        self._train_y = torch.from_numpy(train.labels.astype(np.int64)).to(device)
        self._test_x = torch.from_numpy(np.ascontiguousarray(test.images)).to(device)
        self._test_y = torch.from_numpy(test.labels.astype(np.int64)).to(device)
        if self.pad:
            # padded once, so that a random crop is a pure gather
            self._train_padded = torch.nn.functional.pad(self._train_x, (pad, pad, pad, pad))
        c = self._train_x.shape[1]
        self._mean = (torch.tensor(mean, device=device) * pixel_max).view(1, c, 1, 1)
        self._inv_std = (1.0 / (torch.tensor(std, device=device) * pixel_max)).view(1, c, 1, 1)
        self._seed = seed
        h, w = self._train_x.shape[2:]
        self._rows = torch.arange(h, device=device)
        self._cols = torch.arange(w, device=device)
        self._chan = torch.arange(c, device=device).view(1, c, 1, 1)

    def aug_state(self) -> torch.Tensor | None:
        return None  # the draws are a function of (seed, epoch): nothing to save

    def set_aug_state(self, state: torch.Tensor) -> None:
        return None  # a checkpoint of an older version carries one: the draws no longer depend on it

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        out = (x.float() - self._mean) * self._inv_std
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def epoch_draws(self, epoch: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop offsets (2, n) and flips (n,) of the first n positions of epoch `epoch`: a function of (seed, epoch)
        alone, so a resumed epoch, and every rank of a job (which draws for the global batch), sees the same."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed((self._seed + 0x5EED) * 1_000_003 + epoch)
        offsets = torch.randint(0, 2 * self.pad + 1, (2, n), device=self.device, generator=gen)
        flip = torch.randint(0, 2, (n,), device=self.device, generator=gen).bool() & self.flip
        return offsets, flip

    def augmented(self, idx: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Pad + crop at `offsets` (2, B) + flip where `flip` (B,) of the samples `idx` (B,), as a single gather."""
        b = idx.shape[0]
        h, w = self._rows.shape[0], self._cols.shape[0]
        rows = offsets[0].unsqueeze(1) + self._rows  # (B, H)
        cols = torch.where(flip.unsqueeze(1), (w - 1) - self._cols, self._cols) + offsets[1].unsqueeze(1)  # (B, W)
        x = self._train_padded[idx.view(b, 1, 1, 1), self._chan, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]
        return self._normalize(x)

    def train_batches(self, order: torch.Tensor, start_step: int, batch_size: int, epoch: int) -> Iterator[Batch]:
        """The rest of the epoch augmented by one gather at its start (a step then only slices it: ~15 small kernels
        a step fewer, 4% of a ResNet-20 step on an H100); this rank's part of each global batch. The epoch's float32
        images stay on the device until its last batch is taken (CIFAR-10: 614 MB)."""
        steps = self.train_size // batch_size
        if start_step >= steps:
            return
        order = order.to(self.device)
        keep = rank_slice(batch_size)  # this rank's part of each global batch (all of it without a job)
        # this rank's positions in the epoch from start_step on, and the samples there
        pos = torch.arange(steps * batch_size, device=self.device).view(steps, batch_size)
        pos = pos[start_step:, keep].reshape(-1)
        idx = order[pos]
        if self.augment:
            offsets, flip = self.epoch_draws(epoch, steps * batch_size)  # every position's: a job's ranks agree
            x = self.augmented(idx, offsets[:, pos], flip[pos])
        else:
            x = self._normalize(self._train_x[idx])
        y = self._train_y[idx]
        part = keep.stop - keep.start
        for s in range(steps - start_step):
            yield x[s * part : (s + 1) * part], y[s * part : (s + 1) * part]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        xs, ys = (self._train_x, self._train_y) if split == "train" else (self._test_x, self._test_y)
        for i, start in enumerate(range(0, xs.shape[0], batch_size)):
            if owns_eval_batch(i):  # round-robin over the ranks of a job
                yield self._normalize(xs[start : start + batch_size]), ys[start : start + batch_size]


def _limit(split: SplitArrays, limit: int) -> SplitArrays:
    if limit <= 0 or limit >= split.labels.shape[0]:
        return split
    return SplitArrays(split.images[:limit], split.labels[:limit])


# ---------------------------------------------------------------- digits


DIGITS_TRAIN = 1437  # of 1797: a fixed seeded split, 1437 train / 360 test


def load_digits_arrays() -> tuple[SplitArrays, SplitArrays]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8).reshape(-1, 1, 8, 8)  # values 0..16
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(20210601).permutation(labels.shape[0])  # fixed: independent of the run seed
    tr, te = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
    return SplitArrays(images[tr], labels[tr]), SplitArrays(images[te], labels[te])


# ---------------------------------------------------------------- CIFAR-10


CIFAR_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST_FILE = "test_batch"


def resolve_cifar_folder(path: str) -> Path:
    """`path` may be the folder holding cifar-10-batches-py or that folder itself."""
    if not path:
        env = os.environ.get("CIFAR10_DIR", "")
        if not env:
            raise data_error(
                "cifar10: dataset.path is empty; expected a folder holding cifar-10-batches-py "
                "(or set CIFAR10_DIR)"
            )
        path = env
    root = Path(path).expanduser()
    if (root / "cifar-10-batches-py").is_dir():
        return root / "cifar-10-batches-py"
    if root.name == "cifar-10-batches-py" or (root / "data_batch_1").exists():
        if not root.is_dir():
            raise data_error(f"cifar10: expected the folder {root} (python-version pickles); it does not exist")
        return root
    raise data_error(
        f"cifar10: expected {root / 'cifar-10-batches-py'} holding data_batch_1..5 and test_batch "
        f"(the python version of CIFAR-10); {'the folder is missing' if not root.exists() else 'it is not there'}"
    )


def _read_cifar_pickle(file: Path) -> SplitArrays:
    # Local files the user chose, in the standard CIFAR format: pickle is accepted here; nothing received over
    # the wire is ever unpickled.
    if not file.is_file():
        raise data_error(f"cifar10: expected the pickle file {file}; it is missing")
    try:
        with file.open("rb") as fh:
            entry = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise data_error(f"cifar10: {file} is not a readable CIFAR-10 pickle: {exc}") from exc
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        keys = list(entry)[:5] if isinstance(entry, dict) else type(entry).__name__
        raise data_error(f"cifar10: {file} should be a dict with b'data' and b'labels'; found {keys}")
    data = np.asarray(entry[b"data"])
    labels = np.asarray(entry[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise data_error(
            f"cifar10: {file}: expected b'data' uint8 of shape (N, 3072) and N labels; "
            f"got {data.dtype} {tuple(data.shape)} and {labels.shape[0]} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise data_error(f"cifar10: {file}: labels must lie in 0..9")
    return SplitArrays(data.reshape(-1, 3, 32, 32), labels)


def load_cifar10_arrays(path: str) -> tuple[SplitArrays, SplitArrays]:
    folder = resolve_cifar_folder(path)
    parts = [_read_cifar_pickle(folder / name) for name in CIFAR_TRAIN_FILES]
    train = SplitArrays(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
    return train, _read_cifar_pickle(folder / CIFAR_TEST_FILE)


def download_cifar10(root: str) -> None:
    """Fetch CIFAR-10 into `root` through torchvision (only when asked and online)."""
    try:
        from torchvision.datasets import CIFAR10  # type: ignore[import-not-found]
    except ImportError as exc:
        raise data_error("cifar10: downloading needs torchvision, which is not installed") from exc
    CIFAR10(root, train=True, download=True)


# ---------------------------------------------------------------- synthetic


def synthetic_arrays(seed: int, train_size: int, test_size: int) -> tuple[SplitArrays, SplitArrays]:
    """Random CIFAR-shaped uint8 images and labels (benchmarks and tests without data)."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> SplitArrays:
        return SplitArrays(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))

    return split(train_size), split(test_size)


# ---------------------------------------------------------------- ImageFolder (ImageNet layout)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG")


def _scan_image_folder(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    if not root.is_dir():
        raise data_error(f"imagefolder: expected the folder {root} with one sub-folder of images per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise data_error(f"imagefolder: expected one sub-folder per class under {root}; found none")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        for dirpath, _, files in os.walk(root / name):
            samples += [(os.path.join(dirpath, f), label) for f in sorted(files) if f.endswith(IMAGE_EXTENSIONS)]
    if not samples:
        raise data_error(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return samples, classes


class _ImageFolderDataset(torch.utils.data.Dataset[Batch]):
    def __init__(self, samples: list[tuple[str, int]], image_size: int, train: bool) -> None:
        self.samples = samples
        self.image_size = image_size
        self.train = train
        self.mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Batch:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as opened:
            img: object = opened.convert("RGB")
            img = self._random_resized_crop(img) if self.train else self._center_crop(img)
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        if self.train and np.random.rand() < 0.5:
            arr = arr[:, :, ::-1]
        arr = (arr - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(arr)), torch.tensor(label)

    def _random_resized_crop(self, img: "object") -> "object":
        from PIL import Image

        w, h = img.size  # type: ignore[attr-defined]
        area = w * h
        for _ in range(10):
            target = area * np.random.uniform(0.08, 1.0)
            ratio = np.exp(np.random.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = int(round(np.sqrt(target * ratio))), int(round(np.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = np.random.randint(0, w - cw + 1), np.random.randint(0, h - ch + 1)
                return img.resize((self.image_size,) * 2, Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))  # type: ignore[attr-defined]
        return self._center_crop(img)

    def _center_crop(self, img: "object") -> "object":
        from PIL import Image

        w, h = img.size  # type: ignore[attr-defined]
        short = int(self.image_size / 0.875)
        scale = short / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)  # type: ignore[attr-defined]
        w, h = img.size  # type: ignore[attr-defined]
        x0, y0 = (w - self.image_size) // 2, (h - self.image_size) // 2
        return img.crop((x0, y0, x0 + self.image_size, y0 + self.image_size))  # type: ignore[attr-defined]


class ImageFolderDataSource:
    """`<path>/train` and `<path>/val`, one sub-folder per class, decoded by DataLoader workers."""

    def __init__(
        self, path: str, *, image_size: int, num_workers: int, device: torch.device, train_limit: int, test_limit: int,
        channels_last: bool,
    ) -> None:
        try:
            import PIL  # noqa: F401
        except ImportError as exc:
            raise data_error("imagefolder: reading images needs Pillow, which is not installed") from exc
        root = Path(path).expanduser()
        if not path or not root.is_dir():
            raise data_error(f"imagefolder: expected a folder holding train/ and val/; '{path}' is not a folder")
        train, classes = _scan_image_folder(root / "train")
        test, test_classes = _scan_image_folder(root / "val")
        if test_classes != classes:
            raise data_error(f"imagefolder: {root / 'val'} has classes that differ from {root / 'train'}")
        if train_limit:
            train = train[:train_limit]
        if test_limit:
            test = test[:test_limit]
        self.num_classes = len(classes)
        self.train_size, self.test_size = len(train), len(test)
        self._train = _ImageFolderDataset(train, image_size, True)
        self._test = _ImageFolderDataset(test, image_size, False)
        self.device = device
        self.num_workers = num_workers
        self.channels_last = channels_last

    def aug_state(self) -> torch.Tensor | None:
        return None

    def set_aug_state(self, state: torch.Tensor) -> None:
        return None

    def _to_device(self, loader: torch.utils.data.DataLoader[Batch]) -> Iterator[Batch]:
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)

    def train_batches(self, order: torch.Tensor, start_step: int, batch_size: int, epoch: int) -> Iterator[Batch]:
        steps = self.train_size // batch_size
        order_list = order.cpu().tolist()
        keep = rank_slice(batch_size)  # this rank's part of each global batch (all of it without a job)
        sampler = [order_list[s * batch_size : (s + 1) * batch_size][keep] for s in range(start_step, steps)]
        loader = torch.utils.data.DataLoader(
            self._train, batch_sampler=sampler, num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        return self._to_device(loader)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        ds = self._train if split == "train" else self._test
        n = len(ds)
        batches = [list(range(start, min(start + batch_size, n))) for start in range(0, n, batch_size)]
        mine = [b for i, b in enumerate(batches) if owns_eval_batch(i)]  # round-robin over the ranks of a job
        loader = torch.utils.data.DataLoader(
            ds, batch_sampler=mine, num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
        )
        return self._to_device(loader)


# ---------------------------------------------------------------- entry point


@dataclass
class DataOptions:
    name: str
    path: str
    augment: bool
    train_limit: int
    test_limit: int
    num_workers: int
    image_size: int
    seed: int
    device: torch.device
    channels_last: bool


def load_data(opts: DataOptions) -> DataSource:
    """Build the named dataset; a missing or malformed one raises a DATA error that says what was expected where."""
    if opts.name == "imagefolder":
        return ImageFolderDataSource(
            opts.path, image_size=opts.image_size or 224, num_workers=opts.num_workers, device=opts.device,
            train_limit=opts.train_limit, test_limit=opts.test_limit, channels_last=opts.channels_last,
        )
    mean: tuple[float, ...]
    std: tuple[float, ...]
    if opts.name == "digits":
        train, test = load_digits_arrays()
        # digits: a 1-pixel shift, no flip (a mirrored digit is another glyph)
        mean, std, pixel_max, pad, flip = DIGITS_MEAN, DIGITS_STD, 16.0, 1, False
    elif opts.name == "cifar10":
        train, test = load_cifar10_arrays(opts.path)
        mean, std, pixel_max, pad, flip = CIFAR_MEAN, CIFAR_STD, 255.0, 4, True
    elif opts.name == "synthetic":
        train, test = synthetic_arrays(opts.seed, opts.train_limit or 50000, opts.test_limit or 10000)
        mean, std, pixel_max, pad, flip = CIFAR_MEAN, CIFAR_STD, 255.0, 4, True
    else:
        raise invalid("dataset.name", f"unknown dataset '{opts.name}'; known: {', '.join(DATASET_NAMES)}")
    train, test = _limit(train, opts.train_limit), _limit(test, opts.test_limit)
    return TensorDataSource(
        train, test, num_classes=10, mean=mean, std=std, pixel_max=pixel_max, augment=opts.augment, pad=pad, flip=flip,
        device=opts.device, seed=opts.seed, channels_last=opts.channels_last,
    )
