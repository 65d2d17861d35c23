"""ViewEnsemble (ferindex/nn/ensemble.py): two networks, one per view of the face, must give
exactly what their members give, and an exported ensemble must load and embed like any model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ferindex.embed import ensemble_member, export_model, load_model
from ferindex.data.inputs import make_chips, to_tensors
from ferindex.errors import ModelError
from ferindex.evaluation import saw_ckplus
from ferindex.nn.ensemble import ViewEnsemble
from ferindex.nn.model import build_model

MEMBER = {"backbone": "resnet", "backbone_kw": {"width": 0.25}, "dim": 8, "head": "linear"}


def _ensemble(views: list[str]) -> ViewEnsemble:
    torch.manual_seed(0)
    return ViewEnsemble([MEMBER, MEMBER], views, n_classes=8, dim=8).eval()


def test_each_member_sees_its_view_and_logits_are_averaged() -> None:
    net = _ensemble(["face", "mirror"])
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        z, logits = net({"face": x})
        z0, l0 = net.members[0]({"face": x})
        z1, l1 = net.members[1]({"face": x.flip(-1)})
        both = _ensemble(["both", "face"]).members[0]({"face": torch.cat([x, x.flip(-1)])})
    assert torch.allclose(z, net.proj(torch.cat([z0, z1], 1)), atol=1e-6)
    assert torch.allclose(logits, (l0 + l1) / 2, atol=1e-6)
    # "both" averages the member over the face and its mirror, as mirror TTA does
    with torch.no_grad():
        zb, _ = _ensemble(["both", "face"]).member_outputs(x)[0]
    assert torch.allclose(zb, sum(both[0].chunk(2)) / 2, atol=1e-6)
    # a mirrored face through face/mirror members is the same as swapping the views
    with torch.no_grad():
        swapped = ViewEnsemble([MEMBER, MEMBER], ["mirror", "face"], 8, 8).eval()
        swapped.load_state_dict(net.state_dict())
        assert torch.allclose(swapped({"face": x.flip(-1)})[0], z, atol=1e-5)


def test_bad_views_are_refused() -> None:
    with pytest.raises(ValueError, match="one view per member"):
        ViewEnsemble([MEMBER, MEMBER], ["face"], 8)
    with pytest.raises(ValueError, match="unknown ensemble view"):
        ViewEnsemble([MEMBER], ["left"], 8)


def test_exported_ensemble_loads_and_embeds_like_a_model(tmp_path: Path) -> None:
    net = _ensemble(["face", "mirror"])
    arch = {"members": [MEMBER, MEMBER], "views": ["face", "mirror"], "dim": 8, "n_classes": 8}
    card = {"name": "ens", "classes": [f"c{i}" for i in range(8)], "arch": arch, "metric": "euclidean",
            "input": {"size": 48, "framing": "fer2013", "flip_tta": False}}
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (10, 48, 48), dtype=np.uint8)
    model = export_model(net, card, faces, np.arange(10) % 8, tmp_path / "ens")
    assert isinstance(build_model(json.loads((tmp_path / "ens.json").read_text())["arch"]), ViewEnsemble)
    z, p = model.embed_and_proba(faces)
    assert z.shape == (10, 8) and p.shape == (10, 8) and np.allclose(p.sum(1), 1, atol=1e-5)
    bank_z, bank_y = model.reference_bank()
    assert np.allclose(bank_z, z, atol=1e-2) and bank_y.tolist() == (np.arange(10) % 8).tolist()
    # loading again from disk gives the same vectors
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "again.safetensors"))
    (tmp_path / "again.json").write_text(json.dumps(card))
    assert np.allclose(load_model(tmp_path / "again.json").embed(faces), z, atol=1e-5)


def test_a_member_exported_alone_embeds_as_inside_the_ensemble(tmp_path: Path) -> None:
    """scripts/split_ensemble.py: member i on its own (with mirror TTA) gives the ensemble's
    member i averaged over both views; its card keeps its architecture and training record."""
    net = _ensemble(["face", "mirror"])
    training = {"ensemble": {}, "members": [{"command": "a"}, {"command": "b"}]}
    card = {"name": "ens", "classes": [f"c{i}" for i in range(8)], "metric": "euclidean",
            "arch": {"members": [MEMBER, MEMBER | {"dim": 8}], "views": ["face", "mirror"], "dim": 8, "n_classes": 8},
            "input": {"size": 48, "framing": "fer2013", "flip_tta": False}, "training": training,
            "calibration": {"prior": [1] * 8}}
    faces = np.random.default_rng(0).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    ensemble = export_model(net, card, faces, np.arange(6), tmp_path / "ens")
    member_net, member_card = ensemble_member(ensemble, 1)
    assert member_card["training"] == {"command": "b"} and member_card["input"]["flip_tta"]
    assert member_card["arch"] == MEMBER | {"dim": 8, "n_classes": 8} and "calibration" not in member_card
    member = export_model(member_net, member_card, faces, np.arange(6), tmp_path / "member1")
    x = to_tensors(make_chips(faces, ("face",)), slice(None))["face"]
    with torch.no_grad():
        inside = (net.members[1]({"face": x})[0] + net.members[1]({"face": x.flip(-1)})[0]) / 2
    assert np.allclose(member.embed(faces), inside.numpy(), atol=1e-4)
    with pytest.raises(ModelError, match="no member 2"):
        ensemble_member(ensemble, 2)
    with pytest.raises(ModelError, match="not an ensemble"):
        ensemble_member(member, 0)


def test_an_ensemble_saw_ckplus_when_any_member_did() -> None:
    """The evaluation labels CK+ scores as training-set scores when any member, or any model a
    member was fine-tuned from, trained on CK+48."""
    fer_only = {"data": "FER2013 Training with FER+ vote distributions"}
    with_ck = {"data": "FER2013 Training with FER+ vote distributions + CK+48 (all subjects, x4)"}
    assert not saw_ckplus(fer_only) and saw_ckplus(with_ck)
    assert saw_ckplus({"ensemble": {}, "members": [fer_only, with_ck]})
    assert not saw_ckplus({"ensemble": {}, "members": [fer_only, fer_only]})
    assert saw_ckplus(fer_only | {"init": with_ck})  # fine-tuned on FER+ alone from a CK+-trained model
    assert not saw_ckplus(fer_only | {"init": None})
