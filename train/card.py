"""The model card an exported network carries: architecture and input contract for loading, and
the training record (data, command, hardware, time, selection) for the reader."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ferindex.data.inputs import MEAN, STD


def init_card(init: str | None) -> dict | None:
    """The model card next to the weights a fine-tune starts from (None without one): it fixes
    the architecture, and its training record goes into the new card, so a card accounts for
    every stage of its weights (data, command, hardware and time)."""
    card = Path(init).with_suffix(".json") if init else None
    return json.loads(card.read_text()) if card is not None and card.is_file() else None


def exported_arch(arch: dict) -> dict:
    """The architecture as the card records it: `pretrained` only matters when training starts
    (the exported weights replace the pretrained ones), so loading a model never reads them."""
    kw = {k: v for k, v in arch.get("backbone_kw", {}).items() if k != "pretrained"}
    return arch | {"backbone_kw": kw}


def model_card(cfg: dict, classes: list[str], arch: dict, inputs: tuple[str, ...], best: dict,
               duration: float, hardware: str, parent: dict | None, amp: bool = False) -> dict:
    """The exported model's card: what ferindex needs to rebuild and feed the network, and how
    it was trained and selected."""
    data = "FER2013 Training with FER+ vote distributions" if cfg["labels"] == "ferplus" else "FER2013 Training"
    if cfg["data"]["name"] == "ferplus+ckplus":
        data += f" + CK+48 ({'all subjects' if cfg['data'].get('fold') is None else 'subjects outside fold ' + str(cfg['data']['fold'])}, x{cfg['data'].get('repeat', 4)})"
    if cfg["aux_fer2013"]:
        data += " + original FER2013 labels (auxiliary head, not exported)"
    if cfg["distill"]:
        data += f" + distilled from {cfg['distill']['teacher']} (its outputs on the training faces)"
    training = {"data": data, "amp": amp, "selection": "best FER+ PublicTest KNN(K=11) accuracy (dedup)", "config": cfg,
                "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                "hardware": hardware, "duration_s": round(duration), "epochs": cfg["epochs"], "best_epoch": best["epoch"]}
    if parent is not None:
        training["init"] = parent.get("training")
    return {
        "name": cfg["name"], "classes": classes, "arch": exported_arch(arch),
        "input": {"size": 48, "color": "gray", "framing": "fer2013 (ferindex/faces/template.json)", "inputs": list(inputs),
                  "normalize": {"mean": MEAN, "std": STD}, "flip_tta": cfg.get("flip_tta", False)},
        "metric": "euclidean",
        "training": training,
        "metrics": {"fer_plus_public_test": {"softmax_acc": best["val_acc"], "knn11_acc_6k_ref": best["val_knn"]}},
    }
