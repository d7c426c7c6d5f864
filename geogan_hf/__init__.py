"""geogan_hf: GeoGAN exemplar-based facial attribute transfer for the Hugging Face ecosystem.

The public API is exported lazily, so ``import geogan_hf`` stays fast and does not load
torch, dlib or gradio until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "GeoGAN": "model",
    "GeoGANDiscriminator": "model",
    "GeoGANOutput": "model",
    "TransferPipeline": "pipeline",
    "TransferResult": "pipeline",
    "Face": "landmarks",
    "detect_faces": "landmarks",
    "load_image": "imageio",
    "AlignedFace": "align",
    "align_face": "align",
    "paste_back": "align",
    "warp_with_flow": "geometry",
    "tps_flow": "geometry",
    "flow_to_rgb": "geometry",
    "region_mask": "regions",
    "SUPPORTED_ATTRIBUTES": "regions",
    "EXPERIMENTAL_ATTRIBUTES": "regions",
    "HAIR_COLOURS": "regions",
    "GeoGANError": "errors",
    "InvalidImageError": "errors",
    "ImageTooLargeError": "errors",
    "NoFaceError": "errors",
    "FaceIndexError": "errors",
    "FaceTooSmallError": "errors",
    "UnknownAttributeError": "errors",
    "BackendUnavailableError": "errors",
    "AttributeNotFoundError": "errors",
    "ExperimentalAttributeWarning": "errors",
    "GrayscaleExemplarWarning": "errors",
    "UntrainedModelWarning": "errors",
    "ModelLoadError": "errors",
    "CheckpointError": "errors",
    "MissingLandmarksError": "errors",
    "DatasetError": "errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geogan_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"geogan_hf.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
