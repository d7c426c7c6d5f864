"""Typed errors that users of geogan_hf see.

Every error is a :class:`GeoGANError`, so callers (the CLI, the Gradio app, the training
loop) can catch one base class and show its one-line message instead of a traceback.
"""

from __future__ import annotations


class GeoGANError(Exception):
    """Base class of every error geogan_hf raises on bad input."""


class InvalidImageError(GeoGANError, ValueError):
    """The input is not a readable image (missing, empty, truncated or another format)."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit."""


class NoFaceError(GeoGANError):
    """No face was found in an image.

    Attributes:
        role: which input had no face (``"source"``, ``"exemplar"``) or ``None``.
    """

    def __init__(self, message: str, role: str | None = None) -> None:
        super().__init__(message)
        self.role = role


class InvalidArgumentError(GeoGANError, ValueError):
    """An argument has the wrong type or is out of range (e.g. a strength of NaN)."""


class FaceIndexError(GeoGANError, IndexError):
    """A face index is not an integer, or is out of range for the faces found in an image."""


class FaceTooSmallError(GeoGANError):
    """A face is too small to be edited."""


class UnknownAttributeError(GeoGANError, ValueError):
    """An attribute name is not supported (the message lists the supported ones)."""


class AttributeNotFoundError(GeoGANError):
    """The exemplar does not show the attribute to transfer (no instance in its region)."""


class BackendUnavailableError(GeoGANError, RuntimeError):
    """A landmark backend cannot be used on this machine (the message names the fallback)."""


class ModelLoadError(GeoGANError):
    """A checkpoint cannot be loaded: corrupt file or tensors that do not match the config."""


class CheckpointError(ModelLoadError):
    """A training checkpoint cannot be resumed: incomplete, unreadable, not of this run, or
    holding pickle files (never loaded: unpickling can run any code)."""


class MissingLandmarksError(GeoGANError, ValueError):
    """Landmarks are required (geometry prior) but were not given."""


class DatasetError(GeoGANError, ValueError):
    """A dataset cannot be used: a missing column, an empty attribute pool, no evaluation pairs."""


class ExperimentalAttributeWarning(UserWarning):
    """The attribute is transferred below the quality bar the others reach on real photos."""


class GrayscaleExemplarWarning(UserWarning):
    """Hair from a black-and-white exemplar put on a colour photo: its colour is not seen,
    and grey or white hair is not told from the skin around it."""


class UntrainedModelWarning(UserWarning):
    """A paper-mode model whose weights were never loaded or trained: its output is noise."""
