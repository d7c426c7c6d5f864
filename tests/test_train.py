"""Acceptance tests of train_accelerate.py on a tiny imagefolder of real faces.

Sources (without a mustache): takeo, lenna, astronaut; exemplars (with one): einstein,
breakingbad; several copies each, cropped around the face to 160 px. Tiny widths, 64 px,
a few steps: the whole file runs in about a minute on two cores.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geogan_hf.landmarks import detect_faces
from geogan_hf.model import GeoGAN, GeoGANDiscriminator
from geogan_hf.samples import load_sample

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # train_accelerate.py is a top-level script, not in the package
import train_accelerate  # noqa: E402

SCRIPT = ROOT / "train_accelerate.py"
CROP = 160
SOURCES = ("takeo", "lenna", "astronaut")
EXEMPLARS = ("einstein", "breakingbad")
TINY = [
    "--attributes", "Mustache", "--resolution", "64", "--train_batch_size", "2",
    "--ngf", "4", "--n_blocks", "1", "--ndf", "4", "--n_scales", "2",
    "--report_to", "none", "--validation_steps", "1000", "--seed", "0",
]  # fmt: skip


def _face_crop(name: str):
    """The sample cropped to a square around its face and resized to CROP px, with landmarks."""
    sample = load_sample(name)
    points = sample.landmarks
    if points is None:
        points = detect_faces(sample.image)[0].landmarks
    centre = (points.min(0) + points.max(0)) / 2
    side = 2.0 * (points.max(0) - points.min(0)).max()
    x0, y0 = centre - side / 2
    image = sample.image.crop((round(x0), round(y0), round(x0 + side), round(y0 + side)))
    scale = CROP / image.width
    image = image.resize((CROP, CROP))
    moved = (points - [round(x0), round(y0)] + 0.5) * scale - 0.5
    return image, moved


def _write_folder(root: Path, copies: int, *, landmarks: bool, bad_rows: bool = False) -> Path:
    root.mkdir(parents=True)
    rows = []
    for name in SOURCES + EXEMPLARS:
        image, points = _face_crop(name)
        for copy in range(copies):
            file_name = f"{name}-{copy}.png"
            image.save(root / file_name)
            row = {"file_name": file_name, "Mustache": int(name in EXEMPLARS)}
            if landmarks:
                row["landmarks"] = np.round(points, 3).tolist()
            rows.append(row)
    if bad_rows:
        (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
        rows.append({"file_name": "corrupt.png", "Mustache": 1})
        image, _ = _face_crop("lenna")
        image.save(root / "unlabelled.png")
        rows.append({"file_name": "unlabelled.png", "Mustache": None})
    with open(root / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return root


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> Path:
    """Clean imagefolder with a landmarks column: 6 sources, 4 exemplars (2 steps per epoch)."""
    return _write_folder(tmp_path_factory.mktemp("data") / "faces", 2, landmarks=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    env.update(ACCELERATE_USE_CPU="true", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def _run(
    args: list[str], launcher: list[str] | None = None, timeout: int = 300, returncode: int = 0
):
    launcher = launcher or [sys.executable]
    result = subprocess.run(
        [*launcher, str(SCRIPT), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert result.returncode == returncode, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _one_line_error(result) -> str:
    """The error line of a run that failed on bad input: the last line, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-5000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr[-3000:]
    return line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


RESUMABLE = [
    "--checkpointing_steps", "1", "--checkpoints_total_limit", "2", "--ema_decay", "0.9",
    "--alpha_warmup_steps", "2", "--lr_decay_every", "1", "--lr_decay_unit", "steps",
]  # fmt: skip


@pytest.fixture(scope="session")
def full_run(faces, tmp_path_factory) -> tuple[Path, str]:
    """``accelerate launch`` of 3 steps (2 per epoch), checkpoints every step, EMA, TensorBoard."""
    out = tmp_path_factory.mktemp("runs") / "full"
    args = ["--dataset_name", str(faces), "--output_dir", str(out), *TINY, *RESUMABLE]
    args = [
        *args,
        "--max_train_steps",
        "3",
        "--validation_steps",
        "3",
        "--report_to",
        "tensorboard",
        "--tracker_project_name",
        "geogan-test",
        "--allow_tf32",
    ]
    launcher = ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    result = _run(args, launcher=launcher)
    return out, result.stderr


@pytest.mark.slow
def test_accelerate_launch_trains_and_exports_loadable_models(full_run):
    out, log = full_run
    generator = GeoGAN.from_pretrained(out)  # strict
    assert generator.config["ngf"] == 4 and generator.config["image_size"] == 64
    assert GeoGANDiscriminator.from_pretrained(out / "discriminator").config["n_scales"] == 2
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 3 and summary["num_processes"] == 1
    assert summary["skipped_rows"] == 0
    assert {"g_adv", "g_landmark", "d_real", "landmark_px"} <= set(summary["final_metrics"])
    # Checkpoints pruned to the limit; every one holds both models and the EMA / schedules.
    assert [p.name for p in train_accelerate.checkpoint_dirs(out)] == [
        "checkpoint-2",
        "checkpoint-3",
    ]
    assert GeoGAN.from_pretrained(out / "checkpoint-3" / "generator").config["ngf"] == 4
    card = (out / "README.md").read_text()
    assert "Trained for 3 steps" in card and "`max_train_steps` | `3`" in card
    assert "EMA of the generator" in card
    assert "`mixed_precision` | `no`" in card  # Accelerate's, set by the launcher
    # Validation grid: one row per pair (4), six 64-px columns with 2-px padding.
    from PIL import Image

    grid = Image.open(out / "validation" / "step-3.png")
    assert grid.size == (6 * 66 + 2, 4 * 66 + 2)
    assert list((out / "logs" / "geogan-test").rglob("events.out.tfevents.*"))
    assert "skipped 0 bad rows" in log and "Data at the end" in log
    with torch.no_grad():
        image = torch.zeros(1, 3, 64, 64)
        assert generator(image, image).image.shape == (1, 3, 64, 64)


@pytest.mark.slow
def test_resume_from_checkpoint_matches_uninterrupted_run(faces, full_run, tmp_path):
    reference, _ = full_run
    out = tmp_path / "resumed"
    args = ["--dataset_name", str(faces), "--output_dir", str(out), *TINY, *RESUMABLE]
    _run([*args, "--max_train_steps", "1"])  # stops after checkpoint-1, mid-epoch
    assert (out / "checkpoint-1").is_dir()
    log = _run([*args, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"]).stderr
    assert f"Resuming from {out / 'checkpoint-1'} at step 1" in log
    assert json.loads((out / "train_summary.json").read_text())["global_step"] == 3
    for sub in (".", "discriminator", "checkpoint-3/generator"):
        expected, got = _tensors(reference / sub), _tensors(out / sub)
        assert expected.keys() == got.keys()
        for name, tensor in expected.items():
            assert torch.equal(tensor, got[name]), f"{sub}: {name} differs after resuming"
    # The training state equals the uninterrupted run's: optimizers (Adam moments and step
    # counts), schedules, EMA. (Not the random generators: DataLoader iterators draw their
    # seeds from them, and the resumed run started one more iterator; training uses none.)
    names = {p.name for p in (reference / "checkpoint-3").glob("*.safetensors")}
    names -= {"rng-0.safetensors"}
    assert {"optimizer_g.safetensors", "scheduler_d.safetensors", "ema.safetensors"} <= names
    assert names | {"rng-0.safetensors"} == {
        p.name for p in (out / "checkpoint-3").glob("*.safetensors")
    }
    for name in sorted(names):
        expected = train_accelerate.load_state_file(reference / "checkpoint-3" / name)
        _assert_same_state(expected, train_accelerate.load_state_file(out / "checkpoint-3" / name))


def _assert_same_state(expected, got, where: str = "") -> None:
    assert type(expected) is type(got), where
    if isinstance(expected, torch.Tensor):
        assert expected.dtype == got.dtype and torch.equal(expected, got), where
    elif isinstance(expected, dict):
        assert expected.keys() == got.keys(), where
        for key in expected:
            _assert_same_state(expected[key], got[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(got), where
        for i, (a, b) in enumerate(zip(expected, got)):
            _assert_same_state(a, b, f"{where}/{i}")
    else:
        assert expected == got, where


class _Trap:
    """Unpickling this writes a file: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (self.path.write_text, ("unpickled",))


@pytest.mark.slow
def test_planted_pickle_is_refused_and_never_run(faces, full_run, tmp_path):
    reference, _ = full_run
    out = tmp_path / "run"
    shutil.copytree(reference / "checkpoint-3", out / "checkpoint-3")
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.bin"))  # none of our own
    marker = tmp_path / "payload-ran"
    # what Accelerate's load_state unpickles (with weights_only=False) for a registered object
    torch.save(_Trap(marker), out / "checkpoint-3" / "custom_checkpoint_0.pkl")
    args = ["--dataset_name", str(faces), "--output_dir", str(out), *TINY, *RESUMABLE]
    result = _run(
        [*args, "--max_train_steps", "4", "--resume_from_checkpoint", "latest"], returncode=2
    )
    line = _one_line_error(result)
    assert "custom_checkpoint_0.pkl" in line and "pickle" in line
    assert not marker.exists()
    assert not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_incomplete_and_stray_checkpoints_are_skipped(faces, full_run, tmp_path):
    reference, _ = full_run
    out = tmp_path / "run"
    shutil.copytree(reference / "checkpoint-2", out / "checkpoint-2")
    # a save killed after the generator (as the older, non-atomic saves could leave it)
    shutil.copytree(reference / "checkpoint-3" / "generator", out / "checkpoint-10" / "generator")
    (out / "checkpoint-old").mkdir()
    (out / "checkpoint-11.partial").mkdir()
    args = ["--dataset_name", str(faces), "--output_dir", str(out), *TINY, *RESUMABLE]
    log = _run([*args, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"]).stderr
    assert f"Resuming from {out / 'checkpoint-2'} at step 2" in log
    assert "Ignoring incomplete checkpoints: checkpoint-10" in log
    assert json.loads((out / "train_summary.json").read_text())["global_step"] == 3
    assert not (out / "checkpoint-11.partial").exists()  # the next save cleared it
    # an explicit path to the incomplete one is refused in one line
    result = _run(
        [*args, "--max_train_steps", "12", "--resume_from_checkpoint", str(out / "checkpoint-10")],
        returncode=2,
    )
    assert "incomplete checkpoint" in _one_line_error(result)


def test_checkpoint_folders_other_names_are_ignored(tmp_path):
    for name in ("checkpoint-5", "checkpoint-10", "checkpoint-old", "checkpoint-7.partial"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-20").write_text("a file, not a folder")
    (tmp_path / "checkpoint-5" / train_accelerate.STATE_NAME).write_text("{}")
    found = train_accelerate.checkpoint_dirs(tmp_path)
    assert [p.name for p in found] == ["checkpoint-5", "checkpoint-10"]
    args = train_accelerate.parse_args(
        ["--dataset_name", "x", "--output_dir", str(tmp_path), "--resume_from_checkpoint", "latest"]
    )
    assert train_accelerate.resolve_checkpoint(args) == tmp_path / "checkpoint-5"


def test_state_files_round_trip_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, betas=(0.5, 0.9))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    warmup = _schedule("cosine", warmup=3)
    _rates(warmup, 4)
    for name, state in {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "warmup_scheduler": warmup.state_dict(),
        "rng": train_accelerate.rng_state(),
        "nested": {"a": (1, 2.5, None, "s", [True, {3: torch.arange(3)}]), 0: float("inf")},
    }.items():
        path = tmp_path / f"{name}.safetensors"
        train_accelerate.save_state_file(path, state)
        _assert_same_state(state, train_accelerate.load_state_file(path), name)
    resumed = _schedule("cosine", warmup=3)
    # as in a checkpoint, the optimizer comes back too: torch's schedules scale its lr
    resumed.optimizer.load_state_dict(warmup.optimizer.state_dict())
    resumed.load_state_dict(
        train_accelerate.load_state_file(tmp_path / "warmup_scheduler.safetensors")
    )
    assert _rates(resumed, 10) == _rates(warmup, 10)
    with pytest.raises(TypeError, match="cannot store a object"):
        train_accelerate.save_state_file(tmp_path / "bad.safetensors", {"x": object()})
    (tmp_path / "pickled.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(train_accelerate.CheckpointError, match="not a readable training state"):
        train_accelerate.load_state_file(tmp_path / "pickled.safetensors")


def test_rng_state_restores_every_generator():
    state = train_accelerate.rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    train_accelerate.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


class _Failing:
    """A training state that cannot be read: the save stops part-way."""

    def state_dict(self):
        raise RuntimeError("disk full")


def test_interrupted_save_leaves_no_checkpoint(tmp_path):
    accelerator = _accelerator(1)
    torch.manual_seed(0)
    models = {"generator": GeoGAN(image_size=64, ngf=4, n_blocks=1)}
    optimizer = torch.optim.Adam(models["generator"].parameters())
    checkpoint = tmp_path / "checkpoint-1"
    with pytest.raises(RuntimeError, match="disk full"):
        train_accelerate.save_checkpoint(
            accelerator, checkpoint, 1, models, {"optimizer": optimizer, "other": _Failing()}
        )
    assert not checkpoint.exists() and train_accelerate.checkpoint_dirs(tmp_path) == []
    assert (tmp_path / "checkpoint-1.partial" / "generator" / "model.safetensors").is_file()

    train_accelerate.save_checkpoint(accelerator, checkpoint, 1, models, {"optimizer": optimizer})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]
    assert train_accelerate.is_complete(checkpoint)
    fresh = {"generator": GeoGAN(image_size=64, ngf=4, n_blocks=1)}
    fresh_optimizer = torch.optim.Adam(fresh["generator"].parameters())
    step = train_accelerate.load_checkpoint(
        accelerator, checkpoint, fresh, {"optimizer": fresh_optimizer}
    )
    assert step == 1
    assert train_accelerate.weights_hash(fresh["generator"]) == train_accelerate.weights_hash(
        models["generator"]
    )
    with pytest.raises(train_accelerate.CheckpointError, match=r"no ema\.safetensors"):
        train_accelerate.load_checkpoint(accelerator, checkpoint, fresh, {"ema": fresh_optimizer})


@pytest.mark.slow
def test_two_process_run_keeps_ranks_identical(faces, tmp_path):
    """Two gloo ranks, prior mode with its flow and mask parts frozen (parameters that
    take no gradient must not trip DDP)."""
    out = tmp_path / "ddp"
    args = ["--dataset_name", str(faces), "--output_dir", str(out), *TINY]
    args += ["--max_train_steps", "1", "--checkpointing_steps", "1", "--write_rank_summary"]
    args += [
        "--geometry_prior",
        "--freeze_generator_parts",
        "flow",
        "mask",
        "--alpha_warmup_steps",
        "0",
    ]
    # On a CPU-only machine "--cpu --num_processes 2" silently starts one process; this
    # starts two gloo ranks (ACCELERATE_USE_CPU is set in _env).
    launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--main_process_port", str(_free_port())]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    _run(args, launcher=launcher)
    # every rank's random generators, as safetensors; nothing pickled
    assert (out / "checkpoint-1" / "rng-1.safetensors").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in train_accelerate.PICKLE_SUFFIXES]
    args[args.index("--max_train_steps") + 1] = "2"
    log = _run([*args, "--resume_from_checkpoint", "latest"], launcher=launcher).stderr
    assert f"Resuming from {out / 'checkpoint-1'} at step 1" in log
    ranks = [json.loads((out / f"rank-{i}.json").read_text()) for i in range(2)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert [r["process_index"] for r in ranks] == [0, 1]
    assert [r["global_step"] for r in ranks] == [2, 2]
    assert ranks[0]["generator_sha256"] == ranks[1]["generator_sha256"]
    assert ranks[0]["discriminator_sha256"] == ranks[1]["discriminator_sha256"]
    model = GeoGAN.from_pretrained(out)
    assert train_accelerate.weights_hash(model) == ranks[0]["generator_sha256"]
    torch.manual_seed(0)  # the script's seed: the frozen parts are the fresh model's
    fresh = GeoGAN(image_size=64, attributes=("Mustache",), ngf=4, n_blocks=1, geometry_prior=True)
    for part, frozen in (("flow", True), ("mask", True), ("refine", False), ("remove", False)):
        trained, initial = getattr(model, f"{part}_net"), getattr(fresh, f"{part}_net")
        same = all(torch.equal(a, b) for a, b in zip(trained.parameters(), initial.parameters()))
        assert same == frozen, part


@pytest.mark.slow
def test_bad_rows_are_skipped_and_reported(tmp_path):
    data = _write_folder(tmp_path / "dirty", 1, landmarks=False, bad_rows=True)
    out = tmp_path / "run"
    log = _run(
        ["--dataset_name", str(data), "--output_dir", str(out), *TINY, "--max_train_steps", "1"]
    )
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["skipped_rows"] == 2
    assert summary["skipped_by_reason"] == {"unreadable_image": 1, "missing_label": 1}
    assert log.stderr.count("skipped 2 bad rows") >= 2  # at the start and at the end
    assert "2 bad rows skipped" in (out / "README.md").read_text()


@pytest.mark.slow
def test_unreadable_images_found_in_dataloader_workers_are_counted(tmp_path):
    data = _write_folder(tmp_path / "dirty", 1, landmarks=True)
    metadata = data / "metadata.jsonl"
    rows = [json.loads(line) for line in metadata.read_text().splitlines()]
    # Its landmarks look fine, so only decoding the image (in the worker) finds it bad; as
    # the third exemplar in a batch of 3 it is drawn in the first step.
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    exemplar = next(r for r in rows if r["Mustache"] == 1)
    rows.append({**exemplar, "file_name": "corrupt.png"})
    metadata.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    args = ["--dataset_name", str(data), "--output_dir", str(out), *TINY]
    _run(
        [
            *args,
            "--train_batch_size",
            "3",
            "--dataloader_num_workers",
            "1",
            "--max_train_steps",
            "1",
        ]
    )
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["skipped_by_reason"] == {"unreadable_image": 1}
    assert summary["skipped_rows"] == 1


BAD_FLAGS = {
    "--gradient_accumulation_steps 0": "expected an integer >= 1, got 0",
    "--checkpointing_steps 0": "expected an integer >= 1, got 0",
    "--max_train_steps -1": "expected an integer >= 1, got -1",
    "--flip_prob 5": "expected a number in [0, 1], got 5",
    "--learning_rate nan": "expected a number >= 0, got nan",
    "--ngf 0": "expected an integer in [1, 128], got 0",
    "--resolution 64.5": "expected an integer in [8, 4096], got '64.5'",
    "--lr_warmup_steps -1": "expected an integer >= 0, got -1",
    "--lr_scheduler exponential": "invalid choice: 'exponential'",
}


@pytest.mark.parametrize("flag", list(BAD_FLAGS))
def test_bad_flags_exit_2_with_one_line(flag, capsys):
    parser = train_accelerate.build_parser()
    with pytest.raises(SystemExit) as info:
        train_accelerate.run_command(parser, pytest.fail, ["--dataset_name", "x", *flag.split()])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: argument {flag.split()[0]}: ")
    assert BAD_FLAGS[flag] in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gradient_accumulation_steps", "0"], "expected an integer >= 1, got 0"),
        (["--attributes", "Beard"], "Beard"),  # not an attribute GeoGAN transfers
        (["--attributes", "Eyeglasses"], "Eyeglasses"),  # not in the data
    ],
)
def test_script_reports_bad_input_in_one_line(faces, tmp_path, flags, message):
    args = ["--dataset_name", str(faces), "--output_dir", str(tmp_path), *TINY, *flags]
    line = _one_line_error(_run([*args, "--max_train_steps", "1"], returncode=2))
    assert message in line
    assert not (tmp_path / "model.safetensors").exists()


def test_schedules_and_arguments():
    args = train_accelerate.parse_args(["--dataset_name", "x", "--lambda_landmark", "100"])
    assert train_accelerate.loss_weights(args).landmark == 100
    assert args.learning_rate == 1e-4 and args.lr_decay_every == 20
    assert args.lr_scheduler == "step" and args.lr_warmup_steps == 0
    assert train_accelerate.refinement_alpha(9, 10, 0.1) == 0.0
    assert train_accelerate.refinement_alpha(10, 10, 0.1) == 0.1


def _schedule(name: str, warmup: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """``--lr_scheduler name`` for base rate 1 over 20 steps, decay by 0.4 every 10."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return train_accelerate.build_lr_scheduler(
        name, optimizer, warmup_steps=warmup, total_steps=20, decay_every=10, decay_factor=0.4
    )


def _rates(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    """The learning rate of each of ``steps`` optimisation steps."""
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def test_step_schedule_is_the_papers_staircase():
    rates = _rates(_schedule("step"), 26)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    assert rates == _rates(torch.optim.lr_scheduler.StepLR(optimizer, 10, 0.4), 26)
    assert [rates[s] for s in (0, 9, 10, 19, 20, 25)] == pytest.approx([1, 1, 0.4, 0.4, 0.16, 0.16])
    assert _rates(_schedule("constant"), 21) == [1.0] * 21


@pytest.mark.parametrize("name", ["constant_with_warmup", "linear", "cosine", "step"])
def test_warmup_ramps_from_zero_then_the_schedule_starts(name):
    rates = _rates(_schedule(name, warmup=5), 21)
    assert rates[:6] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1])
    after = {  # k steps after the warm-up, 15 steps to go
        "constant_with_warmup": lambda k: 1.0,
        "linear": lambda k: 1 - k / 15,
        "cosine": lambda k: (1 + math.cos(math.pi * k / 15)) / 2,
        "step": lambda k: 0.4 ** (k // 10),
    }[name]
    assert rates[5:] == pytest.approx([after(k) for k in range(16)], abs=1e-12)


def test_constant_schedule_with_warmup_exits_2(capsys):
    parser = train_accelerate.build_parser()
    argv = ["--dataset_name", "x", "--lr_scheduler", "constant", "--lr_warmup_steps", "5"]
    assert train_accelerate.run_command(parser, train_accelerate.main, argv) == 2
    assert capsys.readouterr().err == (
        "error: --lr_scheduler constant has no warm-up; use constant_with_warmup\n"
    )


def test_prune_checkpoints_keeps_the_newest(tmp_path):
    for step in (5, 10, 100, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
    removed = train_accelerate.prune_checkpoints(tmp_path, keep=2)  # room for one more
    assert [p.name for p in removed] == ["checkpoint-5", "checkpoint-10", "checkpoint-20"]
    assert [p.name for p in train_accelerate.checkpoint_dirs(tmp_path)] == ["checkpoint-100"]


def _accelerator(accumulation: int, **kwargs):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return Accelerator(cpu=True, gradient_accumulation_steps=accumulation, **kwargs)


def test_validation_grid_goes_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accelerator = _accelerator(1, log_with="tensorboard", project_dir=tmp_path)
    accelerator.init_trackers("run")
    batch = {
        "source": torch.rand(2, 3, 32, 32) * 2 - 1,
        "exemplar": torch.rand(2, 3, 32, 32) * 2 - 1,
        "source_landmarks": torch.rand(2, 68, 2) - 0.5,
        "exemplar_landmarks": torch.rand(2, 68, 2) - 0.5,
        "attribute": torch.zeros(2, dtype=torch.long),
    }
    generator = GeoGAN(image_size=32, ngf=4, n_blocks=1)
    path = train_accelerate.log_validation(accelerator, generator, batch, 0.1, 7, tmp_path)
    accelerator.end_training()
    assert path == tmp_path / "validation" / "step-7.png"
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0}).Reload()
    (image,) = events.Images("validation")
    assert image.step == 7 and (image.width, image.height) == (6 * 34 + 2, 2 * 34 + 2)


def _accumulated_models(accumulation: int, batch: dict[str, torch.Tensor]):
    """Models after one optimisation step on ``batch`` split into ``accumulation`` micro-batches."""
    from geogan_hf.losses import LossWeights

    accelerator = _accelerator(accumulation)
    torch.manual_seed(0)
    generator = GeoGAN(image_size=64, ngf=4, n_blocks=1)
    discriminator = GeoGANDiscriminator(ndf=4, n_scales=2)
    initial = train_accelerate.weights_hash(generator)
    # SGD: the update is proportional to the gradient, so a lost micro-batch shows.
    opt_g = torch.optim.SGD(generator.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(discriminator.parameters(), lr=0.1)
    generator, discriminator, opt_g, opt_d = accelerator.prepare(
        generator, discriminator, opt_g, opt_d
    )
    size = batch["source"].shape[0] // accumulation
    for i in range(accumulation):
        micro = {k: v[i * size : (i + 1) * size] for k, v in batch.items()}
        with accelerator.accumulate(generator, discriminator):
            train_accelerate.training_step(
                accelerator, micro, generator, discriminator, opt_g, opt_d,
                alpha=0.1, weights=LossWeights(),
            )  # fmt: skip
        stepped = train_accelerate.weights_hash(generator) != initial
        assert stepped == (i == accumulation - 1), f"micro-batch {i}: stepped={stepped}"
    return generator, discriminator


@pytest.fixture
def float64_default():
    """Float64 everywhere, so that float rounding cannot hide or fake a lost micro-batch."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.slow
def test_gradient_accumulation_equals_the_full_batch(float64_default):
    torch.manual_seed(3)
    source_lm = torch.from_numpy(_face_crop("takeo")[1] / CROP * 2 - 1).double()
    exemplar_lm = torch.from_numpy(_face_crop("einstein")[1] / CROP * 2 - 1).double()
    batch = {
        "source": torch.rand(2, 3, 64, 64) * 2 - 1,
        "exemplar": torch.rand(2, 3, 64, 64) * 2 - 1,
        "source_landmarks": source_lm.expand(2, -1, -1),
        "exemplar_landmarks": exemplar_lm.expand(2, -1, -1),
        "attribute": torch.zeros(2, dtype=torch.long),
    }
    torch.manual_seed(0)
    initial = [GeoGAN(image_size=64, ngf=4, n_blocks=1), GeoGANDiscriminator(ndf=4, n_scales=2)]
    full = _accumulated_models(1, batch)
    accumulated = _accumulated_models(2, batch)
    for start, a, b in zip(initial, full, accumulated):
        updates = {
            n: p.detach() - p0.detach()
            for (n, p0), p in zip(start.named_parameters(), a.parameters())
        }
        largest = max(u.abs().max() for u in updates.values())
        for (name, update), q, p0 in zip(updates.items(), b.parameters(), start.parameters()):
            # The same update up to float64 rounding (biases in front of instance norm have a
            # zero true gradient: pure rounding noise, hence the absolute term); a lost or
            # doubled micro-batch changes the weights' updates by tens of percent.
            other = q.detach() - p0.detach()
            tolerance = 1e-6 * update.abs().max() + 1e-9 * largest
            assert (update - other).abs().max() <= tolerance, name


@pytest.mark.slow
def test_push_to_hub_uploads_models_and_logs_not_checkpoints(full_run, monkeypatch):
    """Everything up to the upload; the Hub calls are mocked (they need the internet)."""
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    out, _ = full_run
    calls = {}

    class _Repo:
        repo_id = "user/geogan-test"

    monkeypatch.setattr(
        huggingface_hub, "create_repo", lambda *a, **k: calls.update(create=(a, k)) or _Repo()
    )
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **k: calls.update(upload=k))
    args = train_accelerate.parse_args(
        ["--dataset_name", "x", "--hub_model_id", "user/geogan-test", "--hub_private_repo"]
    )
    assert train_accelerate.create_hub_repo(args, out) == "user/geogan-test"
    assert train_accelerate.push_to_hub(args, out) == "user/geogan-test"
    assert calls["create"][0] == ("user/geogan-test",) and calls["create"][1]["private"] is True
    upload = calls["upload"]
    files = [
        p.relative_to(out).as_posix() for p in Path(upload["folder_path"]).rglob("*") if p.is_file()
    ]
    uploaded = set(filter_repo_objects(files, ignore_patterns=upload["ignore_patterns"]))
    assert {"config.json", "model.safetensors", "README.md"} <= uploaded
    assert {"discriminator/config.json", "discriminator/model.safetensors"} <= uploaded
    assert [f for f in uploaded if f.startswith("logs/geogan-test/events.out.tfevents.")]
    assert not [f for f in uploaded if f.startswith("checkpoint-")]


def test_push_to_hub_with_a_bad_token_fails_before_training(monkeypatch, tmp_path, capsys):
    """The Hub call is mocked (it needs the internet): it refuses the token as the Hub would."""
    import importlib

    import huggingface_hub
    from huggingface_hub import errors

    # the HTTP library huggingface_hub's errors are built on (httpx, or its fork httpx2)
    http = importlib.import_module(errors.Response.__module__.split(".")[0])

    def refuse(*args, **kwargs):
        request = http.Request("POST", "https://huggingface.co/api/repos/create")
        raise errors.HfHubHTTPError(
            "401 Client Error: Unauthorized (invalid token)",
            response=http.Response(401, request=request),
        )

    monkeypatch.setattr(huggingface_hub, "create_repo", refuse)
    monkeypatch.setattr(train_accelerate, "load_face_dataset", pytest.fail)  # never reached
    _accelerator(1)  # fresh Accelerate state for main's Accelerator
    argv = ["--dataset_name", "x", "--output_dir", str(tmp_path), "--report_to", "none"]
    argv += ["--push_to_hub", "--hub_model_id", "user/geogan-test", "--hub_token", "bad"]
    parser = train_accelerate.build_parser()
    assert train_accelerate.run_command(parser, train_accelerate.main, argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: 401 Client Error: Unauthorized (invalid token)"
    )


def test_first_rows_of_map_and_streaming_datasets():
    from datasets import Dataset

    rows = Dataset.from_dict({"i": list(range(10))})
    assert train_accelerate.first_rows(rows, 3)["i"] == [0, 1, 2]
    assert len(train_accelerate.first_rows(rows, 30)) == 10
    streamed = train_accelerate.first_rows(rows.to_iterable_dataset(), 4)
    assert [r["i"] for r in streamed] == [0, 1, 2, 3]
