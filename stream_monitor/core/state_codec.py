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
    sizes: list[int] = []
    plain_keys: dict[tuple, bool] = {}
    dtypes: dict[np.dtype, str] = {}

    def array(node: np.ndarray) -> dict[str, Any]:
        blob = np.ascontiguousarray(node).tobytes()
        blobs.append(blob)
        sizes.append(len(blob))
        dtype = dtypes.get(node.dtype)
        if dtype is None:
            dtype = dtypes[node.dtype] = node.dtype.str
        return {"__nd__": len(blobs) - 1, "dtype": dtype, "shape": list(node.shape)}

    def walk(node: Any) -> Any:
        # A model's state is ~100,000 nodes and this walk is most of the
        # checkpoint's cost: the common types are tested first, by exact type,
        # and the scalar members of a dict or list are taken inline rather than
        # through a call (``v - v == 0.0`` holds for finite floats only).
        kind = type(node)
        if kind is dict:
            keys = tuple(node)
            plain = plain_keys.get(keys)
            if plain is None:
                plain = plain_keys[keys] = not _needs_wrap(node)
            if not plain:
                return {"__d__": [[walk(k), walk(v)] for k, v in node.items()]}
            out = {}
            for k, v in node.items():
                t = type(v)
                if t is str or t is int or v is None or t is bool or (t is float and v - v == 0.0):
                    out[k] = v
                else:
                    out[k] = walk(v)
            return out
        if kind is list or kind is tuple:
            items = []
            append = items.append
            for v in node:
                t = type(v)
                if t is str or t is int or v is None or t is bool or (t is float and v - v == 0.0):
                    append(v)
                else:
                    append(walk(v))
            return items
        if kind is str or kind is int or kind is bool or node is None:
            return node
        if kind is float:
            return node if node - node == 0.0 else {"__f__": repr(node)}
        if kind is np.ndarray:
            return array(node)
        if isinstance(node, dict):
            return {"__d__": [[walk(k), walk(v)] for k, v in node.items()]} if _needs_wrap(node) else {k: walk(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        if isinstance(node, np.ndarray):
            return array(node)
        if isinstance(node, (bytes, bytearray, memoryview)):
            blobs.append(bytes(node))
            sizes.append(len(blobs[-1]))
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
    header = orjson.dumps({"tree": tree, "sizes": sizes})
    return b"".join([_PREFIX.pack(MAGIC, len(header)), header, *blobs])


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
