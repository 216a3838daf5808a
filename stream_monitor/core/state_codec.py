"""Checkpoint bytes: nested state dicts with numpy arrays, bytes and NaNs.

Every stateful piece exposes ``to_state()`` as plain containers plus numpy
arrays and bytes. This codec turns such a tree into one byte string, a JSON
header (the tree, with arrays replaced by references) followed by the raw
array and byte blobs, and back, exactly: dtypes, shapes, NaN and infinity
survive the round trip, which JSON alone would not give.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

MAGIC = b"SMS1"
_PREFIX = struct.Struct("<4sQ")


def encode_state(state: Any) -> bytes:
    blobs: list[bytes] = []
    plain_keys: dict[tuple, bool] = {}

    def walk(node: Any) -> Any:
        # The common types first, by exact type: a model's state is ~100,000
        # nodes, and this walk is the checkpoint's main cost.
        kind = type(node)
        if kind is str or kind is int or kind is bool or node is None:
            return node
        if kind is dict:
            keys = tuple(node)
            plain = plain_keys.get(keys)
            if plain is None:
                plain = plain_keys[keys] = not _needs_wrap(node)
            return {k: walk(v) for k, v in node.items()} if plain else {"__d__": [[walk(k), walk(v)] for k, v in node.items()]}
        if kind is float:
            return node if math.isfinite(node) else {"__f__": repr(node)}
        if kind is list or kind is tuple:
            return [walk(v) for v in node]
        if isinstance(node, dict):
            return {"__d__": [[walk(k), walk(v)] for k, v in node.items()]} if _needs_wrap(node) else {k: walk(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        if isinstance(node, np.ndarray):
            blobs.append(np.ascontiguousarray(node).tobytes())
            return {"__nd__": len(blobs) - 1, "dtype": node.dtype.str, "shape": list(node.shape)}
        if isinstance(node, (bytes, bytearray, memoryview)):
            blobs.append(bytes(node))
            return {"__b__": len(blobs) - 1}
        if isinstance(node, (float, np.floating)):
            value = float(node)
            return value if math.isfinite(value) else {"__f__": repr(value)}
        if isinstance(node, np.integer):
            return int(node)
        if isinstance(node, np.bool_):
            return bool(node)
        return node

    tree = walk(state)
    sizes = [len(b) for b in blobs]
    header = orjson.dumps({"tree": tree, "sizes": sizes})
    return _PREFIX.pack(MAGIC, len(header)) + header + b"".join(blobs)


def decode_state(data: bytes) -> Any:
    magic, header_size = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a stream-monitor checkpoint (bad magic)")
    start = _PREFIX.size
    header = orjson.loads(data[start : start + header_size])
    position = start + header_size
    blobs = []
    for size in header["sizes"]:
        blobs.append(data[position : position + size])
        position += size

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "__nd__" in node:
                array = np.frombuffer(blobs[node["__nd__"]], dtype=np.dtype(node["dtype"]))
                return array.reshape(node["shape"]).copy()
            if "__b__" in node:
                return blobs[node["__b__"]]
            if "__f__" in node:
                return float(node["__f__"])
            if "__d__" in node:
                return {_hashable(walk(k)): walk(v) for k, v in node["__d__"]}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(header["tree"])


def _hashable(key: Any) -> Any:
    """JSON has no tuples: keys that were tuples come back as lists."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _needs_wrap(node: dict) -> bool:
    """Dicts with non-string keys (or keys that look like our markers) are stored as pairs."""
    return any(not isinstance(k, str) or k.startswith("__") for k in node)
