"""DVBPR trained on several processes: one per GPU (NCCL), or CPU processes (gloo).

    torchrun --nproc-per-node 2 examples/train_distributed.py              # one machine
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 \\
        --master-addr host0 --master-port 29500 examples/train_distributed.py   # on host0
    torchrun --nnodes 2 --node-rank 1 --nproc-per-node 4 \\
        --master-addr host0 --master-port 29500 examples/train_distributed.py   # on host1

Every process runs this whole script: each reads the same data (the check at the start of
fit refuses ranks whose data differ), trains on its share of every global batch, and rank 0
writes the checkpoints and the model. The checkpoint folder must be one every rank sees (a
shared file system) for resume=True.
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np

import fashionrec as fr

device = fr.distributed.init()  # "cuda:<LOCAL_RANK>" or "cpu"
rank = fr.distributed.rank()

# Small generated photos and interactions, the same in every process (seeded). With the
# DVBPR data: fr.datasets.dvbpr(...) and an ImageBank cache built once before the launch.
n_items, n_users = 300, 200
_, pixels = fr.datasets.synthetic_catalogue(n_items, 64, seed=3)
folder = pathlib.Path(tempfile.mkdtemp(prefix=f"rank{rank}-"))
bank = fr.ImageBank.from_files(fr.testing.write_pngs(pixels, folder), size=64, ids=np.arange(n_items), progress=False)
rng = np.random.default_rng(0)
train = fr.Interactions.from_ids(rng.integers(0, n_users, 3000), rng.integers(0, n_items, 3000), item_ids=np.arange(n_items), duplicates="max")

model = fr.DVBPR(image_size=64, epochs=2, batch_size=64, device=device)
model.fit(train, images=bank, distributed=True, checkpoint_dir="dvbpr-checkpoints", resume=True)
model.save("dvbpr.safetensors")  # rank 0 writes; the others wait for it
if rank == 0:
    print(model.history_)
