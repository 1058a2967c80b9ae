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


class _RunsCode:
    """Pickles as a call that creates a marker file: what a hostile .pth does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_converter_never_runs_code_from_a_file(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "payload": _RunsCode(marker)}, evil)
    out = tmp_path / "w.safetensors"
    with pytest.raises(ValueError, match="evil.pth.*weights_only=True") as e:
        fr.io.convert_inception_weights(evil, out)
    assert "running code" in str(e.value)
    assert not marker.exists(), "loading the file ran code from it"
    assert not out.exists()


def test_converter_says_when_a_file_needs_more_than_tensors(tmp_path):
    """A whole pickled module cannot be loaded safely: refused, with the way out."""
    whole = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), whole)
    with pytest.raises(ValueError, match="plain tensors.*state_dict"):
        fr.io.convert_inception_weights(whole, tmp_path / "w.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["module.pth"]


def test_a_failed_conversion_keeps_the_users_file(converted, tmp_path):
    if not converted[2]:
        pytest.skip("once is enough")
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"the user's previous weights")
    sd = dict(converted[0].state_dict())
    del sd["Mixed_6b.branch7x7_2.conv.weight"]
    with pytest.raises(ValueError, match="Mixed_6b.branch7x7_2.conv.weight") as e:
        fr.io.convert_inception_weights(sd, out)
    assert "partial" not in str(e.value), "the error names the temporary file, not the output"
    assert out.read_bytes() == b"the user's previous weights"
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"], "temporary file left behind"
    # A successful conversion replaces it (a new file, renamed over the old one).
    fr.io.convert_inception_weights(converted[0], out)
    assert out.read_bytes() == converted[1].read_bytes()


def test_output_equal_to_input_is_refused(converted, tmp_path):
    if not converted[2]:
        pytest.skip("once is enough")
    pt = tmp_path / "inception.pth"
    torch.save(converted[0].state_dict(), pt)
    before = pt.read_bytes()
    link = tmp_path / "link.pth"
    link.symlink_to(pt)
    for out in (pt, link, tmp_path / "." / "inception.pth"):
        with pytest.raises(ValueError, match="is the input file") as e:
            fr.io.convert_inception_weights(pt, out)
        assert str(out) in str(e.value) and str(pt) in str(e.value)
    assert pt.read_bytes() == before
