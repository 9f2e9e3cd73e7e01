"""Reading ``.safetensors`` files without the ``safetensors`` package (the GPU machines do not have it).

The format is a little-endian u64 header length, a JSON header ``{name: {"dtype", "shape", "data_offsets"},
"__metadata__": {str: str}}`` and one byte buffer. Nothing in it can run code, so it is safe by construction.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import OrderedDict

import torch

from landscape.errors import LandscapeError
from landscape.validate import short_repr

MAGIC_MAX_HEADER = 100 * 2**20  # the format's own limit on the header
MAX_DIMS = 64  # more dimensions than any weight has (torch's own limit is near)
MAX_ELEMENTS = 2**50  # declared elements of one tensor: its strides must fit in int64 whatever its dtype
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
    how = "a JSON object with a 'weight_map' of tensor name -> shard file name"
    try:
        if os.path.getsize(path) > MAGIC_MAX_HEADER:  # an index lists names; read whole, it must stay small
            raise LandscapeError(f"{path!r} is {os.path.getsize(path):,} bytes, too large for a safetensors index "
                                 f"(at most {MAGIC_MAX_HEADER:,}); pass {how}")
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested too deep to parse
        raise LandscapeError(f"{path!r} is not a safetensors index ({how}): {type(e).__name__}")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        got = f"its 'weight_map' is {short_repr(weight_map)}" if isinstance(index, dict) else \
            f"it is a JSON {type(index).__name__}"
        raise LandscapeError(f"{path!r} is not a safetensors index ({got}); pass {how}")
    bad = next((k for k, v in weight_map.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise LandscapeError(f"{path!r}: the weight_map names the shard of tensor {short_repr(bad)} as "
                             f"{short_repr(weight_map[bad])}; a shard is named by its file name (a string)")
    meta = index.get("metadata") or {}
    if not isinstance(meta, dict):
        raise LandscapeError(f"{path!r}: the index's 'metadata' is a {type(meta).__name__}; it must be a JSON "
                             "object (e.g. {\"total_size\": 1234}) or be left out")
    out: OrderedDict = OrderedDict()
    for shard in dict.fromkeys(weight_map.values()):
        file = os.path.join(folder, os.path.basename(shard))
        if not os.path.isfile(file):
            raise LandscapeError(f"{path!r} lists shard {short_repr(shard)}, which is missing")
        tensors, _ = read_safetensors(file)
        # the index decides where a tensor comes from (as transformers does): a copy in another shard, or a
        # tensor the index does not list, is not taken, so the result never depends on the order of the shards
        out.update((k, t) for k, t in tensors.items() if weight_map.get(k) == shard)
    missing = [k for k in weight_map if k not in out]
    if missing:
        raise LandscapeError(f"{path!r} lists tensors its shards do not hold: "
                             f"{', '.join(short_repr(k) for k in missing[:5])}")
    # values as text, as a single file's metadata is (HuggingFace writes {"total_size": <int>})
    return out, {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


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

    The whole header is checked before any tensor is allocated: each entry's dtype, shape and byte range, the
    ranges within the file, not overlapping, each exactly dtype x shape bytes; so no declared size reaches an
    allocation unless the file holds those bytes.

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
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
            raise LandscapeError(f"{path!r} has a corrupt safetensors header ({type(e).__name__}); re-save the file")
        entries, meta = _entries(path, header, size - 8 - n)
        out = OrderedDict()
        for name, dtype, start, end, shape in entries:
            # read straight into the tensor's own memory: the file's bytes are never held twice
            t = torch.empty(end - start, dtype=torch.uint8)
            f.seek(8 + n + start)
            if end > start and f.readinto(t.numpy()) != end - start:
                raise LandscapeError(f"{path!r}: tensor {short_repr(name)} could not be read whole (truncated?)")
            out[name] = t.view(dtype).reshape(shape)
    return out, meta


def _entries(path: str, header, body: int) -> tuple[list[tuple], dict]:
    """The header's tensors as ``(name, dtype, start, end, shape)`` in file order, and its metadata.

    Raises:
        LandscapeError: a header that is not a JSON object; metadata that is not an object of strings; an entry
            without a known dtype, a shape of whole numbers >= 0 or ``data_offsets`` ``[start, end]`` within the
            file's data; byte ranges that overlap or do not hold dtype x shape bytes.
    """
    if not isinstance(header, dict):
        raise LandscapeError(f"{path!r} has a corrupt safetensors header (a JSON {type(header).__name__}, not an "
                             "object of tensor entries); re-save the file")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise LandscapeError(f"{path!r}: the safetensors '__metadata__' must be an object of strings (e.g. "
                             f"{{\"arch\": \"resnet20\"}}); got {short_repr(meta)}; re-save the file")
    entries = []
    for name, info in header.items():
        entries.append((name, *_entry(path, name, info, body)))
    entries.sort(key=lambda e: (e[2], e[3]))
    prev = None
    for e in entries:
        if e[3] > e[2]:  # empty tensors take no bytes and overlap nothing
            if prev is not None and e[2] < prev[3]:
                raise LandscapeError(f"{path!r}: tensors {short_repr(prev[0])} and {short_repr(e[0])} overlap (bytes "
                                     f"{prev[2]}-{prev[3]} and {e[2]}-{e[3]} of the data); each tensor needs its own "
                                     "bytes: re-save the file")
            prev = e
    return entries, meta


def _entry(path: str, name: str, info, body: int) -> tuple[torch.dtype, int, int, list[int]]:
    """``(dtype, start, end, shape)`` of one header entry, checked (sizes in Python's exact integers)."""
    where = f"{path!r}: tensor {short_repr(name)}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise LandscapeError(f"{where} has a malformed header entry {short_repr(info)}; expected an object with "
                             "'dtype', 'shape' and 'data_offsets'")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise LandscapeError(f"{where} has dtype {short_repr(dtype)}; supported: {', '.join(_DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_whole(s) for s in shape):
        raise LandscapeError(f"{where} declares shape {short_repr(shape)}; a shape is a list of at most {MAX_DIMS} "
                             "whole numbers >= 0")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(v) for v in offsets) or \
            offsets[0] > offsets[1]:
        raise LandscapeError(f"{where} has data_offsets {short_repr(offsets)}; expected [start, end] with "
                             "0 <= start <= end")
    start, end = offsets
    if end > body:
        raise LandscapeError(f"{where} lies beyond the end of the file (bytes {start}-{end} of {body} bytes of "
                             "data: truncated?)")
    # Python's integers are exact, so no product wraps around to a small number; strides must fit in int64.
    if math.prod(max(1, s) for s in shape) > MAX_ELEMENTS:
        raise LandscapeError(f"{where} declares shape {short_repr(shape)}, more than {MAX_ELEMENTS:,} elements; "
                             "corrupt header: re-save the file")
    elem = torch.empty((), dtype=_DTYPES[dtype]).element_size()
    if end - start != elem * math.prod(shape):
        raise LandscapeError(f"{where} has {end - start} bytes for shape {shape} of {dtype} ({elem} bytes each: "
                             f"{elem * math.prod(shape)} expected); corrupt header: re-save the file")
    return _DTYPES[dtype], start, end, shape


def _whole(v) -> bool:
    """A JSON whole number >= 0 (``true`` is not one)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
