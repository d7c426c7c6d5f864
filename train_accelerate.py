#!/usr/bin/env python
"""Train GeoGAN with 🤗 Accelerate.

Runs the same on one GPU, several GPUs or nodes, and the CPU, with ``accelerate launch``
or plain ``python``::

    accelerate launch train_accelerate.py --dataset_name ./faces --attributes Mustache \\
        --resolution 256 --train_batch_size 24 --mixed_precision bf16 --output_dir geogan-mustache

Output layout (``--output_dir``):

* the generator at the top level (``config.json``, ``model.safetensors``, ``README.md``
  model card), so that ``GeoGAN.from_pretrained(output_dir)`` (or the Hub repo after
  ``--push_to_hub``) loads it directly; EMA weights when ``--ema_decay`` is set;
* ``discriminator/``: the discriminator, to continue adversarial fine-tuning;
* ``checkpoint-STEP/``: resumable training states (``--resume_from_checkpoint latest``);
* ``logs/``: TensorBoard (uploaded by ``--push_to_hub`` for the Hub's metrics tab);
  ``validation/step-N.png``: image grids (source, exemplar, warped exemplar, mask, flow,
  result, one row per validation pair);
* ``train_summary.json``: arguments, steps, final metrics, skipped rows.

One optimisation step (:func:`training_step`), repeated over the accumulated micro-batches:

1. **generator phase**: the discriminator is frozen (``requires_grad_(False)``), so the
   generator's backward leaves the discriminator's accumulated gradients untouched; the
   full cycle objective of :func:`geogan_hf.losses.generator_loss` is back-propagated and
   the generator's optimizer steps;
2. **discriminator phase**: the discriminator is unfrozen and trained on the reals and the
   *detached* fakes of phase 1.

Accumulation: each micro-batch enters ``accelerator.accumulate(generator, discriminator)``
exactly once (every call advances Accelerate's counter); the optimizers of both models
step together when ``accelerator.sync_gradients`` is true, and the global step is counted
once there. The learning-rate schedules are stepped by hand once per global step (an
Accelerate-prepared scheduler would advance once per process).

Checkpoints (:func:`save_checkpoint`) are safetensors and JSON only, written atomically;
resuming reads no pickle and refuses a checkpoint that holds one (:func:`load_checkpoint`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import (
    DataLoaderConfiguration,
    ProjectConfiguration,
    gather_object,
    set_seed,
)
from datasets import IterableDataset
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from geogan_hf.arguments import ranged
from geogan_hf.cli import run_command
from geogan_hf.data import PairedAttributeDataset, dataset_terms, load_face_dataset
from geogan_hf.errors import CheckpointError, DatasetError, InvalidArgumentError
from geogan_hf.geometry import flow_to_rgb
from geogan_hf.losses import (
    LossWeights,
    discriminator_loss,
    generator_loss,
    landmark_error_pixels,
)
from geogan_hf.model import (
    CONFIG_RANGES,
    WEIGHTS_NAME,
    GeoGAN,
    GeoGANDiscriminator,
    load_weights_strict,
)

logger = get_logger(__name__)

GENERATOR_DIR = "generator"  # inside a checkpoint-STEP folder
DISCRIMINATOR_DIR = "discriminator"
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
PARTIAL_SUFFIX = ".partial"  # a checkpoint being written
STATE_NAME = "training_state.json"  # written last: a checkpoint without it is incomplete
STATE_FORMAT = 1
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt")
GENERATOR_PARTS = ("flow", "mask", "refine", "remove")  # GeoGAN's ``{part}_net`` modules
LR_SCHEDULERS = ("step", "constant", "constant_with_warmup", "linear", "cosine")


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of the training script, with their allowed ranges."""
    positive, non_negative = ranged(int, 1), ranged(int, 0)
    fraction = ranged(float, 0, 1)

    def config_range(key: str) -> Callable[[str], Any]:  # the range config.json allows
        low, high = CONFIG_RANGES[key]
        return ranged(type(low), low, high)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", required=True, help="Hub dataset id or local folder.")
    data.add_argument("--dataset_config_name", default=None)
    data.add_argument("--split", default="train")
    data.add_argument("--streaming", action="store_true", help="Stream a Hub dataset.")
    data.add_argument("--cache_dir", default=None)
    data.add_argument("--image_column", default=None, help="Default: the first image column.")
    data.add_argument(
        "--attributes_file",
        default=None,
        help="Labels from a CelebA-format attribute file (list_attr_celeba.txt), "
        "matched to the images by file name or row.",
    )
    data.add_argument("--landmark_column", default="landmarks")
    data.add_argument("--attributes", nargs="+", default=["Mustache"], help="CelebA names.")
    data.add_argument("--resolution", type=config_range("image_size"), default=256)
    data.add_argument("--flip_prob", type=fraction, default=0.5)
    data.add_argument("--dataloader_num_workers", type=non_negative, default=0)
    data.add_argument(
        "--max_train_samples", type=positive, default=None, help="Use the first N rows only."
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--geometry_prior", action="store_true", help="TPS flow + region mask prior."
    )
    model.add_argument(
        "--freeze_generator_parts",
        nargs="+",
        choices=GENERATOR_PARTS,
        default=[],
        help="Generator sub-networks to keep at their initial weights (with --geometry_prior "
        "a frozen flow or mask part keeps that output exactly the prior's).",
    )
    model.add_argument("--ngf", type=config_range("ngf"), default=16)
    model.add_argument("--n_blocks", type=config_range("n_blocks"), default=3)
    model.add_argument("--ndf", type=config_range("ndf"), default=64)
    model.add_argument(
        "--n_scales", type=config_range("n_scales"), default=3, help="Discriminator scales."
    )

    train = parser.add_argument_group("training")
    train.add_argument("--train_batch_size", type=positive, default=24, help="Per device.")
    train.add_argument("--num_train_epochs", type=positive, default=100)
    train.add_argument("--max_train_steps", type=positive, default=None, help="Overrides epochs.")
    train.add_argument("--gradient_accumulation_steps", type=positive, default=1)
    train.add_argument("--learning_rate", type=ranged(float, 0), default=1e-4)
    train.add_argument("--adam_beta1", type=fraction, default=0.9)
    train.add_argument("--adam_beta2", type=fraction, default=0.999)
    train.add_argument(
        "--lr_scheduler",
        choices=LR_SCHEDULERS,
        default="step",
        help="step: the paper's staircase decay (--lr_decay_*); the others as in diffusers' "
        "examples (linear and cosine decay to 0 at the last step).",
    )
    train.add_argument(
        "--lr_warmup_steps",
        type=non_negative,
        default=0,
        help="Steps of linear warm-up from 0 (every schedule but constant).",
    )
    train.add_argument(
        "--lr_decay_every", type=positive, default=20, help="In --lr_decay_unit (step schedule)."
    )
    train.add_argument("--lr_decay_unit", choices=["epochs", "steps"], default="epochs")
    train.add_argument("--lr_decay_generator", type=fraction, default=0.4)
    train.add_argument("--lr_decay_discriminator", type=fraction, default=0.2)
    train.add_argument(
        "--alpha", type=config_range("alpha"), default=0.1, help="Refinement scale after warm-up."
    )
    train.add_argument("--alpha_warmup_epochs", type=ranged(float, 0), default=10.0)
    train.add_argument(
        "--alpha_warmup_steps", type=non_negative, default=None, help="Overrides epochs."
    )
    train.add_argument("--max_grad_norm", type=ranged(float, 0), default=None)
    train.add_argument("--ema_decay", type=fraction, default=None, help="e.g. 0.999; off if unset.")
    for name, value in LossWeights().to_dict().items():
        train.add_argument(f"--lambda_{name}", type=ranged(float, 0), default=value)
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--allow_tf32", action="store_true", help="TF32 matmuls on Ampere+ GPUs (faster)."
    )

    out = parser.add_argument_group("outputs")
    out.add_argument("--output_dir", default="geogan-model")
    out.add_argument("--logging_dir", default="logs", help="Relative to --output_dir.")
    out.add_argument(
        "--report_to", default="tensorboard", help='"tensorboard", "wandb", "all", "none".'
    )
    out.add_argument("--tracker_project_name", default="geogan", help="Tracker run name.")
    out.add_argument("--logging_steps", type=positive, default=10, help="Scalars every N steps.")
    out.add_argument("--validation_steps", type=positive, default=500)
    out.add_argument("--num_validation_pairs", type=positive, default=4)
    out.add_argument("--checkpointing_steps", type=positive, default=1000)
    out.add_argument("--checkpoints_total_limit", type=positive, default=None)
    out.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a path.')
    out.add_argument("--save_at_checkpoints", action="store_true", help="Also export models.")
    out.add_argument("--push_to_hub", action="store_true")
    out.add_argument("--hub_model_id", default=None)
    out.add_argument("--hub_private_repo", action="store_true")
    out.add_argument("--hub_token", default=None)
    out.add_argument(
        "--write_rank_summary",
        action="store_true",
        help="Each process writes rank-R.json (process count, weight hash): for tests.",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed command-line arguments (out-of-range values exit with argparse's error)."""
    return build_parser().parse_args(argv)


def loss_weights(args: argparse.Namespace) -> LossWeights:
    """The loss weights from the ``--lambda_*`` flags."""
    return LossWeights(
        **{name: getattr(args, f"lambda_{name}") for name in LossWeights().to_dict()}
    )


# ----------------------------------------------------------------------------- schedules


def build_lr_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    warmup_steps: int,
    total_steps: int,
    decay_every: int,
    decay_factor: float,
) -> LRScheduler:
    """The ``--lr_scheduler`` schedule over optimisation steps.

    ``step`` is the paper's staircase ``lr * decay_factor ** (step // decay_every)``;
    ``linear`` and ``cosine`` reach 0 at ``total_steps``; ``constant(_with_warmup)`` keep
    the base rate. A warm-up ramps linearly from 0 to the base rate over ``warmup_steps``,
    then the schedule starts counting.
    """
    schedules = torch.optim.lr_scheduler
    decay_steps = max(total_steps - warmup_steps, 1)
    if name == "step":
        schedule = schedules.StepLR(optimizer, decay_every, decay_factor)
    elif name == "linear":
        schedule = schedules.LinearLR(optimizer, 1.0, 0.0, total_iters=decay_steps)
    elif name == "cosine":
        schedule = schedules.CosineAnnealingLR(optimizer, decay_steps)
    else:
        schedule = schedules.ConstantLR(optimizer, factor=1.0)
    if not warmup_steps:
        return schedule
    # LambdaLR, not LinearLR, for the warm-up: LinearLR cannot start at a factor of 0
    warmup = schedules.LambdaLR(optimizer, lambda step: step / warmup_steps)
    return schedules.SequentialLR(optimizer, [warmup, schedule], milestones=[warmup_steps])


def refinement_alpha(step: int, warmup_steps: int, alpha: float) -> float:
    """The refinement residual's scale: 0 during the warm-up, then ``alpha`` (official)."""
    return 0.0 if step < warmup_steps else alpha


# ----------------------------------------------------------------------------- the step


def freeze_generator_parts(generator: GeoGAN, parts: Sequence[str]) -> None:
    """Keeps the named sub-networks (of :data:`GENERATOR_PARTS`) at their current weights."""
    for part in parts:
        set_requires_grad(getattr(generator, f"{part}_net"), False)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze or unfreeze every parameter of a module."""
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def training_step(
    accelerator: Accelerator,
    batch: dict[str, torch.Tensor],
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    *,
    alpha: float,
    weights: LossWeights,
    max_grad_norm: float | None = None,
) -> tuple[dict[str, torch.Tensor], object]:
    """One micro-batch of GAN training: generator phase, then discriminator phase.

    Call it inside ``accelerator.accumulate(generator, discriminator)``; the optimizers
    (prepared by Accelerate) only step when gradients are synchronised.

    Returns:
        ``(parts, cycle)``: detached loss terms (``g_*``, ``d_*``, ``landmark_px``) and the
        generator's :class:`~geogan_hf.losses.CycleOutputs`.
    """
    source, exemplar = batch["source"], batch["exemplar"]
    source_lm, exemplar_lm = batch["source_landmarks"], batch["exemplar_landmarks"]
    attribute = batch["attribute"]
    d_core = accelerator.unwrap_model(discriminator)

    # Generator phase. The frozen discriminator is called unwrapped: no DDP reduction of
    # gradients it does not compute.
    set_requires_grad(d_core, False)
    with accelerator.autocast():
        loss_g, parts_g, cycle = generator_loss(
            generator, d_core, source, exemplar, source_lm, exemplar_lm, attribute,
            alpha=alpha, weights=weights,
        )  # fmt: skip
    accelerator.backward(loss_g)
    if max_grad_norm and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(generator.parameters(), max_grad_norm)
    optimizer_g.step()
    optimizer_g.zero_grad(set_to_none=True)

    # Discriminator phase on the detached fakes.
    set_requires_grad(d_core, True)
    with accelerator.autocast():
        loss_d, parts_d = discriminator_loss(
            discriminator, source, exemplar, cycle.fakes(), attribute, weights
        )
    accelerator.backward(loss_d)
    if max_grad_norm and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(discriminator.parameters(), max_grad_norm)
    optimizer_d.step()
    optimizer_d.zero_grad(set_to_none=True)

    parts = {f"g_{k}": v for k, v in parts_g.items()}
    parts |= {f"d_{k}": v for k, v in parts_d.items()}
    parts["g_total"], parts["d_total"] = loss_g.detach(), loss_d.detach()
    parts["landmark_px"] = landmark_error_pixels(cycle.transfer.flow, source_lm, exemplar_lm)
    return parts, cycle


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-STEP`` folders of a run, oldest first; other names are ignored."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def is_complete(checkpoint: Path) -> bool:
    """Whether a checkpoint was written to the end (its ``training_state.json`` comes last)."""
    return (checkpoint / STATE_NAME).is_file()


def prune_checkpoints(output_dir: str | os.PathLike, keep: int | None) -> list[Path]:
    """Delete the oldest checkpoints so that ``keep - 1`` remain (before a new save).

    Returns:
        The deleted folders.
    """
    if keep is None:
        return []
    existing = checkpoint_dirs(output_dir)
    stale = existing[: max(len(existing) - keep + 1, 0)]
    for path in stale:
        shutil.rmtree(path)
    return stale


def save_state_file(path: Path, state: Any) -> None:
    """Write a nested state (dicts, lists, tuples, tensors, numbers, strings) as safetensors.

    The tensors are the file's tensors, named by their place in the state; everything else
    is JSON in the file's metadata. :func:`load_state_file` reads it back, without pickle.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            name = where if where not in tensors else f"{where}#{len(tensors)}"
            tensors[name] = value.detach().cpu().contiguous()
            return {"tensor": name}
        if isinstance(value, dict):
            return {"dict": [[k, encode(v, f"{where}/{k}")] for k, v in value.items()]}
        if isinstance(value, tuple | list):
            items = [encode(v, f"{where}/{i}") for i, v in enumerate(value)]
            return {"tuple": items} if isinstance(value, tuple) else items
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"{path.name}: cannot store a {type(value).__name__} at {where}")

    metadata = {"state": json.dumps(encode(state, path.stem))}
    save_file(tensors, str(path), metadata=metadata)


def load_state_file(path: Path) -> Any:
    """Read a state written by :func:`save_state_file`; :class:`CheckpointError` if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
            layout = json.loads((f.metadata() or {})["state"])
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable training state ({e})") from e

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "tensor" in value:
            return tensors[value["tensor"]]
        if "tuple" in value:
            return tuple(decode(v) for v in value["tuple"])
        return {k: decode(v) for k, v in value["dict"]}

    try:
        return decode(layout)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable training state ({e!r})") from e


def rng_state() -> dict[str, Any]:
    """This process's random generators: Python, NumPy, torch (CPU and every CUDA device)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    accelerator: Accelerator,
    checkpoint: Path,
    step: int,
    models: dict[str, nn.Module],
    states: dict[str, Any],
) -> None:
    """Write the training state to ``checkpoint`` atomically; call it on every process.

    Everything is written into ``<checkpoint>.partial`` and renamed when complete, so an
    interrupted save never leaves a ``checkpoint-STEP`` folder. Layout: ``models`` as
    ``save_pretrained`` folders; ``states`` (objects with ``state_dict``: optimizers,
    schedulers, EMA, grad scaler) as ``NAME.safetensors``; ``rng-RANK.safetensors`` per
    process; ``training_state.json`` (step, process count) last. No pickle anywhere.
    """
    partial = checkpoint.with_name(checkpoint.name + PARTIAL_SUFFIX)
    if accelerator.is_main_process:
        for stale in checkpoint.parent.glob(f"checkpoint-*{PARTIAL_SUFFIX}"):
            shutil.rmtree(stale)  # a save interrupted earlier
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    save_state_file(partial / f"rng-{accelerator.process_index}.safetensors", rng_state())
    if accelerator.is_main_process:
        for name, model in models.items():
            accelerator.unwrap_model(model).save_pretrained(partial / name)
        for name, obj in states.items():
            save_state_file(partial / f"{name}.safetensors", obj.state_dict())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        info = {"format": STATE_FORMAT, "step": step, "num_processes": accelerator.num_processes}
        (partial / STATE_NAME).write_text(json.dumps(info, indent=2))
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
        partial.rename(checkpoint)
    accelerator.wait_for_everyone()


def refuse_pickles(checkpoint: Path) -> None:
    """:class:`CheckpointError` if ``checkpoint`` holds files that loaders would unpickle."""
    found = sorted(
        p.relative_to(checkpoint).as_posix()
        for p in checkpoint.rglob("*")
        if p.suffix.lower() in PICKLE_SUFFIXES
    )
    if found:
        raise CheckpointError(
            f"{checkpoint}: refusing to resume, it holds pickle files ({', '.join(found[:5])}); "
            "they are never loaded (unpickling can run any code). Checkpoints of this script "
            "are safetensors and JSON only; delete these files or the folder."
        )


def load_checkpoint(
    accelerator: Accelerator,
    checkpoint: Path,
    models: dict[str, nn.Module],
    states: dict[str, Any],
) -> int:
    """Restore what :func:`save_checkpoint` wrote; returns the step. Reads no pickle.

    Raises:
        CheckpointError: pickle files, an incomplete folder, a missing or mismatched state.
        ModelLoadError: model weights that do not match this run's models.
    """
    refuse_pickles(checkpoint)
    if not is_complete(checkpoint):
        raise CheckpointError(
            f"{checkpoint}: incomplete checkpoint (no {STATE_NAME}: an interrupted save, "
            "or written by an older version)"
        )
    try:
        info = json.loads((checkpoint / STATE_NAME).read_text())
        step = info["step"]
        if info["format"] != STATE_FORMAT or type(step) is not int or step < 0:
            raise ValueError(f"format {info['format']!r}, step {step!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{checkpoint / STATE_NAME}: not a training state ({e})") from e
    for name, model in models.items():
        load_weights_strict(accelerator.unwrap_model(model), checkpoint / name / WEIGHTS_NAME)
    for name, obj in states.items():
        path = checkpoint / f"{name}.safetensors"
        if not path.is_file():
            raise CheckpointError(f"{checkpoint}: no {path.name} (a different run set-up?)")
        try:
            obj.load_state_dict(load_state_file(path))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: does not match this run ({e})") from e
    rng = checkpoint / f"rng-{accelerator.process_index}.safetensors"
    if rng.is_file():
        set_rng_state(load_state_file(rng))
    else:  # saved by fewer processes: training continues, not bit-identically
        logger.warning(f"{checkpoint}: no {rng.name}; random generators keep their seed")
    return step


def resolve_checkpoint(args: argparse.Namespace) -> Path | None:
    """The checkpoint ``--resume_from_checkpoint`` asks for (``None``: start fresh).

    ``latest`` is the newest complete ``checkpoint-STEP`` folder of ``--output_dir``.
    """
    if not args.resume_from_checkpoint:
        return None
    if args.resume_from_checkpoint != "latest":
        path = Path(args.resume_from_checkpoint)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such checkpoint folder")
        return path
    complete = [p for p in checkpoint_dirs(args.output_dir) if is_complete(p)]
    return complete[-1] if complete else None


# ----------------------------------------------------------------------------- logging


@torch.no_grad()
def validation_grid(generator: nn.Module, batch: dict[str, torch.Tensor], alpha: float):
    """Rows of (source, exemplar, warped, mask, flow, result) in [0, 1], ``(3, H', W')``."""
    from torchvision.utils import make_grid

    was_training = generator.training
    generator.eval()
    out = generator(
        batch["source"], batch["exemplar"], batch["source_landmarks"],
        batch["exemplar_landmarks"], batch["attribute"], alpha,
    )  # fmt: skip
    generator.train(was_training)
    columns = [
        batch["source"],
        batch["exemplar"],
        out.warped,
        out.mask.expand(-1, 3, -1, -1) * 2 - 1,
        flow_to_rgb(out.flow),
        out.image,
    ]
    tiles = torch.stack([c.float().cpu() for c in columns], dim=1).flatten(0, 1)
    return make_grid((tiles.clamp(-1, 1) + 1) / 2, nrow=len(columns), padding=2)


def log_validation(
    accelerator: Accelerator,
    generator: nn.Module,
    batch: dict[str, torch.Tensor],
    alpha: float,
    step: int,
    output_dir: Path,
) -> Path:
    """Write the validation grid to ``validation/step-N.png`` and the trackers that show
    images (TensorBoard, Weights & Biases)."""
    from torchvision.utils import save_image

    grid = validation_grid(generator, batch, alpha)
    path = output_dir / "validation" / f"step-{step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation", grid, step)
        elif tracker.name == "wandb":
            # imported only with a wandb tracker; wandb is not installed in the test
            # environment, so this branch is not tested there
            import wandb

            tracker.log({"validation": [wandb.Image(grid)]}, step=step)
    return path


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names and exact values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def record_unreadable(dataset: PairedAttributeDataset, reported: list[torch.Tensor]) -> None:
    """Counts the unreadable rows that batches reported (DataLoader workers find them in
    their own dataset copies) in ``dataset``, and empties ``reported``."""
    if reported:
        dataset.record_unreadable(torch.cat([r.flatten() for r in reported]).unique().tolist())
        reported.clear()


def describe_skipped(dataset: PairedAttributeDataset) -> str:
    """One log line about the rows the dataset skipped."""
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(dataset.skipped.items()) if v) or "none"
    return f"skipped {dataset.num_skipped} bad rows ({reasons})"


# ----------------------------------------------------------------------------- export


def export_models(
    accelerator: Accelerator,
    generator: nn.Module,
    discriminator: nn.Module,
    output_dir: Path,
    card: dict,
) -> None:
    """``save_pretrained`` the generator (top level) and discriminator (``discriminator/``).

    ``card`` holds the ``model_card_kwargs`` of :meth:`GeoGAN.generate_model_card`.
    """
    generator.save_pretrained(output_dir, model_card_kwargs=card)
    accelerator.unwrap_model(discriminator).save_pretrained(
        output_dir / DISCRIMINATOR_DIR, model_card_kwargs={**card, "subfolder": DISCRIMINATOR_DIR}
    )


def model_card_kwargs(
    args: argparse.Namespace,
    dataset: PairedAttributeDataset,
    step: int,
    epochs: int,
    losses: dict[str, float],
) -> dict:
    """Training details for the generated model cards (arguments, data and its terms, length,
    last losses)."""
    local = Path(args.dataset_name).exists()
    notes = [
        f"Trained with `train_accelerate.py` (geogan_hf) for {step} steps; "
        f"{len(dataset)} (attribute, exemplar) pairs per epoch; "
        f"{dataset.num_skipped} bad rows skipped ({dict(dataset.skipped) or 'none'}).",
        f"Exported weights: EMA of the generator (decay {args.ema_decay})."
        if args.ema_decay is not None
        else "Exported weights: last step.",
    ]
    config = f"config `{args.dataset_config_name}`, " if args.dataset_config_name else ""
    labels = f", labels from `{args.attributes_file}`" if args.attributes_file else ""
    card = {
        "dataset": f"`{args.dataset_name}` ({config}split `{args.split}`"
        + (", a local folder" if local else "")
        + f"{labels}): {dataset.describe()}",
        "training": {k: v for k, v in vars(args).items() if k != "hub_token"},
        "steps": step,
        "epochs": epochs,
        "losses": {k: round(v, 5) for k, v in losses.items()},
        "notes": " ".join(notes),
        **dataset_terms(args.dataset_name, args.attributes_file).card_kwargs(),
    }
    if args.hub_model_id:
        card["repo_id"] = args.hub_model_id
    return card


def latest_validation_grid(output_dir: Path) -> str | None:
    """The newest ``validation/step-N.png``, relative to ``output_dir`` (``None``: none)."""
    grids = list(output_dir.glob("validation/step-*.png"))
    if not grids:
        return None
    newest = max(grids, key=lambda p: int(p.stem.split("-")[1]))
    return newest.relative_to(output_dir).as_posix()


def create_hub_repo(args: argparse.Namespace, output_dir: Path) -> str:
    """Create (or find) the Hub model repo ``--push_to_hub`` uploads to; returns its id."""
    from huggingface_hub import create_repo

    return create_repo(
        args.hub_model_id or output_dir.name,
        private=args.hub_private_repo,
        token=args.hub_token,
        exist_ok=True,
    ).repo_id


def push_to_hub(args: argparse.Namespace, output_dir: Path) -> str:
    """Upload the exported models and the logs (not the checkpoints) to ``--hub_model_id``;
    returns it."""
    from huggingface_hub import upload_folder

    repo_id = args.hub_model_id
    upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        token=args.hub_token,
        commit_message="Upload GeoGAN trained with train_accelerate.py",
        # logs/ goes too: the Hub's metrics tab shows the TensorBoard runs it finds
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "rank-*.json"],
    )
    return repo_id


# ----------------------------------------------------------------------------- main


def tracker_config(args: argparse.Namespace) -> dict[str, int | float | str | bool]:
    """The arguments as TensorBoard hyper-parameters (scalars and strings only)."""
    config = {}
    for key, value in vars(args).items():
        if isinstance(value, list | tuple):
            value = ",".join(map(str, value))
        if isinstance(value, int | float | str | bool) and key != "hub_token":
            config[key] = value
    return config


def first_rows(rows: Any, n: int) -> Any:
    """The first ``n`` rows of a ``datasets.Dataset`` or ``IterableDataset``."""
    if isinstance(rows, IterableDataset):
        return rows.take(n)
    return rows.select(range(min(n, len(rows))))


def _collate(items):
    return torch.utils.data.default_collate(items)


def main(args: argparse.Namespace) -> dict:
    """Train; returns the run summary (also written to ``train_summary.json``)."""
    if args.lr_scheduler == "constant" and args.lr_warmup_steps:
        raise InvalidArgumentError(
            "--lr_scheduler constant has no warm-up; use constant_with_warmup"
        )
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
    )
    logger.info(accelerator.state, main_process_only=False)
    # the precision in effect (``accelerate launch --mixed_precision`` sets it outside args),
    # as the summary and the model card record it
    args.mixed_precision = accelerator.mixed_precision
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if args.push_to_hub:  # a bad token or repo id fails now, not after training
            args.hub_model_id = create_hub_repo(args, output_dir)

    # Data.
    with accelerator.main_process_first():
        rows = load_face_dataset(
            args.dataset_name,
            config_name=args.dataset_config_name,
            split=args.split,
            streaming=args.streaming,
            cache_dir=args.cache_dir,
        )
        if args.max_train_samples is not None:
            rows = first_rows(rows, args.max_train_samples)
        dataset = PairedAttributeDataset(
            rows,
            args.attributes,
            args.resolution,
            image_column=args.image_column,
            landmark_column=args.landmark_column,
            attributes_file=args.attributes_file,
            flip_prob=args.flip_prob,
            seed=args.seed,
            show_progress=accelerator.is_local_main_process,
        )
    logger.info(f"Data: {len(dataset)} pairs per epoch; {describe_skipped(dataset)}")
    dataloader = DataLoader(
        dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.dataloader_num_workers,
        collate_fn=_collate,
    )
    validation_batch = _collate(
        [dataset[i] for i in range(min(args.num_validation_pairs, len(dataset)))]
    )

    # Models and optimizers.
    generator = GeoGAN(
        image_size=args.resolution,
        attributes=tuple(args.attributes),
        ngf=args.ngf,
        n_blocks=args.n_blocks,
        geometry_prior=args.geometry_prior,
        alpha=args.alpha,
    )
    discriminator = GeoGANDiscriminator(
        attributes=tuple(args.attributes), ndf=args.ndf, n_scales=args.n_scales
    )
    freeze_generator_parts(generator, args.freeze_generator_parts)
    betas = (args.adam_beta1, args.adam_beta2)
    optimizer_g = torch.optim.Adam(
        [p for p in generator.parameters() if p.requires_grad], lr=args.learning_rate, betas=betas
    )
    optimizer_d = torch.optim.Adam(
        [p for p in discriminator.parameters() if p.requires_grad],
        lr=args.learning_rate,
        betas=betas,
    )
    generator, discriminator, optimizer_g, optimizer_d, dataloader = accelerator.prepare(
        generator, discriminator, optimizer_g, optimizer_d, dataloader
    )

    # Steps and schedules (in optimisation steps, after sharding and accumulation).
    steps_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
    if steps_per_epoch == 0:
        raise DatasetError(
            f"the dataset has {len(dataset)} pairs, fewer than one batch of "
            f"{args.train_batch_size} x {accelerator.num_processes} processes"
        )
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    decay_every = args.lr_decay_every * (steps_per_epoch if args.lr_decay_unit == "epochs" else 1)
    scheduler_g, scheduler_d = (
        build_lr_scheduler(
            args.lr_scheduler,
            optimizer.optimizer,
            warmup_steps=args.lr_warmup_steps,
            total_steps=max_train_steps,
            decay_every=decay_every,
            decay_factor=factor,
        )
        for optimizer, factor in (
            (optimizer_g, args.lr_decay_generator),
            (optimizer_d, args.lr_decay_discriminator),
        )
    )
    warmup = args.alpha_warmup_steps
    if warmup is None:
        warmup = round(args.alpha_warmup_epochs * steps_per_epoch)

    ema = None
    if args.ema_decay is not None:
        ema = AveragedModel(
            accelerator.unwrap_model(generator),
            multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay),
            use_buffers=True,
        )
        set_requires_grad(ema, False)
    # What a checkpoint holds (see save_checkpoint); Accelerate's save_state would pickle.
    models = {GENERATOR_DIR: generator, DISCRIMINATOR_DIR: discriminator}
    states = {
        "optimizer_g": optimizer_g,
        "optimizer_d": optimizer_d,
        "scheduler_g": scheduler_g,
        "scheduler_d": scheduler_d,
    }
    if ema is not None:
        states["ema"] = ema
    if accelerator.scaler is not None:
        states["grad_scaler"] = accelerator.scaler

    weights = loss_weights(args)
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config=tracker_config(args))

    # Resume.
    global_step, first_epoch, resume_batches = 0, 0, 0
    checkpoint = resolve_checkpoint(args)
    if args.resume_from_checkpoint and checkpoint is None:
        logger.info("No checkpoint to resume from; starting a new run.")
    incomplete = [p.name for p in checkpoint_dirs(output_dir) if not is_complete(p)]
    if args.resume_from_checkpoint == "latest" and incomplete:
        logger.info(f"Ignoring incomplete checkpoints: {', '.join(incomplete)}")
    if checkpoint is not None:
        global_step = load_checkpoint(accelerator, checkpoint, models, states)
        logger.info(f"Resuming from {checkpoint} at step {global_step}")
        first_epoch = global_step // steps_per_epoch
        resume_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    total_batch = args.train_batch_size * accelerator.num_processes
    total_batch *= args.gradient_accumulation_steps
    logger.info(
        f"Training: {max_train_steps} steps, {num_epochs} epochs of {steps_per_epoch} steps, "
        f"batch {total_batch} ({accelerator.num_processes} processes), alpha warm-up {warmup} steps"
    )
    progress = tqdm(
        total=max_train_steps,
        initial=global_step,
        desc="steps",
        disable=not accelerator.is_local_main_process,
    )
    last_parts: dict[str, float] = {}
    reported: list[torch.Tensor] = []  # items' unreadable rows, read at logging steps
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_train_steps:
            break
        dataset.set_epoch(epoch)
        dataloader.set_epoch(epoch)
        batches = dataloader
        if epoch == first_epoch and resume_batches:
            batches = accelerator.skip_first_batches(dataloader, resume_batches)
        generator.train()
        discriminator.train()
        for batch in batches:
            reported.append(batch["unreadable_rows"])
            alpha = refinement_alpha(global_step, warmup, args.alpha)
            with accelerator.accumulate(generator, discriminator):
                parts, _ = training_step(
                    accelerator, batch, generator, discriminator, optimizer_g, optimizer_d,
                    alpha=alpha, weights=weights, max_grad_norm=args.max_grad_norm,
                )  # fmt: skip
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            scheduler_g.step()
            scheduler_d.step()
            if ema is not None:
                ema.update_parameters(accelerator.unwrap_model(generator))

            progress.update(1)
            if global_step % args.logging_steps == 0 or global_step == max_train_steps:
                record_unreadable(dataset, reported)
                last_parts = {k: v.item() for k, v in parts.items()}  # syncs the device
                logs = dict(last_parts, alpha=alpha)
                logs["lr_generator"] = scheduler_g.get_last_lr()[0]
                logs["lr_discriminator"] = scheduler_d.get_last_lr()[0]
                accelerator.log(logs, step=global_step)
                progress.set_postfix(
                    g=f"{last_parts['g_total']:.3f}", d=f"{last_parts['d_total']:.3f}",
                    lm_px=f"{last_parts['landmark_px']:.2f}",
                )  # fmt: skip

            if global_step % args.checkpointing_steps == 0:
                if accelerator.is_main_process:
                    for stale in prune_checkpoints(output_dir, args.checkpoints_total_limit):
                        logger.info(f"Removed old checkpoint {stale}")
                accelerator.wait_for_everyone()
                save_path = output_dir / f"checkpoint-{global_step}"
                save_checkpoint(accelerator, save_path, global_step, models, states)
                if args.save_at_checkpoints and accelerator.is_main_process:
                    card = model_card_kwargs(args, dataset, global_step, num_epochs, last_parts)
                    export_generator = _export_generator(accelerator, generator, ema)
                    export_models(
                        accelerator, export_generator, discriminator, save_path / "export", card
                    )
                logger.info(f"Saved state to {save_path}")
            if accelerator.is_main_process and global_step % args.validation_steps == 0:
                log_validation(
                    accelerator,
                    _export_generator(accelerator, generator, ema),
                    {k: v.to(accelerator.device) for k, v in validation_batch.items()},
                    alpha,
                    global_step,
                    output_dir,
                )
            if global_step >= max_train_steps:
                break
    progress.close()

    # Export.
    record_unreadable(dataset, reported)
    if accelerator.num_processes > 1:
        dataset.record_unreadable(gather_object(sorted(dataset.unreadable_rows)))
    accelerator.wait_for_everyone()
    logger.info(f"Data at the end: {describe_skipped(dataset)}")
    summary = {
        "global_step": global_step,
        "epochs": num_epochs,
        "num_processes": accelerator.num_processes,
        "final_metrics": last_parts,
        "skipped_rows": dataset.num_skipped,
        "skipped_by_reason": dict(dataset.skipped),
        "args": {k: v for k, v in vars(args).items() if k != "hub_token"},
    }
    final_generator = _export_generator(accelerator, generator, ema)
    if accelerator.is_main_process:
        export_models(
            accelerator,
            final_generator,
            discriminator,
            output_dir,
            {
                **model_card_kwargs(args, dataset, global_step, num_epochs, last_parts),
                "validation_image": latest_validation_grid(output_dir),
            },
        )
        (output_dir / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        if args.push_to_hub:
            logger.info(f"Pushed to https://huggingface.co/{push_to_hub(args, output_dir)}")
    if args.write_rank_summary:
        rank_info = {
            "process_index": accelerator.process_index,
            "num_processes": accelerator.num_processes,
            "global_step": global_step,
            "generator_sha256": weights_hash(accelerator.unwrap_model(generator)),
            "discriminator_sha256": weights_hash(accelerator.unwrap_model(discriminator)),
        }
        path = output_dir / f"rank-{accelerator.process_index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rank_info, indent=2))
    accelerator.end_training()
    return summary


def _export_generator(accelerator: Accelerator, generator: nn.Module, ema) -> GeoGAN:
    """The generator to export: the EMA weights when kept, else the trained ones."""
    return ema.module if ema is not None else accelerator.unwrap_model(generator)


if __name__ == "__main__":
    # bad input (arguments, data, checkpoints, paths): one line on stderr and exit code 2
    raise SystemExit(run_command(build_parser(), main))
