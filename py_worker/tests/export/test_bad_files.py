"""Bad files are refused with an error that says what is wrong; nothing is unpickled."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from dmbq_worker.export import DmbqFileError, load_dmbq, read_dmbq
from dmbq_worker.export.container import encode_dmbq


def _rewrite_header(data: bytes, edit: Callable[[dict], None]) -> bytes:
    """Change our JSON header inside the safetensors index, keeping the stored digest (as a tamperer would)."""
    (n,) = struct.unpack("<Q", data[:8])
    index = json.loads(data[8 : 8 + n])
    header = json.loads(index["__metadata__"]["dmbq"])
    edit(header)
    index["__metadata__"]["dmbq"] = json.dumps(header, separators=(",", ":"), sort_keys=True)
    raw = json.dumps(index).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def test_truncated_files(digits_file: Path, tmp_path: Path) -> None:
    data = digits_file.read_bytes()
    for cut, message in ((4, "truncated: 4 bytes"), (100, "truncated: the header needs"),
                         (len(data) - 10, "truncated: tensor")):
        bad = tmp_path / f"cut{cut}.dmbq"
        bad.write_bytes(data[:cut])
        with pytest.raises(DmbqFileError, match=message):
            load_dmbq(bad)


def test_wrong_version(digits_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "v2.dmbq"
    bad.write_bytes(_rewrite_header(digits_file.read_bytes(), lambda h: h.update(version=2)))
    with pytest.raises(DmbqFileError, match=r"header.version 2 is not supported \(this reader reads version 1\)"):
        load_dmbq(bad)


def test_tampered_header(digits_file: Path, tmp_path: Path) -> None:
    def more_accurate(h: dict) -> None:
        h["run"]["top1"] = 99.9

    bad = tmp_path / "tampered.dmbq"
    bad.write_bytes(_rewrite_header(digits_file.read_bytes(), more_accurate))
    with pytest.raises(DmbqFileError, match="modified after export"):
        read_dmbq(bad)


def test_tampered_tensor_bytes(digits_file: Path, tmp_path: Path) -> None:
    data = bytearray(digits_file.read_bytes())
    data[-1] ^= 0xFF
    bad = tmp_path / "flipped.dmbq"
    bad.write_bytes(bytes(data))
    with pytest.raises(DmbqFileError, match="modified after export"):
        read_dmbq(bad)


def test_not_a_dmbq_file(tmp_path: Path) -> None:
    pickle_like = tmp_path / "model.pt"
    pickle_like.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle's opening bytes: never unpickled
    with pytest.raises(DmbqFileError, match="not a .dmbq file"):
        read_dmbq(pickle_like)
    with pytest.raises(DmbqFileError, match="no such file"):
        read_dmbq(tmp_path / "missing.dmbq")
    other = tmp_path / "other.safetensors"
    other.write_bytes(encode_dmbq({"format": "something-else", "version": 1}, {"x": np.zeros(2, np.float32)}))
    with pytest.raises(DmbqFileError, match="header.format is 'something-else', expected 'dmbq-model'"):
        read_dmbq(other)


def test_consistent_but_wrong_content_is_refused(digits_file: Path, tmp_path: Path) -> None:
    """A file re-signed after an edit passes the digest but not the loader's checks, which name the field."""
    f = read_dmbq(digits_file)
    header = json.loads(json.dumps(f.header))
    header["layers"][1]["weight_shape"] = [1, 2, 3, 4]
    bad = tmp_path / "resigned.dmbq"
    bad.write_bytes(encode_dmbq(header, f.tensors))
    with pytest.raises(DmbqFileError, match=r"header.layers\[1\].weight_shape \[1, 2, 3, 4\] != the model's"):
        load_dmbq(bad)
    header = json.loads(json.dumps(f.header))
    tensors = dict(f.tensors)
    name = f"q/{header['layers'][1]['name']}/planes"
    tensors[name] = tensors[name][:-1]
    bad.write_bytes(encode_dmbq(header, tensors))
    with pytest.raises(DmbqFileError, match=f"{name} holds"):
        load_dmbq(bad)
    header["model"]["factory"] = "os:system"
    bad.write_bytes(encode_dmbq(header, f.tensors))
    with pytest.raises(DmbqFileError, match="allow_factory=True"):
        load_dmbq(bad)


def test_a_dmbq_file_is_a_standard_safetensors_file(digits_file: Path) -> None:
    from safetensors import safe_open

    ours = read_dmbq(digits_file)
    with safe_open(str(digits_file), framework="numpy") as f:
        assert json.loads(f.metadata()["dmbq"]) == ours.header
        assert set(f.keys()) == set(ours.tensors)
        for name in f.keys():
            np.testing.assert_array_equal(f.get_tensor(name), ours.tensors[name])
