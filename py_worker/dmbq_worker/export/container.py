"""The .dmbq file: a safetensors file (8-byte little-endian header length, JSON header, raw tensor bytes).

Our own header is JSON in `__metadata__["dmbq"]`; `__metadata__["dmbq_sha256"]` is the SHA-256 of that JSON's
UTF-8 bytes followed by, for each tensor in name order, its name, a NUL byte and its raw little-endian bytes.
Reading never unpickles anything: the header is JSON and the tensors are raw arrays. Every refusal names the
file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

FORMAT_NAME = "dmbq-model"
FORMAT_VERSION = 1
HEADER_KEY = "dmbq"
DIGEST_KEY = "dmbq_sha256"
MAX_HEADER_BYTES = 64 << 20  # a header this large is no header of ours

_DTYPES: dict[str, np.dtype[Any]] = {"U8": np.dtype("u1"), "F32": np.dtype("<f4"), "I64": np.dtype("<i8")}


class DmbqFileError(ValueError):
    """A .dmbq file that cannot be read: truncated, of another version, modified, or not one at all."""


@dataclass(frozen=True)
class DmbqFile:
    header: dict[str, Any]
    tensors: dict[str, np.ndarray]
    file_bytes: int
    header_bytes: int  # the 8-byte length plus the safetensors JSON header


def content_digest(header_json: str, tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(header_json.encode("utf-8"))
    for name in sorted(tensors):
        h.update(name.encode("utf-8") + b"\0")
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    return h.hexdigest()


_DTYPE_NAMES = {"|u1": "U8", "<f4": "F32"}


def encode_dmbq(header: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of a .dmbq file holding `header` (JSON-serializable) and `tensors` (u8 / f32 arrays).

    Written here rather than by safetensors.numpy.save so that the same model always gives the same bytes (the
    library orders __metadata__ keys as a hash map does, which changes from process to process); the result is
    a standard safetensors file (tests read it back with the safetensors package)."""
    header_json = json.dumps(header, separators=(",", ":"), sort_keys=True)
    arrays: dict[str, np.ndarray] = {}
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("tensor name '__metadata__' is reserved by safetensors")
        a = np.ascontiguousarray(t)
        if a.dtype.str not in _DTYPE_NAMES:
            raise ValueError(f"tensor {name!r}: dtype {a.dtype} is not stored (uint8 or float32 only)")
        arrays[name] = a
    index: dict[str, Any] = {
        "__metadata__": {HEADER_KEY: header_json, DIGEST_KEY: content_digest(header_json, arrays)}
    }
    offset = 0
    for name in sorted(arrays):
        a = arrays[name]
        index[name] = {"dtype": _DTYPE_NAMES[a.dtype.str], "shape": list(a.shape),
                       "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    raw = json.dumps(index, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header with spaces to 8-byte alignment
    body = b"".join(arrays[name].tobytes() for name in sorted(arrays))
    return struct.pack("<Q", len(raw)) + raw + body


def write_dmbq(path: str | Path, header: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> int:
    """Write atomically (temporary file, then rename); returns the file's size in bytes."""
    target = Path(path)
    data = encode_dmbq(header, tensors)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return len(data)


def decode_dmbq(data: bytes, source: str = "<bytes>") -> DmbqFile:
    """Parse and verify a .dmbq file's bytes; raises DmbqFileError naming `source` and the problem."""
    size = len(data)
    if size < 8:
        raise DmbqFileError(f"{source}: truncated: {size} bytes, a .dmbq file starts with an 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:
        raise DmbqFileError(f"{source}: not a .dmbq file (header length {n} bytes is implausible)")
    if size > 8 and data[8:9] != b"{":
        raise DmbqFileError(f"{source}: not a .dmbq file (no safetensors JSON header after the 8-byte length)")
    if 8 + n > size:
        raise DmbqFileError(f"{source}: truncated: the header needs {8 + n} bytes, the file has {size}")
    try:
        index = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DmbqFileError(f"{source}: not a .dmbq file (the safetensors header is not JSON: {exc})") from exc
    if not isinstance(index, dict):
        raise DmbqFileError(f"{source}: not a .dmbq file (the safetensors header is not a JSON object)")
    meta = index.pop("__metadata__", None)
    if not isinstance(meta, dict) or not isinstance(meta.get(HEADER_KEY), str):
        raise DmbqFileError(f"{source}: not a .dmbq file (no __metadata__.{HEADER_KEY} in its safetensors header)")
    header_json: str = meta[HEADER_KEY]
    try:
        header = json.loads(header_json)
    except json.JSONDecodeError as exc:
        raise DmbqFileError(f"{source}: __metadata__.{HEADER_KEY} is not JSON ({exc}): the header was damaged") from exc
    if not isinstance(header, dict):
        raise DmbqFileError(f"{source}: __metadata__.{HEADER_KEY} is not a JSON object")
    if header.get("format") != FORMAT_NAME:
        raise DmbqFileError(f"{source}: header.format is {header.get('format')!r}, expected {FORMAT_NAME!r}")
    version = header.get("version")
    if version != FORMAT_VERSION:
        raise DmbqFileError(
            f"{source}: header.version {version!r} is not supported (this reader reads version {FORMAT_VERSION})"
        )
    body = memoryview(data)[8 + n :]
    tensors: dict[str, np.ndarray] = {}
    for name, spec in index.items():
        tensors[name] = _tensor(name, spec, body, source)
    expected = meta.get(DIGEST_KEY)
    actual = content_digest(header_json, tensors)
    if expected != actual:
        raise DmbqFileError(
            f"{source}: __metadata__.{DIGEST_KEY} does not match the content: the header or tensors were modified "
            f"after export (stored {expected!r}, computed {actual!r})"
        )
    return DmbqFile(header=header, tensors=tensors, file_bytes=size, header_bytes=8 + n)


def _tensor(name: str, spec: Any, body: memoryview, source: str) -> np.ndarray:
    if not isinstance(spec, dict):
        raise DmbqFileError(f"{source}: tensor {name!r}: its entry is not an object")
    dtype = _DTYPES.get(str(spec.get("dtype")))
    shape = spec.get("shape")
    offsets = spec.get("data_offsets")
    if dtype is None:
        raise DmbqFileError(f"{source}: tensor {name!r}: dtype {spec.get('dtype')!r} is not one a .dmbq file holds")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise DmbqFileError(f"{source}: tensor {name!r}: shape {shape!r} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise DmbqFileError(f"{source}: tensor {name!r}: data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if begin < 0 or end - begin != want:
        raise DmbqFileError(f"{source}: tensor {name!r}: data_offsets {offsets} do not hold {want} bytes of {shape}")
    if end > len(body):
        raise DmbqFileError(
            f"{source}: truncated: tensor {name!r} ends at byte {end} of the data, which has {len(body)} bytes"
        )
    return np.frombuffer(body[begin:end], dtype=dtype).reshape(shape).copy()


def read_dmbq(path: str | Path) -> DmbqFile:
    target = Path(path)
    if not target.is_file():
        raise DmbqFileError(f"{target}: no such file")
    return decode_dmbq(target.read_bytes(), str(target))
