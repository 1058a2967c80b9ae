"""DVBPR: visually-aware recommendation trained end to end from item photos."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from .. import _core
from .._guard import fitting
from .base import Recommender

if TYPE_CHECKING:
    from .._progress import EpochCallback
    from ..images import ImageBank
    from ..interactions import Interactions
    from .cae import ConvAutoencoder


class DVBPR(Recommender):
    """DVBPR (Kang et al. 2017): ``score(u, i) = theta_u . phi(image_i)``, where ``phi`` is an
    image network trained together with the user vectors ``theta`` on sampled (user,
    positive, negative) triples to minimise ``-sum ln sigmoid(theta_u . (phi(i) - phi(j)))``
    plus ``reg_cnn |conv weights|^2 + reg_fc |fc weights|^2 + reg_user |theta_u|^2``
    (the batch's users), with Adam.

    The network (``tower="cnnf"``) is the paper's CNN-F: conv 11x11x64 stride 4, max-pool,
    conv 5x5x256, max-pool, 3x conv 3x3x256, max-pool, fc 4096, fc 4096, fc ``factors``; ReLU; dropout
    0.5 on the fc 4096 layers while training. It takes the bank's uint8 images and
    normalises them to [-1, 1] itself; ``image_size`` other than 224 works (the fc input
    follows from it; 32 or 64 for quick runs on a CPU).

    ``fit(train, images=bank)``: the catalogue is the bank's items, so items with a photo
    and no interaction (cold items) are scored too; a training item without a photo is a
    ValueError naming it. After every epoch ``phi`` is computed for every item in batches,
    so scoring, validation and recommending never run the network per user. A saved model
    holds the network and those embeddings: a loaded one scores without the images and
    embeds new ones with :meth:`embed_images`.

    Towers on a pretrained backbone (frozen in a store of its own, run without gradients,
    followed by a trained head to ``factors``: dropout, linear to ``head["hidden"]``, ReLU,
    dropout, linear; ``hidden=0`` for one linear layer):

    * ``tower="cae"``: the encoder of a convolutional autoencoder. ``encoder=`` a fitted
      :class:`~fashionrec.ConvAutoencoder` (trained at ``image_size``) is used as it is;
      without it, ``fit`` first pretrains one on every image of the bank (``latent``,
      ``cae_channels``, ``cae_depth``; ``pretrain_epochs`` at ``pretrain_lr``, batches of
      ``batch_size`` images; its losses in ``pretrain_history_``).
    * ``tower="inception_v3"``: Inception v3 with the ImageNet weights of the safetensors file
      ``weights`` (write it once with :func:`fashionrec.io.convert_inception_weights` from
      torchvision's; nothing is ever downloaded). The bank stays uint8: the network
      normalises its input as the weights expect. ``image_size`` at least 75 (299 is its
      own). ``train_backbone=True`` fine-tunes the backbone with the head (its conv weights
      under ``reg_cnn``; batch norm in training mode).

    ``reg_fc`` weighs the head's weights (CNN-F: its fc weights) and ``reg_cnn`` the
    trained conv weights (CNN-F's; a fine-tuned Inception's). A saved model holds the frozen
    backbone too, so :func:`fashionrec.load` scores and :meth:`embed_images` embeds new
    photos without the encoder or the weights file.

    On CUDA the bank is copied to the GPU once when it fits (each batch is gathered and
    normalised there, with no per-step host work or synchronisation), else it is gathered on
    the host into pinned memory per batch; bf16 and channels-last are on by default there.

    Args:
        factors: dimension of ``theta_u`` and ``phi(image)`` (the paper's K).
        tower: the image network: ``"cnnf"``, ``"cae"`` or ``"inception_v3"`` (above).
        image_size: side of the square images (the bank must hold this size).
        epochs: passes over the training interactions (one triple per interaction).
        lr: Adam's learning rate.
        batch_size: triples per step (two images each).
        reg_cnn, reg_fc, reg_user: L2 weights on the conv weights, the fc weights and
            the batch's user vectors.
        init_std: standard deviation of the initial user vectors.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds the network, the user vectors, the triples and the dropout masks.
        threads: CPU threads for sampling and gathering images; 0 uses every core.
        fc_width: width of CNN-F's two hidden fc layers (4096, the paper's; a smaller width
            is only for quick runs on a CPU, e.g. tests).
        space_to_depth: run CNN-F's conv1 as the exactly equivalent stride-1 convolution
            over 4x4 pixel blocks; None: on CUDA only (on the CPU the plain strided
            convolution measured faster).
        channels_last, bf16: activation layout and bfloat16 compute; None: on CUDA only.
        resident_images: ``"auto"`` (the bank goes to the GPU when it fits), ``"device"``,
            ``"host"``.
        embed_batch: images per batch when embedding every item.
        encoder: tower="cae": a fitted :class:`~fashionrec.ConvAutoencoder` whose encoder is
            frozen under the head (its shape replaces ``latent``, ``cae_channels`` and
            ``cae_depth``); None: one is pretrained in ``fit``.
        head: towers "cae" and "inception_v3": ``{"hidden": int, "dropout": float}``, either
            key optional; None: ``hidden=512`` for "cae", 0 for "inception_v3", dropout 0.5.
        latent, cae_channels, cae_depth: tower="cae": shape of the autoencoder pretrained in
            ``fit`` (code size, first convolution's channels, stride-2 convolutions).
        pretrain_epochs, pretrain_lr: tower="cae" without ``encoder``: its pretraining.
        weights: tower="inception_v3": path of the safetensors ImageNet weights (required;
            read by ``fit`` only).
        train_backbone: tower="inception_v3": fine-tune the backbone instead of freezing it.
        transform_input: tower="inception_v3": torchvision's flag (True for its ImageNet weights).
    """

    kind = "dvbpr"

    def __init__(
        self,
        factors: int = 50,
        tower: Literal["cnnf", "cae", "inception_v3"] = "cnnf",
        image_size: int = 224,
        epochs: int = 20,
        lr: float = 1e-4,
        batch_size: int = 128,
        reg_cnn: float = 1e-3,
        reg_fc: float = 1e-3,
        reg_user: float = 1.0,
        init_std: float = 0.01,
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
        fc_width: int = 4096,
        space_to_depth: bool | None = None,
        channels_last: bool | None = None,
        bf16: bool | None = None,
        resident_images: Literal["auto", "device", "host"] = "auto",
        embed_batch: int = 256,
        *,
        encoder: ConvAutoencoder | None = None,
        head: dict[str, Any] | None = None,
        latent: int = 128,
        cae_channels: int = 32,
        cae_depth: int = 4,
        pretrain_epochs: int = 10,
        pretrain_lr: float = 1e-3,
        weights: str | os.PathLike | None = None,
        train_backbone: bool = False,
        transform_input: bool = True,
    ):
        super().__init__(
            factors=factors,
            tower=tower,
            image_size=image_size,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            reg_cnn=reg_cnn,
            reg_fc=reg_fc,
            reg_user=reg_user,
            init_std=init_std,
            device=device,
            seed=seed,
            threads=threads,
            fc_width=fc_width,
            space_to_depth=space_to_depth,
            channels_last=channels_last,
            bf16=bf16,
            resident_images=resident_images,
            embed_batch=embed_batch,
            head=None if head is None else dict(head),
            latent=latent,
            cae_channels=cae_channels,
            cae_depth=cae_depth,
            pretrain_epochs=pretrain_epochs,
            pretrain_lr=pretrain_lr,
            weights=None if weights is None else os.fspath(weights),
            train_backbone=train_backbone,
            transform_input=transform_input,
        )
        self._encoder = None
        if encoder is not None:
            self._set_encoder(encoder)  # checked now: a wrong encoder fails here, not in fit
            self._encoder = encoder

    def _set_encoder(self, encoder: Any) -> None:
        """Give the core model the encoder's weights; its shape goes into the parameters, so
        get_params() and a saved model describe the tower."""
        from .cae import ConvAutoencoder

        if not isinstance(encoder, ConvAutoencoder):
            raise TypeError(f"encoder must be a fitted fashionrec.ConvAutoencoder, not {type(encoder).__name__}")
        self._core.set_encoder(encoder._core)
        config = json.loads(self._core.config_json())
        for key in ("latent", "cae_channels", "cae_depth"):
            self._params[key] = config[key]

    def fit(
        self,
        train: Interactions,
        *,
        images: ImageBank | None = None,
        validation: Interactions | None = None,
        metrics: Sequence[str] = ("auc", "ndcg@10"),
        progress: bool = True,
        callback: EpochCallback | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        **side: Any,
    ) -> DVBPR:
        """Train on ``train`` with the item photos ``images`` (an :class:`~fashionrec.ImageBank`
        whose ``ids`` cover every training item); see :meth:`Recommender.fit` for
        ``validation``, ``metrics``, ``progress`` and ``callback``.

        ``checkpoint_dir``, ``resume``: as every model's (:meth:`Recommender.fit`). The
        checkpoint also holds the tower's frozen backbone, so a resumed fit neither pretrains
        the autoencoder again nor reads the ``weights`` file."""
        with fitting(self):  # before the core model is replaced: a second fit is refused
            if images is None:
                raise ValueError("DVBPR needs images=: an ImageBank of the items' photos")
            self._core = _core.Model(self.kind, json.dumps(self._params))
            encoder = getattr(self, "_encoder", None)
            if encoder is not None:  # copied again: it may have been refitted since
                self._set_encoder(encoder)
            super().fit(
                train,
                validation=validation,
                metrics=metrics,
                progress=progress,
                callback=callback,
                images=images,
                checkpoint_dir=checkpoint_dir,
                resume=resume,
                **side,
            )
        return self

    def _after_fit(self) -> None:
        super()._after_fit()
        hist = self._core.pretrain_history()
        self.pretrain_history_ = {key: [h[key] for h in hist] for key in ("epoch", "loss", "seconds")}

    def item_embeddings(self) -> np.ndarray:
        """``phi(image)`` of every catalogue item, float32 ``(n_items, factors)`` in ``item_ids`` order."""
        return self._core.item_vectors()

    def user_embeddings(self) -> np.ndarray:
        """``theta_u`` of every user, float32 ``(n_users, factors)`` in ``user_ids`` order."""
        return self._core.user_vectors()

    def embed_images(self, bank: ImageBank) -> np.ndarray:
        """``phi`` of every image of ``bank`` (new products the model never saw), float32
        ``(len(bank), factors)`` in the bank's row order. Score them for a user with
        ``model.user_embeddings()[u] @ model.embed_images(bank).T``."""
        side = _core.SideInfo(images=bank._core)
        return self._core.embed_new_items(side)
