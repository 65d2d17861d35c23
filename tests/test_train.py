"""train/train.py: the pieces the shipped model's recipe relies on (FER2013 auxiliary targets,
BatchNorm refresh for averaged weights) and a few real steps of the recipe itself, resumed."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ferindex.data.fer import load_fer
from ferindex.data.inputs import to_tensors
from ferindex.data.mixed import distinct_faces
from ferindex.nn.model import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trainer():
    spec = importlib.util.spec_from_file_location("ferindex_train", ROOT / "train" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def shipped_network(tmp_path_factory) -> Path:
    """The shipped ensemble's first network exported on its own (weights + card), the way a
    fine-tune starts from one network: the shipped architecture, a real warm start."""
    from safetensors.torch import save_file

    from ferindex.embed import ensemble_member, load_model

    net, card = ensemble_member(load_model(), 0)
    folder = tmp_path_factory.mktemp("member")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "member.safetensors")
    (folder / "member.json").write_text(json.dumps(card))
    return folder / "member.safetensors"


def test_a_view_ensemble_as_init_is_refused_with_a_clear_message(trainer, tmp_path) -> None:
    with pytest.raises(SystemExit, match="view ensemble"):
        trainer.main([str(ROOT / "train" / "configs" / "default_swa.json"), "--out", str(tmp_path / "run"),
                      "--set", f"init={ROOT / 'ferindex' / 'models' / 'default.safetensors'}"])


def test_fer2013_targets_are_the_original_labels_of_the_same_rows(trainer, data_dir) -> None:
    train = load_fer("train", "ferplus")
    targets = trainer.fer2013_targets(train)
    raw = np.load(data_dir / "fer2013" / "fer2013.npz")["emotion"][train.rows]
    assert len(targets) == len(train)
    assert np.array_equal(targets, np.where(raw >= 0, raw, -1))
    assert (targets >= 0).mean() > 0.99
    # FER+ relabelled many faces: the two label sets must disagree somewhere, or the head is moot
    assert 0.05 < np.mean(np.array(train.classes)[train.labels] != np.array(
        ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"])[targets.clip(0)]) < 0.6


def test_refresh_bn_recomputes_statistics_from_the_data(trainer) -> None:
    torch.manual_seed(0)
    model = build_model({"backbone": "resnet", "backbone_kw": {"width": 0.25}, "dim": 16, "n_classes": 3})
    chips = {"face": np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)}
    first_bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stale = first_bn.running_mean.clone()
    cpu = torch.device("cpu")
    args = (cpu, torch.bfloat16, torch.contiguous_format, False)
    trainer.refresh_bn(model, chips, *args, bs=64)  # one batch: exactly the data's statistics
    exact = first_bn.running_mean.clone()
    trainer.refresh_bn(model, chips, *args, bs=16)  # four equal batches: their cumulative average
    assert not torch.allclose(stale, exact)
    assert torch.allclose(first_bn.running_mean, exact, atol=1e-5)
    assert first_bn.momentum == 0.1
    with torch.no_grad():
        x = to_tensors(chips, slice(0, 64), cpu)
        assert torch.isfinite(model.eval()(x)[0]).all()


def test_swa_recipe_trains_resumes_and_selects_the_average(trainer, data_dir, tmp_path, shipped_network) -> None:
    """Two epochs of three steps of the shipped recipe (warm start, FER2013 head, SWA), then a
    resume to a third: every loss term is logged and finite, and the average holds three models."""
    out = tmp_path / "run"
    common = ["--out", str(out), "--set", f"init={shipped_network}",
              "max_steps_per_epoch=3", "knn_ref=300", "swa.bn_images=256"]
    trainer.main([str(ROOT / "train" / "configs" / "default_swa.json"), *common, "epochs=2"])
    first_s = torch.load(out / "last.pt", weights_only=False)["trained_s"]
    trainer.main([str(ROOT / "train" / "configs" / "default_swa.json"), "--resume", *common, "epochs=3"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1, 2]
    for r in log:
        assert {"loss_ce", "loss_sgm", "loss_aux_fer2013"} <= r.keys()
        assert all(np.isfinite(v) for v in r.values())
        assert r["val_knn"] > 0.6  # warm-started from the shipped model, a few steps cannot wreck it
    state = torch.load(out / "last.pt", weights_only=False)
    assert int(state["swa"]["n_averaged"]) == 3
    # the card's training time counts the epochs before the resume as well
    assert state["trained_s"] > first_s > 0
    assert json.loads((out / "summary.json").read_text())["duration_s"] >= round(first_s)
    best = torch.load(out / "best.pt")
    assert "n_averaged" not in best and best.keys() == state["model"].keys()
    # the run's config records the architecture it trained: the warm start's, not the defaults
    shipped_arch = json.loads(shipped_network.with_suffix(".json").read_text())["arch"]
    assert json.loads((out / "config.json").read_text())["arch"] == {k: v for k, v in shipped_arch.items() if k != "n_classes"}


def test_fine_tune_card_keeps_the_parent_training_record(trainer) -> None:
    """A warm-started model's card must still say how its starting weights were trained, and
    name every label set the embedding learned from."""
    weights = ROOT / "ferindex" / "models" / "default.safetensors"
    shipped = json.loads(weights.with_suffix(".json").read_text())
    parent = trainer.init_card(str(weights))
    assert parent == shipped and trainer.init_card(str(ROOT / "nope.safetensors")) is None
    cfg = trainer.DEFAULTS | {"init": str(weights), "aux_fer2013": 0.5}
    best = {"epoch": 3, "val_acc": 0.8, "val_knn": 0.79}
    card = trainer.model_card(cfg, shipped["classes"], shipped["arch"], ("face",), best, 12.4, "CPU", parent)
    assert card["training"]["init"] == shipped["training"] and card["training"]["duration_s"] == 12
    assert "FER+ vote distributions" in card["training"]["data"] and "FER2013 labels" in card["training"]["data"]
    scratch = trainer.model_card(trainer.DEFAULTS, shipped["classes"], shipped["arch"], ("face",), best, 1, "CPU", None)
    assert "init" not in scratch["training"] and "auxiliary" not in scratch["training"]["data"]
    assert card["metrics"]["fer_plus_public_test"]["knn11_acc_6k_ref"] == 0.79


def test_bf16_is_never_chosen_without_native_instructions(monkeypatch) -> None:
    """On an AVX2-only CPU bf16 autocast is emulated (~10x slower): no timing, float32."""
    from ferindex.nn import precision

    calls = []
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert not precision.bf16_is_faster(lambda: calls.append(1), lambda: calls.append(1))
    assert calls == []
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "time_step", lambda step: 1.0 if step() == "fp32" else 0.5)
    assert precision.bf16_is_faster(lambda: "bf16", lambda: "fp32")
    monkeypatch.setattr(precision, "time_step", lambda step: 1.0)  # equal speed: float32
    assert not precision.bf16_is_faster(lambda: "bf16", lambda: "fp32")


def test_auto_precision_times_the_real_model(trainer, monkeypatch) -> None:
    """"auto" asks the measurement (on a copy: the model's BN statistics stay as they were)."""
    model = build_model({"backbone": "resnet", "backbone_kw": {"width": 0.25}, "dim": 16, "n_classes": 3})
    x = to_tensors({"face": np.zeros((4, 48, 48), np.uint8)}, slice(0, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cpu = torch.device("cpu")
    monkeypatch.setattr(sys.modules["train.autocast"], "bf16_is_faster", lambda bf16, fp32: (bf16(), fp32(), True)[-1])
    assert trainer.choose_amp("auto", cpu, model, x) is True
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert trainer.choose_amp(False, cpu, model, x) is False and trainer.choose_amp(True, cpu, model, x) is True


def test_bank_keeps_each_distinct_face_once(trainer) -> None:
    """CK+ faces repeated for training (and FER's byte-identical duplicates) enter the bank once."""
    a, b = np.zeros((48, 48), np.uint8), np.full((48, 48), 7, np.uint8)
    images = np.stack([a, b, a, b, b, np.eye(48, dtype=np.uint8)])
    assert distinct_faces(images).tolist() == [0, 1, 5]


def test_stem_stride_two_runs_the_net_at_half_resolution_for_a_quarter_of_the_cost() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from ferindex.nn.backbones import ResNetFace

    x = {"face": torch.randn(2, 1, 48, 48)}
    flops, shapes = {}, {}
    for stride in (1, 2):
        net = ResNetFace(width=0.25, stem_stride=stride).eval()
        with torch.no_grad():
            shapes[stride] = net.stem(x["face"]).shape[-2:]
            with FlopCounterMode(display=False) as fc:
                net(x)
        flops[stride] = fc.get_total_flops()
    assert tuple(shapes[1]) == (48, 48) and tuple(shapes[2]) == (24, 24)
    assert 0.2 < flops[2] / flops[1] < 0.3


def test_teacher_targets_read_each_distinct_face_once_and_are_cached(trainer, tmp_path) -> None:
    """The teacher's outputs line up with the training rows (a repeated face gets its first
    copy's outputs, as the teacher reads it with its own TTA), and a resumed run reads the cache
    instead of running the teacher again."""
    from ferindex.embed import load_model

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (12, 48, 48), dtype=np.uint8)
    images = np.concatenate([faces, faces[[3, 7, 3]]])  # CK+ style repeats
    card = str(ROOT / "ferindex" / "models" / "default.json")
    cache = tmp_path / "teacher.npz"
    model_id, probs, z = trainer.teacher_targets(card, images, cache)
    ref_z, ref_p = load_model(card).embed_and_proba(faces, calibrated=False)
    assert model_id == load_model(card).model_id
    assert np.allclose(probs[:12], ref_p, atol=1e-5) and np.allclose(z[:12], ref_z, atol=1e-5)
    assert np.array_equal(probs[12:], probs[[3, 7, 3]]) and np.array_equal(z[12:], z[[3, 7, 3]])
    np.savez(cache, model_id=model_id, probs=probs * 0 + 0.125, z=z)  # marks what the cache holds
    assert np.all(trainer.teacher_targets(card, images, cache)[1] == 0.125)
    assert not np.all(trainer.teacher_targets(card, images[:-1], tmp_path / "other.npz")[1] == 0.125)


def test_distilling_recipe_logs_the_teacher_term_and_names_the_teacher(trainer, data_dir, tmp_path,
                                                                     shipped_network) -> None:
    """Two steps of the weight-averaging recipe with a distillation term: the teacher's outputs
    come from the run folder's cache (written here for the shipped model, so the test does not
    pay for 28k teacher passes), the term is logged and finite, and the card names the teacher."""
    from ferindex.embed import load_model

    out = tmp_path / "run"
    out.mkdir()
    card = str(ROOT / "ferindex" / "models" / "default.json")
    n = len(load_fer("train", "ferplus"))
    rng = np.random.default_rng(0)
    np.savez(out / "teacher.npz", model_id=load_model(card).model_id,
             probs=rng.dirichlet(np.ones(8), n).astype(np.float32), z=rng.normal(size=(n, 32)).astype(np.float32))
    spec = {"teacher": card, "weight": 0.5, "temperature": 2.0, "relation_weight": 1.0}
    trainer.main([str(ROOT / "train" / "configs" / "default_swa.json"), "--out", str(out), "--set",
                  f"init={shipped_network}", "epochs=1", "max_steps_per_epoch=2",
                  "knn_ref=300", "swa.bn_images=256", f"distill={json.dumps(spec)}"])
    (rec,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"loss_ce", "loss_sgm", "loss_distill"} <= rec.keys()
    assert np.isfinite(rec["loss_distill"]) and rec["loss_distill"] > 0
    cfg = json.loads((out / "config.json").read_text())
    best = {"epoch": 0, "val_acc": rec["val_acc"], "val_knn": rec["val_knn"]}
    made = trainer.model_card(cfg, ["a"] * 8, {"backbone": "resnet"}, ("face",), best, 1.0, "CPU", None)
    assert f"distilled from {card}" in made["training"]["data"]
