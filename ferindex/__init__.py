"""ferindex: find and organise facial expressions in photo collections."""
from __future__ import annotations

__version__ = "0.1.0"


def load_model(name_or_path=None):
    """The expression model (None = the shipped default); see ferindex.embed.ExpressionModel."""
    from .embed import load_model as _load

    return _load(name_or_path)


__all__ = ["load_model", "__version__"]
