"""One rank of the distributed tests (tests/test_distributed.py starts it, once per rank, with
torchrun's environment variables): fits the named cases and writes each one's parameters and
history to the output folder. Not a test module itself."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import fashionrec as fr  # noqa: E402
from test_core import _bank, _pairs, _taste  # noqa: E402

#: Every libtorch model, without dropout (a rank draws the masks of its own share, so with
#: dropout the ranks are not the single process's draws).
CASES = {
    "bpr_torch": (lambda: fr.BPR(factors=8, epochs=2, batch_size=64, backend="torch", device="cpu", threads=1), {}),
    "triplet": (lambda: fr.TripletModel(factors=8, epochs=2, batch_size=64, device="cpu", threads=1), {}),
    "triplet_sparse_adam": (lambda: fr.TripletModel(factors=8, epochs=2, batch_size=63, device="cpu", threads=1, optimizer="sparse_adam", item_bias=True), {}),
    "deep_triplet": (lambda: fr.DeepTripletModel(factors=8, user_factors=4, hidden=(8,), dropout=0.0, epochs=2, batch_size=64, device="cpu", threads=1), {}),
    "deep_triplet_sparse_adam": (lambda: fr.DeepTripletModel(factors=8, user_factors=4, hidden=(8,), dropout=0.0, epochs=2, batch_size=63, device="cpu", threads=1, optimizer="sparse_adam"), {}),
    "hybrid_bpr": (lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), dropout=0.0, epochs=2, batch_size=64, device="cpu", threads=1), {"side": True}),
    "vbpr": (lambda: fr.VBPR(factors=4, visual_factors=4, epochs=2, batch_size=64, device="cpu", threads=1), {"features": True}),
    "sampled_softmax": (lambda: fr.SampledSoftmax(factors=8, n_negatives=5, epochs=2, batch_size=64, device="cpu", threads=1), {}),
    "compatibility": (lambda: fr.CompatibilityModel(factors=3, epochs=2, batch_size=32, device="cpu", threads=1), {"pairs": True}),
    "dvbpr": (lambda: fr.DVBPR(factors=4, image_size=32, fc_width=16, epochs=2, lr=1e-3, batch_size=64, device="cpu", threads=1), {"images": True}),
}


def data_for(case: str, folder: pathlib.Path, shift: int = 0):
    """The case's training data and side data (`shift` makes other data, for the tests of
    ranks that disagree)."""
    train, users, items, feats = _taste()
    how = CASES[case][1]
    kwargs: dict = {}
    if how.get("side"):
        kwargs = dict(user_features=users, item_features=items)
    if how.get("features"):
        kwargs = dict(item_features=feats + shift)
    if how.get("pairs"):
        train, pair_feats = _pairs()
        kwargs = dict(item_features=pair_feats)
    if how.get("images"):
        kwargs = dict(images=_bank(folder, train.n_items))
    if shift and not kwargs:
        users_, items_ = train.to_pandas()["user"].to_numpy(), train.to_pandas()["item"].to_numpy()
        train = fr.Interactions.from_ids(users_[shift:], items_[shift:], user_ids=train.user_ids, item_ids=train.item_ids)
    return train, kwargs


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    mode = sys.argv[2]
    cases = [c for c in sys.argv[3].split(",") if c] if len(sys.argv) > 3 else []
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        fr.distributed.init(timeout=60)
    scratch = out / f"scratch{rank}"
    scratch.mkdir(parents=True, exist_ok=True)
    results = {}
    if mode == "bank_cache":
        # Every rank builds a bank with one cache file: the first process decodes, the
        # others map its file.
        paths = sorted((out / "pngs").glob("*.png"))
        bank = fr.ImageBank.from_files(paths, size=32, ids=np.arange(len(paths)), cache=out / "bank.cache", progress=False)
        results["bank"] = {"cache": bank.cache_status, "sum": int(bank.images(np.arange(len(paths))).sum())}
    for case in cases:
        train, kwargs = data_for(case, scratch, shift=rank if mode == "other_data" else 0)
        model = CASES[case][0]()
        callback = None
        if mode == "raise_on_rank1" and rank == 1:
            def callback(epoch, logs):
                raise ZeroDivisionError("a user's callback failed on rank 1")
        if mode == "exit_on_rank1" and rank == 1:
            def callback(epoch, logs):
                os._exit(3)
        if mode == "resume":
            # Stopped after the first epoch (a checkpoint in a folder every rank sees), then
            # resumed by a new model.
            ckpt = out / "checkpoints"
            model.fit(train, progress=False, distributed=True, checkpoint_dir=ckpt, callback=lambda e, logs: e < 1, **kwargs)
            model = CASES[case][0]()
            kwargs = dict(kwargs, checkpoint_dir=ckpt, resume=True)
        if mode == "validate":
            # Validation metrics after every epoch: computed on every rank from the same
            # parameters, so every rank's history is the single process's.
            train, held_out = fr.split.random_split(train, 0.2, seed=1)
            kwargs = dict(kwargs, validation=held_out, metrics=("auc", "ndcg@10"))
        try:
            model.fit(train, progress=False, distributed=world > 1, callback=callback, **kwargs)
        except Exception as e:  # the failure modes are what the test reads
            results[case] = {"error": f"{type(e).__name__}: {e}"}
            continue
        state = model._core.state()
        np.savez(out / f"{case}-rank{rank}-of{world}{'-' + mode if mode in ('resume', 'validate') else ''}.npz", **state)
        results[case] = {"history": model.history_}
        if mode == "save":
            model.save(out / f"{case}.safetensors")
    (out / f"results-rank{rank}-of{world}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
