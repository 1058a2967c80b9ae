"""Inception v3 ImageNet weights for the image towers: converting a torchvision state dict
to the safetensors file the Rust core reads, and extracting pooled features with it.

fashionrec never downloads weights. Get torchvision's ImageNet weights once, where you have
network access (``torchvision.models.inception_v3(weights="IMAGENET1K_V1").state_dict()``,
or the ``inception_v3_google-*.pth`` file torchvision caches), and convert them::

    fr.io.convert_inception_weights("inception_v3_google-0cc3c7bd.pth", "inception_v3.safetensors")
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .images import ImageBank

#: Entries of torchvision's state dict that the headless network does not have.
_DROPPED = ("fc.", "AuxLogits.")


def convert_inception_weights(source: Any, out_path: str | os.PathLike) -> Path:
    """Write torchvision ``inception_v3`` weights as the safetensors file the Inception tower
    (``weights=``) and :func:`inception_features` read.

    ``source``: a state dict (a mapping of names to tensors), a ``torch.nn.Module`` (its
    ``state_dict()``), or the path of a file saved by ``torch.save`` holding one of these (or a
    checkpoint dict with a ``"state_dict"`` entry). A ``"module."`` prefix (DataParallel) is
    removed. The classifier (``fc.*``), the auxiliary classifier (``AuxLogits.*``) and
    ``num_batches_tracked`` counters are left out; everything else is stored as float32 under
    torchvision's names. The file is then loaded by the Rust network to check it is complete
    (a missing tensor or a wrong shape is a ValueError naming it). Written through a temporary
    name; returns the path. torch is used here only; nothing is downloaded.
    """
    import torch

    out = Path(out_path)
    state = _state_dict(source, torch)
    tensors: dict[str, Any] = {}
    for name, value in state.items():
        if name.startswith("module."):
            name = name[len("module.") :]
        if name.startswith(_DROPPED) or name.endswith("num_batches_tracked"):
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"source: entry {name!r} is not a floating-point tensor")
        tensors[name] = value.detach().to("cpu", torch.float32).contiguous()
    if "Conv2d_1a_3x3.conv.weight" not in tensors:
        raise ValueError(
            "source: no 'Conv2d_1a_3x3.conv.weight'; this is not a torchvision inception_v3 state dict"
        )
    _write_safetensors(out, tensors, {"source": "torchvision inception_v3", "written_by": "fashionrec"})
    try:
        _core.check_inception_weights(os.fspath(out))
    except ValueError:
        out.unlink(missing_ok=True)
        raise
    return out


def _state_dict(source: Any, torch: Any) -> Mapping[str, Any]:
    if isinstance(source, torch.nn.Module):
        return source.state_dict()
    if isinstance(source, Mapping):
        return source
    if isinstance(source, (str, os.PathLike)):
        obj = torch.load(os.fspath(source), map_location="cpu", weights_only=False)
        if isinstance(obj, torch.nn.Module):
            return obj.state_dict()
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            return obj["state_dict"]
        if isinstance(obj, Mapping):
            return obj
        raise ValueError(f"{os.fspath(source)}: holds a {type(obj).__name__}, not a state dict or module")
    raise TypeError(f"source must be a state dict, a torch module or a path, not {type(source).__name__}")


def _write_safetensors(path: Path, tensors: Mapping[str, Any], metadata: dict[str, str]) -> None:
    """The safetensors layout: u64 header length, JSON header (8-byte aligned), raw data."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, t in tensors.items():
        data = t.numpy().astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_name(path.name + f".partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def inception_features(
    images: ImageBank | np.ndarray,
    weights: str | os.PathLike,
    *,
    transform_input: bool = True,
    batch_size: int = 64,
    device: str = "auto",
) -> np.ndarray:
    """Pooled Inception v3 features, float32 ``(n, 2048)``, of every image of an
    :class:`~fashionrec.ImageBank` (or of a uint8 ``(n, S, S, 3)`` array), S >= 75 (299 is the
    network's own size), with the ``weights`` written by :func:`convert_inception_weights`.

    The uint8 pixels are normalised inside the network as torchvision's ImageNet weights
    expect (``transform_input=True``, torchvision's flag for those weights). Fixed item
    features for ``fr.VBPR(item_features=...)``, for example.
    """
    array = images.array() if isinstance(images, ImageBank) else np.ascontiguousarray(images)
    if array.dtype != np.uint8 or array.ndim != 4:
        raise ValueError(f"images must be an ImageBank or a uint8 (n, S, S, 3) array, got {array.dtype} {array.shape}")
    return _core.inception_features(os.fspath(weights), array, transform_input, batch_size, device)
