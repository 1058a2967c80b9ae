"""Quality on cold items: DVBPR (CNN-F and CAE towers) and VBPR vs BPR-MF on the fashion-product
photos with synthetic users whose tastes are visual attributes (``fr.datasets.visual_taste``:
each user likes a few (baseColour, articleType) combinations; 20% of the items are cold,
never seen in training).

Metrics (``fr.evaluate``, candidates excluding the user's training items):
* cold: each user's cold items against the other cold items (``items=cold_items``): AUC
  and DVBPR's sampled AUC (100 sampled unobserved cold items per positive);
* warm: the held-out warm test item against the other warm items.

Settings are chosen on the warm validation split only (``--choose``: a small grid of learning
rates for DVBPR, scored by val AUC); the cold items and the test split are never used to
choose anything.

    python benches/dvbpr_quality.py [--size 32 --users 600 --epochs 8 --fc-width 512]

The CAE tower's row includes its autoencoder's pretraining time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import fashionrec as fr

DATA = Path(os.environ.get("FASHIONREC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def catalogue(size: int, seed: int):
    """(items DataFrame, ImageBank, description): the real photos when present, else generated."""
    folder = DATA / "fashion-product-images-small"
    if folder.is_dir():
        cat = fr.datasets.fashion_products(folder)
        items = cat.items[cat.items["has_image"]]
        return items, cat.images, f"fashion-product photos ({folder})"
    items, images = fr.datasets.synthetic_catalogue(1200, size, seed=seed)
    tmp = tempfile.mkdtemp()
    paths = fr.testing.write_pngs(images, tmp)
    return items, fr.ImageSource.from_files(paths, ids=items.index.to_numpy()), "generated shapes (real photos absent)"


def bank_for(source: fr.ImageSource, ids: np.ndarray, size: int) -> fr.ImageBank:
    """A bank of the catalogue's items only (rows in ``ids`` order)."""
    where = {int(i): k for k, i in enumerate(source.ids)}
    paths = source.paths
    sub = fr.ImageSource.from_files([paths[where[int(i)]] for i in ids], ids=ids)
    return fr.ImageBank.from_source(sub, size=size, progress=False)


def scores(model, vt, name: str, seconds: float) -> dict:
    cold = fr.evaluate(model, vt.cold_test, train=vt.train, items=vt.cold_items, metrics=["auc", "sampled_auc"])
    warm = fr.evaluate(
        model, vt.test, train=vt.train, exclude=[vt.validation], items=vt.warm_items, metrics=["auc", "sampled_auc"]
    )
    row = {"model": name, "cold_auc": cold["auc"], "cold_sampled_auc": cold["sampled_auc"], "warm_auc": warm["auc"], "fit_s": seconds}
    print(
        f"{name:34s} cold AUC {row['cold_auc']:.4f}  cold sampled AUC {row['cold_sampled_auc']:.4f}  "
        f"warm AUC {row['warm_auc']:.4f}  fit {seconds:6.1f} s",
        flush=True,
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--users", type=int, default=600)
    p.add_argument("--items-per-user", type=int, default=20)
    p.add_argument("--min-group", type=int, default=20, help="smallest colour x type group kept in the catalogue")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="DVBPR learning rate (default: chosen on validation)")
    p.add_argument("--choose", default="3e-4,1e-3", help="learning rates tried on the validation split")
    p.add_argument("--fc-width", type=int, default=4096, help="CNN-F's fc layers' width (4096 as in the paper)")
    p.add_argument("--cae-latent", type=int, default=64, help="code size of the CAE tower's autoencoder")
    p.add_argument("--cae-epochs", type=int, default=10, help="the autoencoder's pretraining epochs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    items, source, what = catalogue(args.size, args.seed)
    vt = fr.datasets.visual_taste(
        items, n_users=args.users, items_per_user=args.items_per_user, min_group=args.min_group, seed=args.seed
    )
    ids = vt.train.item_ids
    bank = bank_for(source, ids, args.size)
    print(
        f"{what}: {len(ids)} items ({len(vt.cold_items)} cold), {args.users} users, {len(vt.train)} training "
        f"interactions, {len(vt.cold_test)} cold test interactions; images {args.size}x{args.size}"
    )
    rows = []

    t = time.perf_counter()
    bpr = fr.BPR(factors=args.factors, epochs=50, device="cpu", seed=args.seed).fit(vt.train, progress=False)
    rows.append(scores(bpr, vt, "BPR-MF (same factors, defaults)", time.perf_counter() - t))

    def dvbpr(lr: float, **tower):
        model = fr.DVBPR(
            factors=args.factors, image_size=args.size, epochs=args.epochs, lr=lr, batch_size=args.batch, device="cpu", seed=args.seed,
            **tower,
        )
        start = time.perf_counter()
        model.fit(vt.train, images=bank, validation=vt.validation, metrics=["auc"], progress=False)
        return model, time.perf_counter() - start

    def chosen(name: str, extra_seconds: float = 0.0, **tower) -> dict:
        """Each candidate learning rate is trained once, with the warm validation split
        monitored; the one with the best final validation AUC is the model reported (test and
        cold items are not looked at to choose)."""
        best = None
        for cand in [args.lr] if args.lr else [float(x) for x in args.choose.split(",")]:
            model, secs = dvbpr(cand, **tower)
            val = model.history_["val_auc"][-1]
            print(f"  {name} lr={cand:g}: validation AUC by epoch {[round(v, 4) for v in model.history_['val_auc']]}", flush=True)
            if best is None or val > best[0]:
                best = (val, cand, model, secs)
        _, lr, model, secs = best
        how = "given" if args.lr else "chosen on validation"
        return scores(model, vt, f"{name} (lr={lr:g}, {how})", secs + extra_seconds)

    rows.append(chosen("DVBPR CNN-F", fc_width=args.fc_width))

    # The CAE tower: an autoencoder pretrained on the catalogue's photos (once; its time is
    # added to the row's), its encoder frozen under a trained head.
    t = time.perf_counter()
    cae = fr.ConvAutoencoder(
        latent=args.cae_latent, image_size=args.size, depth=max(d for d in range(1, 5) if args.size % (1 << d) == 0), epochs=args.cae_epochs,
        device="cpu", seed=args.seed,
    ).fit(bank, progress=False)
    pretrain = time.perf_counter() - t
    print(f"  autoencoder: reconstruction loss by epoch {[round(v, 4) for v in cae.history_['loss']]} ({pretrain:.1f} s)")
    rows.append(chosen("DVBPR CAE", pretrain, tower="cae", encoder=cae))

    # VBPR on fixed, model-free visual features: the photos' pixels mean-pooled to 8x8 (192-d).
    n, size = len(bank), args.size
    pix = bank.array().reshape(n, 8, size // 8, 8, size // 8, 3).mean(axis=(2, 4))
    pix = (pix.reshape(n, -1) / 127.5 - 1).astype(np.float32)
    t = time.perf_counter()
    vbpr = fr.VBPR(factors=args.factors, visual_factors=args.factors, epochs=30, device="cpu", seed=args.seed)
    vbpr.fit(vt.train, item_features=pix, progress=False)
    rows.append(scores(vbpr, vt, "VBPR (features: 8x8 pixels)", time.perf_counter() - t))
    for r in rows[1:]:
        print(f"cold AUC, {r['model']} - BPR-MF: {r['cold_auc'] - rows[0]['cold_auc']:+.4f}")
    import pandas as pd

    print(pd.DataFrame(rows).set_index("model").round(4).to_string())


if __name__ == "__main__":
    main()
