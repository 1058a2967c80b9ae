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
from ._files import refuse_same, replacing
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
    (a missing tensor or a wrong shape is a ValueError naming it). Returns the path.

    Safe with files from elsewhere: a path is read with ``torch.load(weights_only=True)``,
    which rebuilds tensors and plain containers only and never runs code from the file (a
    file that needs more, e.g. a pickled whole module, is a ValueError saying so: load it
    yourself if you trust it and pass its ``state_dict()``). The output is written under a
    temporary name in its folder, checked, and only then renamed over ``out_path``: a failed
    conversion leaves a file already at ``out_path`` as it was; ``out_path`` equal to the
    source file is refused. torch is used here only; nothing is downloaded.
    """
    import torch

    out = Path(out_path)
    inputs = [source] if isinstance(source, (str, os.PathLike)) else []
    refuse_same(out, inputs)  # before anything is read
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
    with replacing(out, inputs) as tmp:
        _write_safetensors(tmp, tensors, {"source": "torchvision inception_v3", "written_by": "fashionrec"})
        try:
            _core.check_inception_weights(os.fspath(tmp))
        except ValueError as e:  # name the output, not the temporary file
            raise ValueError(str(e).replace(os.fspath(tmp), os.fspath(out))) from None
    return out


def _state_dict(source: Any, torch: Any) -> Mapping[str, Any]:
    if isinstance(source, torch.nn.Module):
        return source.state_dict()
    if isinstance(source, Mapping):
        return source
    if isinstance(source, (str, os.PathLike)):
        obj = _load_plain(os.fspath(source), torch)
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            return obj["state_dict"]
        if isinstance(obj, Mapping):
            return obj
        raise ValueError(f"{os.fspath(source)}: holds a {type(obj).__name__}, not a state dict")
    raise TypeError(f"source must be a state dict, a torch module or a path, not {type(source).__name__}")


def _load_plain(path: str, torch: Any) -> Any:
    """``torch.load`` that never runs code from the file: tensors and plain containers only
    (``weights_only=True``); anything more is a ValueError saying so."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: Is a directory, not a weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # noqa: BLE001 - UnpicklingError (objects beyond tensors), a damaged file...
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path}: not a file of plain tensors that can be loaded without running code from it "
            f"(torch.load(weights_only=True) refused it: {first}). fashionrec never unpickles "
            "arbitrary objects; if you trust the file, load it yourself and pass the state dict "
            "(e.g. torch.load(path, weights_only=False).state_dict())"
        ) from None


def _write_safetensors(path: Path, tensors: Mapping[str, Any], metadata: dict[str, str]) -> None:
    """The safetensors layout: u64 header length, JSON header (8-byte aligned), raw data,
    written to ``path`` (the caller's temporary file)."""
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
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


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
