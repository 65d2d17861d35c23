"""Locate and load the dlib model files shipped by the `face_recognition_models` package.

Why not `import face_recognition_models`: its `__init__` imports `pkg_resources`, which recent
setuptools no longer provides, so importing it can fail on a clean install although the `.dat`
files are present. `importlib.util.find_spec` finds the package folder without executing it.
Loaded dlib objects are cached because each costs 50-100 ms (and ~100 MB for the ResNet) to load.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from ferindex.errors import ModelError

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
MMOD = "mmod_human_face_detector.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"

_INSTALL_HINT = "install it with `pip install face_recognition_models`"


@lru_cache(maxsize=1)
def models_dir() -> Path:
    """The `models/` folder of face_recognition_models; ModelError if the package is absent."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package face_recognition_models not found: {_INSTALL_HINT}")
    for base in spec.submodule_search_locations:
        folder = Path(base) / "models"
        if folder.is_dir():
            return folder
    raise ModelError(f"face_recognition_models has no models/ folder: {_INSTALL_HINT}")


def model_path(filename: str) -> Path:
    """Path of one model file, checked to exist so the error names the missing file."""
    path = models_dir() / filename
    if not path.is_file():
        raise ModelError(f"dlib model file missing: {path} ({_INSTALL_HINT})")
    return path


@lru_cache(maxsize=None)
def shape_predictor():
    """The 68-point landmark predictor (iBUG 300-W point order)."""
    import dlib

    return dlib.shape_predictor(str(model_path(SHAPE_68)))


@lru_cache(maxsize=None)
def hog_detector():
    """dlib's frontal HOG+SVM face detector (no file needed)."""
    import dlib

    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=None)
def cnn_detector():
    """dlib's MMOD CNN face detector: slower on CPU, better on small and non-frontal faces."""
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path(MMOD)))


@lru_cache(maxsize=None)
def face_recognizer():
    """dlib's ResNet-34 face descriptor model (128-d, same-person distance < 0.6)."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(RESNET)))
