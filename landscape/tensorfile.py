"""Reading ``.safetensors`` files without the ``safetensors`` package (the GPU machines do not have it).

The format is a little-endian u64 header length, a JSON header ``{name: {"dtype", "shape", "data_offsets"},
"__metadata__": {str: str}}`` and one byte buffer. Nothing in it can run code, so it is safe by construction.
"""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict

import numpy as np
import torch

from landscape.errors import LandscapeError

MAGIC_MAX_HEADER = 100 * 2**20  # the format's own limit on the header
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


INDEX_SUFFIX = ".safetensors.index.json"


def read_safetensors_index(path: str) -> tuple[OrderedDict, dict]:
    """``(tensors, metadata)`` of a sharded checkpoint: a ``*.safetensors.index.json`` whose ``weight_map`` names
    the shard file of every tensor (HuggingFace's layout), read shard by shard.

    Raises:
        LandscapeError: an index that is not such JSON, a missing shard, or a shard without a tensor it lists.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = dict(index["weight_map"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandscapeError(f"{path!r} is not a safetensors index (a JSON object with a 'weight_map'): "
                             f"{type(e).__name__}")
    out: OrderedDict = OrderedDict()
    meta: dict = {str(k): str(v) for k, v in (index.get("metadata") or {}).items()}
    for shard in dict.fromkeys(weight_map.values()):
        file = os.path.join(folder, os.path.basename(str(shard)))
        if not os.path.isfile(file):
            raise LandscapeError(f"{path!r} lists shard {shard!r}, which is missing")
        tensors, _ = read_safetensors(file)
        out.update(tensors)
    missing = [k for k in weight_map if k not in out]
    if missing:
        raise LandscapeError(f"{path!r} lists tensors its shards do not hold: {', '.join(missing[:5])}")
    return out, meta


def is_safetensors(path: str) -> bool:
    """By extension, or by a header that parses as the format's JSON (a renamed file)."""
    if path.lower().endswith(".safetensors"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < MAGIC_MAX_HEADER


def read_safetensors(path: str) -> tuple[OrderedDict, dict]:
    """``(tensors, metadata)`` of a ``.safetensors`` file, tensors on the CPU in the file's order.

    Raises:
        LandscapeError: a truncated or malformed file, naming what is wrong.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise LandscapeError(f"{path!r} is not a safetensors file (shorter than its 8-byte header length)")
        n = struct.unpack("<Q", raw)[0]
        if n > min(MAGIC_MAX_HEADER, size - 8):
            raise LandscapeError(f"{path!r} is not a readable safetensors file (header length {n} for a "
                                 f"{size}-byte file: truncated or corrupt?)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LandscapeError(f"{path!r} has a corrupt safetensors header ({type(e).__name__})")
        body = size - 8 - n
        meta = header.pop("__metadata__", None) or {}
        out = OrderedDict()
        for name, info in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0]):
            try:
                dtype = _DTYPES[info["dtype"]]
                start, end = (int(v) for v in info["data_offsets"])
                shape = [int(s) for s in info["shape"]]
            except (KeyError, TypeError, ValueError):
                raise LandscapeError(f"{path!r}: tensor {name!r} has an unsupported or malformed entry {info!r}")
            if end > body or start > end:
                raise LandscapeError(f"{path!r}: tensor {name!r} lies beyond the end of the file (truncated?)")
            elem = torch.empty((), dtype=dtype).element_size()
            if (end - start) != elem * int(np.prod(shape, dtype=np.int64)):
                raise LandscapeError(f"{path!r}: tensor {name!r} has {end - start} bytes for shape {shape}")
            # read straight into the tensor's own memory: the file's bytes are never held twice
            t = torch.empty(end - start, dtype=torch.uint8)
            f.seek(8 + n + start)
            if end > start and f.readinto(t.numpy()) != end - start:
                raise LandscapeError(f"{path!r}: tensor {name!r} could not be read whole (truncated?)")
            out[name] = t.view(dtype).reshape(shape)
    return out, {str(k): str(v) for k, v in meta.items()}
