"""Console entry points: geogan-transfer (also python -m geogan_hf) and the wired module CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geogan_hf import pipeline
from geogan_hf.cli import eval_main, prepare_main, synth_main, transfer_main
from geogan_hf.samples import load_sample

REPO = Path(__file__).resolve().parent.parent
ABSENT_GPU = "cuda:99" if torch.cuda.is_available() else "cuda"


def exit_code(main, argv: list[str]) -> int:
    """What the console script exits with: the return value, or a SystemExit's code."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Small real photos (and bad files) on disk, as a user would pass them."""
    folder = tmp_path_factory.mktemp("photos")
    astronaut = load_sample("astronaut").image.crop((120, 20, 320, 220))
    einstein = load_sample("einstein").image.crop((285, 210, 525, 450)).resize((240, 240))
    gradient = np.linspace(0, 255, 160 * 120 * 3).reshape(120, 160, 3).astype(np.uint8)
    files = {
        "source": astronaut,
        "exemplar": einstein,
        "faceless": Image.fromarray(gradient),
        "tiny": astronaut.resize((60, 60), Image.Resampling.BICUBIC),
    }
    paths = {}
    for name, image in files.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    paths["text"] = folder / "notes.png"
    paths["text"].write_text("not an image")
    paths["empty"] = folder / "empty.jpg"
    paths["empty"].write_bytes(b"")
    paths["empty_dir"] = folder / "empty_model"
    paths["empty_dir"].mkdir()
    return paths


def test_transfer_writes_result_and_intermediates(photos, tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "result.png"
    steps = tmp_path / "steps"
    args = [str(photos["source"]), str(photos["exemplar"]), "-o", str(out), "--strength", "0.8"]
    args += ["--hair-colour", "own"]
    assert transfer_main([*args, "--save-intermediates", str(steps)]) == 0
    stdout = capsys.readouterr().out
    assert f"wrote {out}" in stdout and "timings:" in stdout and "total" in stdout
    result = Image.open(out)
    assert result.size == (200, 200)
    assert not np.array_equal(
        np.asarray(result.convert("RGB")), np.asarray(Image.open(photos["source"]))
    )
    names = {p.name for p in steps.iterdir()}
    assert {"source_crop.png", "warped.png", "mask.png", "flow.png", "landmarks.json"} <= names


BAD_INPUTS = {
    "no face in source": (["faceless", "exemplar"], [], "no face found in the source image"),
    "no face in exemplar": (["source", "faceless"], [], "no face found in the exemplar image"),
    "face index": (["source", "exemplar"], ["--source-face", "1"], "source image has 1 face"),
    "face too small": (["tiny", "exemplar"], [], "minimum is 64 px"),
    "unknown attribute": (["source", "exemplar"], ["-a", "Beard"], "supported: Mustache, Goatee"),
    "not an image": (["text", "exemplar"], [], "not a readable image"),
    "empty file": (["source", "empty"], [], "empty file"),
    "missing file": (["missing", "exemplar"], [], "does not exist"),
    "too large": (["source", "exemplar"], ["--max-pixels", "1000"], "above the limit of 1,000"),
    "missing model dir": (["source", "exemplar"], ["--model", "./no/such/dir"], "does not exist"),
    "model dir without model": (["source", "exemplar"], ["--model", "{empty_dir}"], "config.json"),
    "strength": (
        ["source", "exemplar"],
        ["--strength", "1.5"],
        "--strength: expected a number in [0, 1], got 1.5",
    ),
    "hair colour": (["source", "exemplar"], ["--hair-colour", "blond"], "invalid choice: 'blond'"),
    "unknown device": (["source", "exemplar"], ["--device", "quantum"], "unknown device 'quantum'"),
    "absent device": (["source", "exemplar"], ["--device", ABSENT_GPU], "is not available"),
    "output format": (["source", "exemplar"], ["-o", "{tmp}/out.xyz"], "unknown image format"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(photos, tmp_path, capsys, case):
    inputs, extra, message = BAD_INPUTS[case]
    paths = [str(photos.get(name, tmp_path / f"{name}.png")) for name in inputs]
    extra = [e.format(empty_dir=photos["empty_dir"], tmp=tmp_path) for e in extra]
    output = [] if "-o" in extra else ["-o", str(tmp_path / "out.png")]
    assert exit_code(transfer_main, [*paths, *output, *extra]) == 2
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "out.png").exists()


def test_only_the_librarys_warnings_become_notes(photos, tmp_path, capsys, monkeypatch):
    """A warning that is not the library's (the collector finding an unclosed event loop
    that something else in the process left, mid-run) keeps its own display: the user
    still sees one line, the error."""
    load = pipeline.load_image

    def collect_and_load(*args, **kwargs):
        warnings.warn("unclosed event loop", ResourceWarning, stacklevel=1)
        return load(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_image", collect_and_load)
    paths = [str(photos["source"]), str(tmp_path / "empty.png")]
    (tmp_path / "empty.png").write_bytes(b"")
    assert exit_code(transfer_main, [*paths, "-o", str(tmp_path / "out.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_python_m_geogan_hf_reports_bad_input_without_traceback(photos, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "geogan_hf", str(photos["faceless"]), str(photos["exemplar"])]
    proc = subprocess.run(
        [*command, "-o", str(tmp_path / "out.png")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: no face found in the source image"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("main", "prog"),
    [(prepare_main, "geogan-prepare"), (synth_main, "geogan-synth"), (eval_main, "geogan-eval")],
)
def test_module_commands_are_wired(main, prog, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert f"usage: {prog}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main([])  # a required argument is missing
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "required" in lines[0]


SMALL_SYNTH = ["--size", "48", "--num-train", "2", "--num-eval", "1", "--no-progress"]


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (synth_main, ["--output", "/proc/geogan/out", *SMALL_SYNTH], "/proc/geogan"),
        (prepare_main, ["--dataset_name", "{tmp}/missing", "--output_dir", "{tmp}/o"], "missing"),
        (eval_main, ["--model", "{tmp}/broken", "--pairs", "/dev/null"], "not a JSON object"),
        (eval_main, ["--model", "prior", "--pairs", "/dev/null"], "no photo pairs in /dev/null"),
        (eval_main, ["--model", "prior", "--pairs", "x", "--batch-size", "0"], "integer >= 1"),
        (synth_main, ["--output", "{tmp}/o", "--size", "-1"], "--size: expected an integer"),
    ],
    ids=[
        "unwritable output",
        "missing dataset",
        "broken model",
        "empty pairs",
        "batch size",
        "size",
    ],
)
def test_module_commands_report_bad_input_in_one_line(main, argv, message, tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("null")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert exit_code(main, argv) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0]
