"""Train an expression embedding network and export it as a ferindex model.

    python train/train.py train/configs/default.json [--set key=value ...] [--out runs/NAME]
        [--resume] [--export ferindex/models/default]

Runs on a GPU with float16 mixed precision when one is present, else on the CPU with
channels-last tensors and bfloat16 autocast only where it measures faster than float32 on this
CPU and model ("amp": "auto", the default; true/false force it): 2.2x on an AMD EPYC with
AVX512-BF16, about equal on some Xeons, ~10x slower where bf16 is emulated (AVX2 only). Seeded.
Writes a checkpoint per epoch (resume with --resume), a JSONL log of every loss term and the validation
accuracy/KNN accuracy per epoch, and on --export the safetensors weights, the model card (JSON)
and the labelled reference bank (training-face embeddings + labels, no images).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.analysis.metrics import knn_accuracy  # noqa: E402
from ferindex.data.fer import FER2013_CLASSES, FaceSet  # noqa: E402
from ferindex.data.inputs import augment, to_tensors  # noqa: E402
from ferindex.data.mixed import distinct_faces  # noqa: E402
from ferindex.embed import export_model  # noqa: E402
from ferindex.nn.losses import make_loss  # noqa: E402
from ferindex.nn.losses.distill import DistillationLoss  # noqa: E402
from ferindex.nn.losses.joint import JointLoss  # noqa: E402
from ferindex.nn.model import build_model  # noqa: E402
from ferindex.nn.precision import cpu_name  # noqa: E402
from ferindex.nn.weighting import DynamicLossWeights  # noqa: E402
from train.autocast import choose_amp, embed_all, in_layout, precision, refresh_bn  # noqa: E402
from train.card import init_card, model_card  # noqa: E402
from train.data import fer2013_targets, load_data, make_sampler, teacher_targets  # noqa: E402

DEFAULTS = {
    "name": "default", "seed": 0, "labels": "ferplus", "soft_targets": True,
    "arch": {"backbone": "resnet", "backbone_kw": {"width": 0.25}, "dim": 64, "head": "linear"},
    "losses": {"sgm": {"weight": 1.0}}, "dynamic_weights": False,
    "epochs": 20, "batch_size": 128, "sampler": "random", "max_steps_per_epoch": None,
    "lr": 3e-3, "weight_decay": 5e-4, "threads": 2, "knn_ref": 6000, "landmarks": "artifacts/fer_landmarks.npy",
    "data": {"name": "ferplus"}, "init": None, "select": "best", "sampler_kw": {},
    "amp": "auto", "erase": 0.0, "degrade": 0.0, "jpeg": 0.0, "aux_fer2013": 0.0, "swa": None, "backbone_lr": 1.0,
    "distill": None,
}


def parse_set(items: list[str], cfg: dict) -> dict:
    """`--set a.b=value` overrides with JSON-parsed values (plain strings when not JSON)."""
    for item in items:
        key, _, raw = item.partition("=")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = val
    return cfg


def make_joint_loss(cfg: dict, dim: int, train: FaceSet, out: Path) -> tuple[JointLoss, torch.Tensor | None,
                                                                          tuple[torch.Tensor, torch.Tensor] | None]:
    """The config's loss terms as one JointLoss, with what its extra terms read per training row:
    the original FER2013 labels for the auxiliary head, a teacher's (probs, embeddings) to distil."""
    n_classes = len(train.classes)
    metric = {name: make_loss(name, **{k: v for k, v in spec.items() if k != "weight"} | ({"n_classes": n_classes} if name == "sgm" else {}))
              for name, spec in cfg["losses"].items()}
    aux_w = float(cfg["aux_fer2013"])
    aux = {"aux_fer2013": nn.Linear(dim, len(FER2013_CLASSES))} if aux_w else {}  # training only
    aux_y = torch.from_numpy(fer2013_targets(train)) if aux_w else None
    weights = {k: spec.get("weight", 1.0) for k, spec in cfg["losses"].items()} | ({"aux_fer2013": aux_w} if aux_w else {})
    distill, teacher = None, None
    if cfg["distill"]:  # {"teacher": card, "weight": w, "temperature": T, "relation_weight": r}
        spec = cfg["distill"]
        distill = DistillationLoss(spec.get("temperature", 2.0), spec.get("relation_weight", 1.0))
        weights["distill"] = spec.get("weight", 1.0)
        teacher_id, probs, tz = teacher_targets(spec["teacher"], train.images, out / "teacher.npz")
        teacher = (torch.from_numpy(probs), torch.from_numpy(tz))
        print(f"distilling from {teacher_id}", flush=True)
    dyn = DynamicLossWeights(JointLoss.term_names(metric, aux, distill)) if cfg["dynamic_weights"] else None
    return JointLoss(metric, weights, cfg["soft_targets"], aux, dyn, distill), aux_y, teacher


def make_optimizer(cfg: dict, model: nn.Module, joint: JointLoss,
                   steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the network and the loss's own parameters; a face-pretrained backbone learns at
    backbone_lr x the rate of the new heads. One-cycle schedule, or a constant rate for SWA."""
    backbone = list(model.backbone.parameters())
    rest = [p for p in list(model.parameters()) + list(joint.parameters()) if all(p is not q for q in backbone)]
    opt = torch.optim.AdamW([{"params": backbone, "lr": cfg["lr"] * cfg["backbone_lr"]}, {"params": rest, "lr": cfg["lr"]}],
                            lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if cfg["swa"]:
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                    total_steps=steps * cfg["epochs"], pct_start=0.15)


def train_one_epoch(model: nn.Module, joint: JointLoss, sampler: Iterable[np.ndarray], steps: int, train: FaceSet,
                    chips: dict[str, np.ndarray], aux_y: torch.Tensor | None, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler, gen: torch.Generator,
                    cfg: dict, device: torch.device, amp: bool, swa_model: AveragedModel | None = None,
                    bn_chips: dict[str, np.ndarray] | None = None,
                    teacher: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[dict[str, float], float]:
    """`steps` optimisation steps on the sampler's batches; with SWA the epoch's weights then join
    the average, which gets BatchNorm statistics of its own from `bn_chips`. `teacher`: a teacher's
    (probs, embeddings) per training row, for a distilling JointLoss. Returns each loss
    term's mean over the epoch's images and the images/s of the steps alone (without the SWA work)."""
    dtype, fmt = precision(device)
    soft = torch.from_numpy(train.soft) if train.soft is not None else None
    model.train()
    t0, sums, seen = time.time(), {}, 0
    for step, idx in enumerate(sampler):
        if step >= steps:  # not islice: the sampler draws this extra batch, and later epochs' batches follow its RNG
            break
        x = in_layout(augment(to_tensors(chips, idx, device), gen, erase=cfg["erase"], degrade=cfg["degrade"],
                              jpeg=cfg["jpeg"]), fmt)
        y = torch.from_numpy(train.labels[idx]).to(device)
        tgt = soft[idx].to(device) if soft is not None else None
        ids = torch.from_numpy(train.groups[idx]).to(device) if train.groups is not None else None
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            z, logits = model(x)
        aux_labels = {"aux_fer2013": aux_y[idx].to(device)} if aux_y is not None else None
        teach = tuple(t[idx].to(device) for t in teacher) if teacher is not None else None
        total, terms = joint(z.float(), logits.float(), y, tgt, ids, aux_labels, teach)
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
        seen += len(idx)
    train_time = time.time() - t0
    if swa_model is not None:
        swa_model.update_parameters(model)
        refresh_bn(swa_model.module, bn_chips, device, dtype, fmt, amp)
    return {k: v / seen for k, v in sums.items()}, seen / train_time


def evaluate(model: nn.Module, val_chips: dict[str, np.ndarray], val_labels: np.ndarray,
             ref_chips: dict[str, np.ndarray], ref_labels: np.ndarray, device: torch.device, amp: bool) -> dict[str, float]:
    """The validation scores, in training precision: softmax accuracy, and KNN(K=11) accuracy
    against a fixed subset of training faces, standing in for the exported bank (selection uses it)."""
    val_z, val_p = embed_all(model, val_chips, device, amp=amp)
    ref_z, _ = embed_all(model, ref_chips, device, amp=amp)
    return {"val_acc": float((val_p.argmax(1) == val_labels).mean()),
            "val_knn": knn_accuracy(ref_z, ref_labels, val_z, val_labels, k=11)}


def main(argv: list[str] | None = None) -> None:
    """Config, data, model and optimiser; then per epoch train, validate, log, checkpoint and select; then export."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--set", nargs="*", default=[], help="override config keys: a.b=json")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", type=Path, default=None, help="write weights + card + bank here at the end")
    args = ap.parse_args(argv)
    cfg = parse_set(args.set, json.loads(json.dumps(DEFAULTS)) | json.loads(args.config.read_text()))
    out = args.out or Path("runs") / cfg["name"]
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    amp_dtype, layout = precision(device)

    parent = init_card(cfg["init"])
    if parent is not None and "members" in parent["arch"]:
        raise SystemExit(f"train.py: {cfg['init']} is a view ensemble of {len(parent['arch']['members'])} networks; "
                         "a run trains one network: start it from one member's own export or from scratch")
    if parent is not None:  # fine-tuning: the exported model's card fixes the architecture
        cfg["arch"] = {k: v for k, v in parent["arch"].items() if k != "n_classes"}
    (out / "config.json").write_text(json.dumps(cfg, indent=2))  # after the parent fixed the architecture
    arch = dict(cfg["arch"])
    inputs = build_model(arch | {"n_classes": 8}).inputs
    train, train_chips, val, val_chips = load_data(cfg, inputs)
    arch["n_classes"] = len(train.classes)
    model = build_model(arch).to(device).to(memory_format=layout)
    if cfg["init"]:  # fine-tune from an exported model (same architecture and classes)
        model.load_state_dict(load_file(cfg["init"]))
    amp = choose_amp(cfg["amp"], device, model, in_layout(to_tensors(train_chips, np.arange(min(64, len(train))), device), layout))
    print(f"mixed precision: {'on (' + str(amp_dtype).split('.')[-1] + ')' if amp else 'off (float32)'}", flush=True)
    joint, aux_y, teacher = make_joint_loss(cfg, arch["dim"], train, out)
    joint = joint.to(device)
    sampler = make_sampler(cfg, train)
    steps = min(len(sampler), cfg["max_steps_per_epoch"] or len(sampler))
    opt, sched = make_optimizer(cfg, model, joint, steps)
    swa = cfg["swa"]  # {"bn_images": N}: constant LR, weights averaged every epoch (Izmailov et al. 2018)
    swa_model, bn_chips = None, None
    if swa:
        swa_model = AveragedModel(model)
        bn_idx = np.random.default_rng(1).choice(len(train), min(swa.get("bn_images", 8192), len(train)), replace=False)
        bn_chips = {k: v[bn_idx] for k, v in train_chips.items()}
    scaler = torch.amp.GradScaler(enabled=amp and device.type == "cuda")  # bf16 needs no loss scaling
    start_epoch, best, trained_s = 0, {"val_knn": -1.0}, 0.0  # trained_s: training time of earlier runs
    ckpt = out / "last.pt"
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        joint.load_state_dict(state["joint"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        trained_s = state.get("trained_s", 0.0)
        if swa:
            swa_model.load_state_dict(state["swa"])
        sampler.rng = np.random.default_rng(cfg["seed"] + start_epoch)
        print(f"resumed from {ckpt} at epoch {start_epoch}")

    gen = torch.Generator().manual_seed(cfg["seed"])
    ref_idx = np.random.default_rng(0).choice(len(train), min(cfg["knn_ref"], len(train)), replace=False)
    ref_chips = {k: v[ref_idx] for k, v in train_chips.items()}
    log = (out / "log.jsonl").open("a")
    t_start = time.time()
    for epoch in range(start_epoch, cfg["epochs"]):
        t0 = time.time()
        losses, img_per_s = train_one_epoch(model, joint, sampler, steps, train, train_chips, aux_y, opt, sched, scaler,
                                            gen, cfg, device, amp, swa_model, bn_chips, teacher)
        evaluated = swa_model.module if swa else model  # SWA validates (and selects) the running average
        rec = {"epoch": epoch, **{f"loss_{k}": v for k, v in losses.items()},
               **evaluate(evaluated, val_chips, val.labels, ref_chips, train.labels[ref_idx], device, amp),
               "img_per_s": img_per_s, "epoch_s": time.time() - t0, "lr": sched.get_last_lr()[0]}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(json.dumps(rec), flush=True)
        state = {"model": model.state_dict(), "joint": joint.state_dict(), "opt": opt.state_dict(),
                 "sched": sched.state_dict(), "epoch": epoch, "best": best, "trained_s": trained_s + time.time() - t_start,
                 "swa": swa_model.state_dict() if swa else None}
        if cfg["select"] == "last" or rec["val_knn"] > best["val_knn"]:  # selection on FER+ PublicTest
            best = {"val_knn": rec["val_knn"], "val_acc": rec["val_acc"], "epoch": epoch}
            state["best"] = best
            torch.save(evaluated.state_dict(), out / "best.pt")
        torch.save(state, out / "last.pt.tmp")
        Path(out / "last.pt.tmp").replace(ckpt)

    model.load_state_dict(torch.load(out / "best.pt", map_location=device))
    duration = trained_s + time.time() - t_start  # a resumed run counts its earlier epochs too
    hardware = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({cpu_name()}, {cfg['threads']} threads)"
    summary = {"best": best, "duration_s": round(duration), "hardware": hardware}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    if args.export:
        card = model_card(cfg, train.classes, arch, inputs, best, duration, hardware, parent, amp)
        keep = distinct_faces(train.images)  # repeated (oversampled) faces would cast several KNN votes
        lms = np.load(cfg["landmarks"])[train.rows[keep]] if any(k != "face" for k in inputs) and train.rows is not None else None
        export_model(model.cpu(), card, train.images[keep], train.labels[keep], args.export, lms)
        print(f"exported to {args.export}")


if __name__ == "__main__":
    main()
