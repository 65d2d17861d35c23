"""Load a trained expression model (model card JSON + safetensors weights + reference bank) and turn
aligned face crops into expression embeddings and class posteriors.

A model is three files sharing a stem: `NAME.json` (the card: classes, architecture, input spec,
metric, training data and command, measured metrics), `NAME.safetensors` and `NAME_bank.npz`
(embeddings and labels of the training faces, so KNN works with no data at hand).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from .analysis.calibration import reweight
from .config import MODELS_DIR
from .data.inputs import make_chips, to_tensors
from .errors import ModelError
from .nn.model import build_model, mirror_averaged


class ExpressionModel:
    """A ready-to-use expression model: `embed` and `predict_proba` take aligned uint8 grayscale
    crops in the training framing (N,H,W); any size is resized to the model's input size."""

    def __init__(self, card: dict[str, Any], net: nn.Module, card_path: Path, model_id: str) -> None:
        self.card = card
        # NHWC lets oneDNN pick its fast convolution kernels: 1.5x the CPU throughput, same numbers.
        self.net = net.eval().to(memory_format=torch.channels_last)
        self.card_path = card_path
        self.model_id = model_id
        self.classes: list[str] = list(card["classes"])
        self.input_size: int = int(card["input"]["size"])
        self.metric: str = card.get("metric", "euclidean")
        self.dim: int = int(card["arch"].get("dim", 64))
        # Mirror test-time augmentation: a face and its mirror image show the same expression, so
        # averaging both embeddings removes some pose/asymmetry noise (measured in the model card).
        self.flip_tta: bool = bool(card["input"].get("flip_tta", False)) and self.net.inputs == ("face",)

    def _prepare(self, crops: np.ndarray, landmarks: np.ndarray | None) -> dict[str, np.ndarray]:
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if crops.ndim != 3 or crops.dtype != np.uint8:
            raise ValueError(f"expected uint8 grayscale crops (N,H,W), got {crops.dtype} {crops.shape}")
        s = self.input_size
        if crops.shape[1:] != (s, s):
            crops = np.stack([np.asarray(Image.fromarray(c).resize((s, s), Image.BILINEAR)) for c in crops])
        return make_chips(crops, self.net.inputs, landmarks)

    @torch.inference_mode()
    def _forward(self, crops: np.ndarray, landmarks: np.ndarray | None, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        chips = self._prepare(crops, landmarks)
        n = len(next(iter(chips.values())))
        zs, ps = [], []
        for i in range(0, n, batch_size):
            x = {k: v.contiguous(memory_format=torch.channels_last)
                 for k, v in to_tensors(chips, slice(i, i + batch_size)).items()}
            z, logits = mirror_averaged(self.net, x["face"]) if self.flip_tta else self.net(x)
            zs.append(z)
            ps.append(torch.softmax(logits, 1))
        if not zs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.classes)), np.float32)
        return torch.cat(zs).numpy().astype(np.float32), torch.cat(ps).numpy().astype(np.float32)

    def embed(self, crops: np.ndarray, landmarks: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """Expression embeddings (N, dim) float32; compare them with `self.metric`."""
        return self._forward(crops, landmarks, batch_size)[0]

    def predict_proba(self, crops: np.ndarray, landmarks: np.ndarray | None = None, batch_size: int = 256,
                      calibrated: bool = True) -> np.ndarray:
        """Softmax class posteriors (N, len(classes)) float32, prior-corrected as the card says
        (`calibrated=False`: the network's raw softmax)."""
        return self.embed_and_proba(crops, landmarks, batch_size, calibrated)[1]

    def embed_and_proba(self, crops: np.ndarray, landmarks: np.ndarray | None = None, batch_size: int = 256,
                        calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Both at once, one forward pass (what the album build uses)."""
        z, p = self._forward(crops, landmarks, batch_size)
        return z, reweight(p, self.class_weight("softmax") if calibrated else None)

    def class_weight(self, kind: str) -> np.ndarray | None:
        """The card's prior correction for "softmax" or "knn" votes (analysis/calibration.py), or
        None for a model without one."""
        cal = self.card.get("calibration", {}).get(kind)
        return np.asarray(cal["class_weight"], np.float64) if cal else None

    def knn_softmax_weight(self) -> float:
        """The weight of the softmax blended into the KNN votes before their correction
        (analysis/calibration.py); 0 for a model whose card has none."""
        return float(self.card.get("calibration", {}).get("knn", {}).get("softmax_weight", 0.0))

    def reference_bank(self) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (M, dim) float32 and labels (M,) of the labelled training faces."""
        return _load_bank(_bank_path(self.card_path))


@lru_cache(maxsize=4)
def _load_bank(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ModelError(f"{path}: reference bank missing; KNN classification needs it")
    with np.load(path) as d:
        return d["embeddings"].astype(np.float32), d["labels"].astype(np.int64)


def _resolve(name_or_path: str | Path | None) -> Path:
    if name_or_path is None:
        return MODELS_DIR / "default.json"
    p = Path(name_or_path)
    if p.is_dir():
        cards = sorted(p.glob("*.json"))
        if len(cards) != 1:
            raise ModelError(f"{p}: expected exactly one model card (*.json), found {len(cards)}")
        return cards[0]
    if p.suffix == ".json":
        return p
    if p.with_suffix(".json").is_file():
        return p.with_suffix(".json")
    return MODELS_DIR / f"{name_or_path}.json"


@lru_cache(maxsize=4)
def _load(card_path: Path) -> ExpressionModel:
    if not card_path.is_file():
        raise ModelError(f"{card_path}: model card not found")
    weights = card_path.with_suffix(".safetensors")
    if not weights.is_file():
        raise ModelError(f"{weights}: model weights not found next to the card")
    try:
        card = json.loads(card_path.read_text())
        net = build_model(card["arch"])
        net.load_state_dict(load_file(str(weights)))
    except (KeyError, ValueError, RuntimeError) as e:
        raise ModelError(f"{card_path}: cannot load model ({e})") from e
    digest = hashlib.blake2b(weights.read_bytes(), digest_size=6).hexdigest()
    return ExpressionModel(card, net, card_path, f"{card.get('name', card_path.stem)}-{digest}")


def load_model(name_or_path: str | Path | None = None) -> ExpressionModel:
    """The shipped default model (None), a model name in ferindex/models, a card path or a folder.
    Loaded once per process (cached), on the CPU."""
    return _load(_resolve(name_or_path).resolve())


def ensemble_member(model: ExpressionModel, index: int) -> tuple[nn.Module, dict[str, Any]]:
    """Network `index` of a view ensemble with a card of its own (its architecture, its training
    record, mirror TTA as it was trained and used alone): what a fine-tune warm-starts from or a
    new ensemble joins. The ensemble's projection, calibration and metrics are not the member's."""
    members = model.card["arch"].get("members")
    if not members:
        raise ModelError(f"{model.card_path}: not an ensemble, it has no member networks")
    if not 0 <= index < len(members):
        raise ModelError(f"{model.card_path}: no member {index}; the ensemble has {len(members)}")
    card = {k: v for k, v in model.card.items() if k not in ("calibration", "metrics")} | {
        "arch": members[index] | {"n_classes": len(model.classes)},
        "input": model.card["input"] | {"flip_tta": True},
        "training": model.card["training"]["members"][index]}
    return model.net.members[index], card


def _bank_path(card_path: Path) -> Path:
    return card_path.with_name(card_path.stem + "_bank.npz")


def write_bank(model: ExpressionModel, images: np.ndarray, labels: np.ndarray, landmarks: np.ndarray | None = None) -> Path:
    """Embed the labelled training faces with the model exactly as album faces are embedded
    (same preprocessing and test-time augmentation) and store them as its reference bank.
    float16 halves the size; KNN votes do not change measurably."""
    path = _bank_path(model.card_path)
    np.savez_compressed(path, embeddings=model.embed(images, landmarks).astype(np.float16), labels=labels.astype(np.int16))
    _load_bank.cache_clear()
    return path


def export_model(net: nn.Module, card: dict[str, Any], bank_images: np.ndarray, bank_labels: np.ndarray,
                 dest: Path, bank_landmarks: np.ndarray | None = None) -> ExpressionModel:
    """Write `dest`.json/.safetensors/_bank.npz (dest is a path stem, e.g. ferindex/models/default)
    and return the exported model, loaded back the way users load it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(dest.with_suffix(".safetensors")))
    dest.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    _load.cache_clear()
    model = load_model(dest.with_suffix(".json"))
    write_bank(model, bank_images, bank_labels, bank_landmarks)
    return model
