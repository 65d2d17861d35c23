"""The training faces, their chips and the targets beside the labels: FER+ (and CK+48 folds), the
original FER2013 labels for the auxiliary head, a teacher's outputs for distillation."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ferindex.data.fer import FaceSet, load_fer
from ferindex.data.inputs import make_chips
from ferindex.data.mixed import ckplus_fold, with_ckplus
from ferindex.data.samplers import ClassBalancedBatchSampler, IdentityAwareBatchSampler, RandomBatchSampler


def load_split(split: str, cfg: dict, inputs: tuple[str, ...], dedup: bool = True):
    """A FER split and its chips; partial/region chips use the cached FER landmarks."""
    fs = load_fer(split, cfg["labels"], dedup=dedup)
    lms = None
    if any(k != "face" for k in inputs):
        path = Path(cfg["landmarks"])
        if not path.is_file():
            raise SystemExit(f"{path}: FER landmark cache missing; run scripts/cache_fer_landmarks.py first")
        lms = np.load(path)[fs.rows]
    return fs, make_chips(fs.images, inputs, lms)


def load_data(cfg: dict, inputs: tuple[str, ...]):
    """(train, train chips, val, val chips) for cfg["data"]:
    - {"name": "ferplus"}: FER+ Training / PublicTest;
    - {"name": "ckplus", "fold": k, "n_folds": 10}: one subject-independent CK+48 fold is the
      validation set, the other subjects train;
    - {"name": "ferplus+ckplus", "fold": k | null, "repeat": 4}: FER+ Training plus the CK+
      subjects outside fold k (all of CK+ when fold is null); validation is fold k, or FER+
      PublicTest without a fold."""
    data = cfg["data"]
    if data["name"] == "ferplus":
        return (*load_split("train", cfg, inputs), *load_split("val", cfg, inputs))
    if data["name"] == "ckplus":
        train, val = ckplus_fold(data)
        return train, make_chips(train.images, inputs), val, make_chips(val.images, inputs)
    if data["name"] == "ferplus+ckplus":
        if inputs != ("face",):
            raise SystemExit("ferplus+ckplus trains whole-face models only")
        ck, held = ckplus_fold(data)
        train = with_ckplus(load_fer("train", cfg["labels"]), ck, data.get("repeat", 4))
        val = held if held is not None else load_fer("val", cfg["labels"])
        return train, make_chips(train.images, inputs), val, make_chips(val.images, inputs)
    raise SystemExit(f"unknown data source {data['name']!r}: use ferplus, ckplus or ferplus+ckplus")


def fer2013_targets(train: FaceSet) -> np.ndarray:
    """The original FER2013 label of each FER+ Training row (-1 where it has none), for the
    auxiliary head that teaches the embedding FER2013's own class boundaries as well."""
    ref = load_fer("train", "fer2013")
    out = np.full(len(train), -1, dtype=np.int64)
    pos = np.searchsorted(ref.rows, train.rows).clip(max=len(ref.rows) - 1)
    hit = ref.rows[pos] == train.rows
    out[hit] = ref.labels[pos[hit]]
    return out


def teacher_targets(card: str, images: np.ndarray, cache: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(teacher model id, raw softmax, embedding) of a teacher model for every training face, as
    the teacher reads the clean face with its own TTA: computed once per distinct face and kept in
    `cache`, so a resumed run does not pay for it again. The student learns to give the clean
    face's answer from the augmented one."""
    from ferindex.embed import load_model

    teacher = load_model(card)
    if cache.is_file():
        stored = np.load(cache)
        if str(stored["model_id"]) == teacher.model_id and len(stored["probs"]) == len(images):
            return teacher.model_id, stored["probs"], stored["z"]
    _, first, inverse = np.unique(images.reshape(len(images), -1), axis=0, return_index=True, return_inverse=True)
    print(f"teacher {teacher.model_id}: reading {len(first)} distinct training faces", flush=True)
    z, p = teacher.embed_and_proba(images[first], calibrated=False)
    probs, z = p[inverse.ravel()].astype(np.float32), z[inverse.ravel()].astype(np.float32)
    np.savez(cache, model_id=teacher.model_id, probs=probs, z=z)
    return teacher.model_id, probs, z


def make_sampler(cfg: dict, train: FaceSet) -> RandomBatchSampler | ClassBalancedBatchSampler | IdentityAwareBatchSampler:
    """The batches of the config's "sampler": "pk" n faces x c classes (paper 003; temper > 0 draws
    class shares ~ count ** temper), "identity" several expressions of each person (paper 001),
    else random batches."""
    if cfg["sampler"] == "pk":
        per = cfg["batch_size"] // len(train.classes)
        return ClassBalancedBatchSampler(train.labels, per, seed=cfg["seed"], temper=cfg["sampler_kw"].get("temper", 0.0))
    if cfg["sampler"] == "identity":
        per_id = cfg["sampler_kw"].get("per_id", 8)
        return IdentityAwareBatchSampler(train.groups, cfg["batch_size"] // per_id, per_id, seed=cfg["seed"],
                                         n_batches=cfg["sampler_kw"].get("n_batches"))
    return RandomBatchSampler(len(train), cfg["batch_size"], seed=cfg["seed"])
