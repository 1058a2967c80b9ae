"""Inception v3: torchvision weights converted to safetensors, and our forward pass against
torchvision's on the same (randomly initialised) weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fashionrec as fr
from fashionrec import _core

tv = pytest.importorskip("torchvision", reason="torchvision (0.26 for torch 2.11) is needed to build the reference network")

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def reference(transform_input: bool) -> torch.nn.Module:
    """torchvision's network with random weights and random batch-norm statistics (so every
    parameter and buffer matters), in eval mode."""
    torch.manual_seed(0)
    net = tv.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=transform_input)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module", params=[True, False], ids=["transform_input", "plain"])
def converted(request, tmp_path_factory):
    """(reference network, its converted weights file, transform_input), built once each."""
    net = reference(request.param)
    path = fr.io.convert_inception_weights(net, tmp_path_factory.mktemp("w") / "w.safetensors")
    return net, path, request.param


def test_forward_matches_torchvision(converted):
    net, path, transform_input = converted
    x = images(3, 80)
    ours = fr.inception_features(x, path, transform_input=transform_input, device="cpu", batch_size=2)
    head = net.fc
    net.fc = torch.nn.Identity()
    try:
        with torch.no_grad():
            pixels = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
            ref = net((pixels - MEAN) / STD).numpy()
    finally:
        net.fc = head
    assert ours.shape == (3, 2048) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_converter_takes_a_state_dict_a_module_or_a_file(converted, tmp_path):
    net, path, transform_input = converted
    if not transform_input:
        pytest.skip("once is enough")
    sd = {"module." + k: v for k, v in net.state_dict().items()}  # as saved from DataParallel
    pt = tmp_path / "inception.pth"
    torch.save(sd, pt)
    again = fr.io.convert_inception_weights(pt, tmp_path / "a.safetensors")
    assert again.read_bytes() == path.read_bytes()
    # 94 conv + batch-norm units, 5 tensors each; fc, AuxLogits and counters left out.
    assert _core.check_inception_weights(str(path)) == 470


def test_converter_errors_name_the_problem_and_leave_no_file(converted, tmp_path):
    if not converted[2]:
        pytest.skip("once is enough")
    sd = dict(converted[0].state_dict())
    del sd["Mixed_6b.branch7x7_2.conv.weight"]
    out = tmp_path / "w.safetensors"
    with pytest.raises(ValueError, match="Mixed_6b.branch7x7_2.conv.weight"):
        fr.io.convert_inception_weights(sd, out)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="not a torchvision inception_v3"):
        fr.io.convert_inception_weights({"conv.weight": torch.zeros(2)}, out)
    with pytest.raises(TypeError):
        fr.io.convert_inception_weights(42, out)
    with pytest.raises(ValueError, match="at least 75"):
        fr.inception_features(images(1, 64), converted[1], device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        fr.inception_features(images(1, 80).astype(np.float32), converted[1])
