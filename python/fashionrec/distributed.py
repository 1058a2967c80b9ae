"""Training on several processes, GPUs and machines with PyTorch's own engine.

Launch the same script once per process with ``torchrun`` (it sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``)::

    torchrun --nproc-per-node 2 train.py

and in the script::

    import fashionrec as fr

    device = fr.distributed.init()          # NCCL on GPUs, gloo on CPUs
    model = fr.DVBPR(device=device)
    model.fit(train, images=bank, distributed=True)
    model.save("dvbpr.safetensors")         # rank 0 writes, the others wait

Each rank draws every global batch from the same seeded streams and trains on its share
(``batch_size`` is the global batch); after each backward pass the gradients are summed over
the ranks (one flattened bucket; the row-sparse optimiser sends the touched rows only), so
every rank takes the same optimiser step and the parameters are those of one process
training on the same global batches, up to the order of float sums.

A process group the user created with ``torch.distributed.init_process_group`` works the
same way: ``fit(..., distributed=True)`` uses the default group.
"""

from __future__ import annotations

import atexit
import ctypes
import os
from datetime import timedelta
from typing import Any

__all__ = ["init", "is_initialized", "rank", "world_size"]


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed")
    return dist


def init(backend: str | None = None, *, timeout: float = 1800.0) -> str:
    """Joins the process group torchrun describes (environment variables ``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and returns this process's device:
    ``"cuda:<LOCAL_RANK>"`` when CUDA is present, else ``"cpu"``.

    ``backend``: ``"nccl"`` when CUDA is present, ``"gloo"`` otherwise (the default).
    ``timeout``: seconds a collective waits for the other ranks before failing (a rank that
    died or hangs); torch's default is 30 minutes. Already initialised: returns the device
    without joining again.
    """
    import torch

    dist = _dist()
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if not dist.is_initialized() and missing:
        raise RuntimeError(
            f"fr.distributed.init(): {', '.join(missing)} not set; launch the script with torchrun "
            "(e.g. torchrun --nproc-per-node 2 train.py) or call torch.distributed.init_process_group yourself"
        )
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        chosen = backend or ("nccl" if cuda else "gloo")
        if chosen not in ("nccl", "gloo"):
            raise ValueError(f"backend must be 'nccl' or 'gloo', got {chosen!r}")
        if cuda and chosen == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(chosen, timeout=timedelta(seconds=float(timeout)))
        # The group this call made is closed at exit: a process that exits with a live gloo
        # group can abort in its threads' destructors.
        atexit.register(_close)
    return f"cuda:{local_rank}" if cuda else "cpu"


def _close() -> None:
    try:
        dist = _dist()
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # exiting anyway
        pass


def is_initialized() -> bool:
    """Whether a default process group exists in this process."""
    try:
        return _dist().is_initialized()
    except (ImportError, RuntimeError):
        return False


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return _dist().get_rank() if is_initialized() else 0


def world_size() -> int:
    """Processes in the group (1 without a process group)."""
    return _dist().get_world_size() if is_initialized() else 1


_DTYPES = {
    "float32": ("float32", "<f4"),
    "float64": ("float64", "<f8"),
    "float16": ("float16", "<f2"),
    "bfloat16": ("bfloat16", "<V2"),
    "int64": ("int64", "<i8"),
    "int32": ("int32", "<i4"),
    "int8": ("int8", "|i1"),
    "uint8": ("uint8", "|u1"),
}


class _Group:
    """The default process group as the core sees it: collectives on the core's memory
    (address, elements, dtype, device), wrapped as torch tensors without a copy."""

    def __init__(self) -> None:
        dist = _dist()
        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    @staticmethod
    def _tensor(address: int, numel: int, dtype: str, device: str) -> Any:
        import torch

        kind = getattr(torch, _DTYPES[dtype][0])
        if numel == 0:
            return torch.empty(0, dtype=kind, device=device)
        if device == "cpu":
            size = numel * torch.tensor([], dtype=kind).element_size()
            buffer = (ctypes.c_char * size).from_address(address)
            return torch.frombuffer(buffer, dtype=kind, count=numel)
        view = _CudaView(address, numel, _DTYPES[dtype][1])
        return torch.as_tensor(view, device=device)

    def all_reduce(self, address: int, numel: int, dtype: str, device: str) -> None:
        self._dist.all_reduce(self._tensor(address, numel, dtype, device))

    def broadcast(self, address: int, numel: int, dtype: str, device: str, root: int) -> None:
        self._dist.broadcast(self._tensor(address, numel, dtype, device), src=root)

    def all_gather(self, address: int, numel: int, dtype: str, device: str, out: int, out_numel: int) -> None:
        mine = self._tensor(address, numel, dtype, device)
        every = self._tensor(out, out_numel, dtype, device).view(self.world_size, -1)
        self._dist.all_gather(list(every.unbind(0)), mine)

    def barrier(self) -> None:
        self._dist.barrier()

    def agree(self, ok: bool) -> bool:
        """True when every rank passes True."""
        import torch

        flag = torch.tensor([0.0 if ok else 1.0])
        self._dist.all_reduce(flag)
        return bool(flag.item() == 0.0)


class _CudaView:
    """GPU memory of the core's tensor, for ``torch.as_tensor`` (no copy)."""

    def __init__(self, address: int, numel: int, typestr: str):
        # stream None: the core and torch share libtorch's current stream in this process.
        self.__cuda_array_interface__ = {"shape": (numel,), "typestr": typestr, "data": (address, False), "version": 3, "stream": None}


def _group_for(distributed: bool | str) -> _Group | None:
    """The group a fit uses: ``True`` needs an initialised one, ``"auto"`` takes one when
    it exists, ``False`` none."""
    if distributed is False or distributed is None:
        return None
    if distributed == "auto":
        return _Group() if is_initialized() else None
    if distributed is True:
        if not is_initialized():
            raise RuntimeError(
                "distributed=True needs an initialised process group: call fr.distributed.init() "
                "(under torchrun) or torch.distributed.init_process_group(...) first"
            )
        return _Group()
    raise ValueError(f"distributed must be True, False or 'auto', got {distributed!r}")
