"""Console entry points: ``geogan-transfer``, ``geogan-prepare``, ``geogan-synth``, ``geogan-eval``.

One error policy for all of them (and ``train_accelerate.py``, through
:func:`run_command`): bad input (any :class:`~geogan_hf.errors.GeoGANError`, an
:class:`OSError` such as a missing or unwritable path, a command-line argument out of its
range) prints ``error: <message>`` on one line to stderr and exits with code 2, never a
traceback. Modules with a command line provide
``build_parser()`` and ``run(args) -> int``; they are imported only when their command
runs, so ``geogan-transfer --help`` does not load the training stack.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .arguments import ranged
from .errors import GeoGANError

__all__ = [
    "build_transfer_parser",
    "eval_main",
    "prepare_main",
    "run_command",
    "run_transfer",
    "synth_main",
    "transfer_main",
]

EXIT_BAD_INPUT = 2


class CommandError(GeoGANError):
    """Bad command-line input found outside the library (e.g. an unwritable output path)."""


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _fail(message: object) -> NoReturn:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def run_command(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], Any],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and call ``run``, turning bad input into a one-line message and code 2.

    Returns:
        ``run``'s exit code (0 when it returns something else), 2 on bad input, 130 when
        interrupted.
    """

    def error(message: str) -> NoReturn:
        _fail(f"{message} (see {parser.prog} --help)")

    parser.error = error  # argparse would print the usage block too
    args = parser.parse_args(argv)
    try:
        code = run(args)
        return code if isinstance(code, int) else 0
    except (GeoGANError, OSError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _run_cli(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None,
) -> int:
    """:func:`run_command` with the CPU runtime set and warnings shown as one-line notes."""

    def noted(args: argparse.Namespace) -> int | None:
        from .runtime import configure_cpu_runtime  # after parsing: --help stays fast

        configure_cpu_runtime()
        shown = warnings.showwarning
        with warnings.catch_warnings():
            # the library's own notes (experimental attribute, untrained model): one line each;
            # other warnings (a ResourceWarning when the collector finds an unclosed event
            # loop of the process's) keep their own filters and display
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = functools.partial(_show_note, shown)
            return run(args)

    return run_command(parser, noted, argv)


def _show_note(shown: Callable[..., None], message, category, *args, **kwargs) -> None:
    """User warnings as ``note: <message>`` on one line (no file name, no source line);
    others as ``shown`` shows them."""
    if not issubclass(category, UserWarning):
        shown(message, category, *args, **kwargs)
        return
    print(f"note: {_one_line(message)}", file=sys.stderr)


def _module_main(module: str, argv: Sequence[str] | None) -> int:
    mod = importlib.import_module(f"geogan_hf.{module}")
    return _run_cli(mod.build_parser(), mod.run, argv)


def _device(text: str) -> str:
    """An argparse ``type``: ``auto``, or a CPU, CUDA or MPS device present on this machine."""
    if text == "auto":
        return text
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r} (expected auto, cpu, cuda, cuda:N or mps)"
        ) from None
    if device.type == "cuda":
        present = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    elif device.type == "mps":
        present = torch.backends.mps.is_available()
    elif device.type == "cpu":
        present = True
    else:
        raise argparse.ArgumentTypeError(
            f"unsupported device {text!r} (expected auto, cpu, cuda, cuda:N or mps)"
        )
    if not present:
        raise argparse.ArgumentTypeError(f"device {text!r} is not available on this machine")
    return text


def build_transfer_parser() -> argparse.ArgumentParser:
    """Arguments of ``geogan-transfer`` (also ``python -m geogan_hf``)."""
    from .imageio import DEFAULT_MAX_PIXELS
    from .landmarks import LANDMARK_BACKENDS
    from .pipeline import DEFAULT_WORK_SIZE
    from .regions import DEFAULT_HAIR_COLOUR, HAIR_COLOURS

    parser = argparse.ArgumentParser(
        prog="geogan-transfer",
        description=(
            "Transfer a facial attribute (mustache, goatee, glasses...) from the face in "
            "EXEMPLAR onto the face in SOURCE, at the source photo's own resolution."
        ),
    )
    parser.add_argument("source", help="photo to edit")
    parser.add_argument("exemplar", help="photo of a face wearing the attribute")
    parser.add_argument(
        "-a", "--attribute", default="Mustache", help="CelebA attribute name (default: Mustache)"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="result image (folders are created)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="Hub repo id or local folder of a trained GeoGAN (default: the geometry prior)",
    )
    parser.add_argument(
        "--strength",
        type=ranged(float, 0, 1),
        default=1.0,
        help="edit weight in [0, 1] (default: 1)",
    )
    parser.add_argument(
        "--hair-colour",
        choices=HAIR_COLOURS,
        default=DEFAULT_HAIR_COLOUR,
        help=(
            "own: a mustache or goatee in the colours of the source's own beard or brows, a "
            "fringe in its hair's; exemplar: the exemplar's colours; auto: a fringe the "
            f"source's, a mustache or goatee the exemplar's (default: {DEFAULT_HAIR_COLOUR})"
        ),
    )
    parser.add_argument(
        "--source-face", type=ranged(int, 0), default=0, help="source face index (0 = largest)"
    )
    parser.add_argument(
        "--exemplar-face", type=ranged(int, 0), default=0, help="exemplar face index (0 = largest)"
    )
    parser.add_argument(
        "--save-intermediates",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the aligned crops, warped exemplar, mask, flow and landmarks here",
    )
    parser.add_argument(
        "--landmarks", choices=LANDMARK_BACKENDS, default="dlib", help="landmark backend"
    )
    parser.add_argument(
        "--device", type=_device, default="auto", help="auto (default), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument(
        "--work-size",
        type=ranged(int, 1),
        default=DEFAULT_WORK_SIZE,
        help=f"largest side of the high-resolution face crop (default: {DEFAULT_WORK_SIZE})",
    )
    parser.add_argument(
        "--max-pixels",
        type=ranged(int, 1),
        default=DEFAULT_MAX_PIXELS,
        help=f"largest accepted photo, width x height (default: {DEFAULT_MAX_PIXELS:,})",
    )
    return parser


def _check_output(path: Path) -> None:
    """Fail early on an output format PIL cannot write; create the output folder."""
    from PIL import Image

    suffix = path.suffix.lower()
    if suffix not in Image.registered_extensions():
        raise CommandError(
            f"cannot write {str(path)!r}: unknown image format {suffix or '(none)'!r}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(f"cannot create the output folder {str(path.parent)!r} ({err})") from err


def run_transfer(args: argparse.Namespace) -> int:
    """Run ``geogan-transfer`` on parsed arguments; print where the result went and the timings."""
    from .pipeline import TransferPipeline

    _check_output(args.output)
    pipe = TransferPipeline(
        model=args.model,
        landmark_backend=args.landmarks,
        device=args.device,
        work_size=args.work_size,
        max_pixels=args.max_pixels,
    )
    result = pipe(
        args.source,
        args.exemplar,
        attribute=args.attribute,
        strength=args.strength,
        source_face=args.source_face,
        exemplar_face=args.exemplar_face,
        hair_colour=args.hair_colour,
    )
    try:
        result.image.save(args.output)
        saved = (
            result.save_intermediates(args.save_intermediates) if args.save_intermediates else []
        )
    except OSError as err:
        raise CommandError(f"cannot write the result ({err})") from err
    width, height = result.image.size
    print(
        f"wrote {args.output} ({width}x{height}, {result.attribute}, strength {result.strength:g}, "
        f"{result.mode}; face {result.source_face + 1} of {len(result.source_faces)})"
    )
    if saved:
        print(f"intermediates: {len(saved)} files in {args.save_intermediates}")
    stages = ", ".join(
        f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in result.timings.items()
    )
    print(f"timings: {stages}; total {result.total_time * 1000:.0f} ms")
    return 0


def transfer_main(argv: Sequence[str] | None = None) -> int:
    """``geogan-transfer SOURCE EXEMPLAR -o OUT.png [--attribute ...]`` (see ``--help``)."""
    return _run_cli(build_transfer_parser(), run_transfer, argv)


def prepare_main(argv: Sequence[str] | None = None) -> int:
    """``geogan-prepare``: landmark preparation of a dataset (:mod:`geogan_hf.prepare`)."""
    return _module_main("prepare", argv)


def synth_main(argv: Sequence[str] | None = None) -> int:
    """``geogan-synth``: the synthetic ground-truth benchmark (:mod:`geogan_hf.synthetic`)."""
    return _module_main("synthetic", argv)


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``geogan-eval``: evaluation metrics of a model (:mod:`geogan_hf.evaluation`)."""
    return _module_main("evaluation", argv)
