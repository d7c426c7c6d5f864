"""Hugging Face Hub integration: save/load round trips, strict loading, model card, push."""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import shutil
import sys
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from test_data import FLWRLABS_CARD, FLWRLABS_CONFIG, celeba_repo, face_rows

from geogan_hf import GeoGAN, GeoGANDiscriminator, ModelLoadError
from geogan_hf.data import PairedAttributeDataset
from geogan_hf.model import CARD_MARKER

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # train_accelerate.py is a top-level script, not in the package
import train_accelerate  # noqa: E402

TINY = {"ngf": 4, "n_blocks": 1, "image_size": 64}


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (also in the zero-initialised heads), so a round trip is tested."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[GeoGAN, Path]:
    model = perturbed(GeoGAN(**TINY, attributes=("Mustache", "Goatee")))
    path = tmp_path_factory.mktemp("ckpt") / "geogan"
    model.save_pretrained(path)
    return model, path


def copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_save_writes_config_weights_and_card(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((path / "config.json").read_text())
    assert config == model.config
    assert set(config) == set(inspect.signature(GeoGAN).parameters)
    assert config["attributes"] == ["Mustache", "Goatee"]
    card = (path / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "geogan_hf"
    assert meta["pipeline_tag"] == "image-to-image"
    assert meta["license"] == "apache-2.0"
    assert "face-editing" in meta["tags"]
    for text in ("Mustache, Goatee", "GeoGAN.from_pretrained", "TransferPipeline", '"ngf": 4'):
        assert text in card
    for section in (
        "## Training data",
        "## Limitations",
        "## Bias, risks and misuse",
        "## Citation",
    ):
        assert section in card
    assert "{{" not in card and "{%" not in card


def test_generator_round_trip_is_bit_identical(saved):
    model, path = saved
    loaded = GeoGAN.from_pretrained(path)
    assert not loaded.training
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = model(a, b, attribute=["Mustache", "Goatee"])
        got = loaded(a, b, attribute=["Mustache", "Goatee"])
        assert torch.equal(model.remove(b, got.mask), loaded.remove(b, got.mask))
    for name in ("image", "blended", "warped", "mask", "flow", "residual"):
        assert torch.equal(getattr(expected, name), getattr(got, name)), name


def test_prior_model_round_trip_is_bit_identical(tmp_path):
    model = perturbed(GeoGAN(**TINY, geometry_prior=True))
    model.save_pretrained(tmp_path)
    loaded = GeoGAN.from_pretrained(tmp_path)
    assert loaded.geometry_prior
    a, b = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    # a plausible face: landmarks of a 68-point mean shape spread over the image
    lm = torch.rand(1, 68, 2) * 1.2 - 0.6
    with torch.no_grad():
        assert torch.equal(model(a, b, lm, lm).image, loaded(a, b, lm, lm).image)


def test_discriminator_round_trip_is_bit_identical(tmp_path):
    disc = perturbed(GeoGANDiscriminator(attributes=("Eyeglasses",), ndf=8, n_scales=2))
    disc.save_pretrained(tmp_path)
    loaded = GeoGANDiscriminator.from_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "attributes": ["Eyeglasses"],
        "ndf": 8,
        "n_scales": 2,
        "norm": "instance",
    }
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        for (p1, c1), (p2, c2) in zip(disc(x), loaded(x), strict=True):
            assert torch.equal(p1, p2) and torch.equal(c1, c2)
    assert "GeoGANDiscriminator" in (tmp_path / "README.md").read_text()


def test_config_weights_mismatch_names_the_tensors(saved, tmp_path):
    _, path = saved
    ckpt = copy_checkpoint(path, tmp_path / "wider")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "ngf": 8}))
    with pytest.raises(ModelLoadError, match=r"mis-shaped tensors: .*flow_net"):
        GeoGAN.from_pretrained(ckpt)

    ckpt = copy_checkpoint(path, tmp_path / "edited")
    state = load_file(ckpt / "model.safetensors")
    state.pop("mask_net.head.1.weight")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, ckpt / "model.safetensors")
    with pytest.raises(ModelLoadError) as err:
        GeoGAN.from_pretrained(ckpt)
    assert "missing tensors: mask_net.head.1.weight" in str(err.value)
    assert "unexpected tensors: extra.weight" in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_weights_raise_model_load_error(saved, tmp_path, damage):
    _, path = saved
    ckpt = copy_checkpoint(path, tmp_path / damage)
    data = (ckpt / "model.safetensors").read_bytes()
    broken = {"truncated": data[: len(data) // 2], "garbage": b"\x00\xff" * 500, "empty": b""}
    (ckpt / "model.safetensors").write_bytes(broken[damage])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        GeoGAN.from_pretrained(ckpt)


def test_bad_config_or_missing_files_raise_model_load_error(saved, tmp_path):
    _, path = saved
    ckpt = copy_checkpoint(path, tmp_path / "unknown")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "n_heads": 4}))
    with pytest.raises(ModelLoadError, match=r"unknown keys \['n_heads'\]"):
        GeoGAN.from_pretrained(ckpt)

    (ckpt / "config.json").write_text(json.dumps({**config, "norm": "layer"}))
    with pytest.raises(ModelLoadError, match="invalid config"):
        GeoGAN.from_pretrained(ckpt)

    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        GeoGAN.from_pretrained(ckpt)

    (ckpt / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        GeoGAN.from_pretrained(ckpt)

    ckpt = copy_checkpoint(path, tmp_path / "no_weights")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"no model\.safetensors"):
        GeoGAN.from_pretrained(ckpt)

    with pytest.raises(ModelLoadError):
        GeoGAN.from_pretrained(tmp_path / "does" / "not" / "exist")


BAD_CONFIGS = {
    # each fails before any network is built (none of them allocates on today's code either)
    "list": ([4, 1], "not a JSON object"),
    "null": (None, "not a JSON object"),
    "negative width": ({"ngf": -8}, r"ngf must be an integer in \[1, 128\], got -8"),
    "too many blocks": ({"n_blocks": 10}, r"n_blocks must be an integer in \[0, 9\]"),
    "float blocks": ({"n_blocks": 2.0}, "n_blocks must be an integer"),
    "bool width": ({"ngf": True}, "ngf must be an integer"),
    "too deep": ({"n_downsample": 40}, r"n_downsample must be an integer in \[1, 6\]"),
    "too wide": (
        {"ngf": 128, "n_downsample": 6, "image_size": 100},
        r"ngf \* 2\*\*n_downsample must be at most 1024, got 8192",
    ),
    "huge image": ({"image_size": 2**40}, r"image_size must be an integer in \[8, 4096\]"),
    "string bool": ({"geometry_prior": "false"}, "geometry_prior must be true or false"),
    "nan alpha": ({"alpha": float("nan")}, r"alpha must be a number in \[0.0, 1.0\]"),
    "string alpha": ({"alpha": "0.1"}, "alpha must be a number"),
    "attributes": ({"attributes": "Mustache"}, "attributes must be a list"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_config_types_and_ranges_are_checked(saved, tmp_path, case):
    _, path = saved
    ckpt = copy_checkpoint(path, tmp_path / "ckpt")
    change, message = BAD_CONFIGS[case]
    config = json.loads((ckpt / "config.json").read_text())
    config = {**config, **change} if isinstance(change, dict) else change
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=message):
        GeoGAN.from_pretrained(ckpt)


def test_discriminator_config_ranges_are_checked(tmp_path):
    GeoGANDiscriminator(ndf=4, n_scales=1).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_scales": 0}))
    with pytest.raises(ModelLoadError, match=r"n_scales must be an integer in \[1, 5\]"):
        GeoGANDiscriminator.from_pretrained(tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(saved, tmp_path, value):
    _, path = saved
    ckpt = copy_checkpoint(path, tmp_path / "ckpt")
    tensors = load_file(str(ckpt / "model.safetensors"))
    name = sorted(tensors)[3]
    tensors[name] = torch.full_like(tensors[name], value)
    save_file(tensors, str(ckpt / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=f"non-finite values .* in {name}"):
        GeoGAN.from_pretrained(ckpt)


class _Trap:
    """Unpickling this writes a file: proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("unpickled",))


def test_pickle_weights_are_never_loaded(saved, tmp_path):
    _, path = saved
    ckpt = copy_checkpoint(path, tmp_path / "pickled")
    (ckpt / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    (ckpt / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(str(marker))))
    with pytest.raises(ModelLoadError, match=r"no model\.safetensors"):
        GeoGAN.from_pretrained(ckpt)
    assert not marker.exists()


def test_offline_hub_id_raises_model_load_error():
    # tests run with HF_HUB_OFFLINE=1 (conftest): fetching a repo id must fail cleanly
    with pytest.raises(ModelLoadError, match="user/not-cached-geogan"):
        GeoGAN.from_pretrained("user/not-cached-geogan")


def test_model_card_training_info(tmp_path):
    model = GeoGAN(**TINY)
    card_info = {
        "repo_id": "someone/geogan-mustache",
        "datasets": ["someone/celeba-landmarks"],
        "dataset": "CelebA train partition, 12,000 pairs",
        "training": {"lr": 1e-4, "batch_size": 24},
        "steps": 5000,
        "epochs": 10,
        "metrics": {"landmark error (px)": 1.23},
    }
    model.save_pretrained(tmp_path, model_card_kwargs=card_info)
    card = (tmp_path / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["datasets"] == ["someone/celeba-landmarks"]
    for text in (
        'GeoGAN.from_pretrained("someone/geogan-mustache")',
        "CelebA train partition, 12,000 pairs",
        "| `batch_size` | `24` |",
        "Trained for 5000 steps (10 epochs)",
        "| landmark error (px) | 1.23 |",
    ):
        assert text in card

    # a card written by geogan_hf is regenerated on the next save; a hand-written one is kept
    model.save_pretrained(tmp_path)
    assert "Not recorded" in (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").write_text("# my own card\n")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# my own card\n"
    assert CARD_MARKER not in (tmp_path / "README.md").read_text()


def test_packaged_card_template_matches_the_repository_card():
    packaged = ROOT / "geogan_hf" / "model_card_template.md"
    assert packaged.read_text() == (ROOT / "model_card.md").read_text()


def fake_hub(monkeypatch, calls: list, uploaded: Path, created_id: str) -> None:
    """Replaces the two Hub HTTP calls (they need the internet), as ``HfApi`` methods and as
    the ``huggingface_hub`` functions, with recorders: creating a repo returns ``created_id``;
    uploading copies the folder (minus ``ignore_patterns``) to ``uploaded``."""
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    def create_repo(repo_id, **kwargs):
        calls.append(("create", repo_id))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{created_id}")

    def upload_folder(*, repo_id, folder_path, ignore_patterns=None, **kwargs):
        calls.append(("upload", repo_id))
        files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*")]
        for name in filter_repo_objects(files, ignore_patterns=ignore_patterns):
            if (Path(folder_path) / name).is_file():
                (uploaded / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(folder_path) / name, uploaded / name)
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(huggingface_hub, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    monkeypatch.setattr(
        huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: create_repo(*a, **k)
    )
    monkeypatch.setattr(
        huggingface_hub.HfApi, "upload_folder", lambda self, **k: upload_folder(**k)
    )


def test_push_to_hub_creates_the_repo_first_and_names_it_in_the_card(monkeypatch, tmp_path):
    """Everything up to the upload is real; the Hub HTTP calls are mocked (see fake_hub)."""
    calls: list = []
    fake_hub(monkeypatch, calls, tmp_path / "uploaded", "someone/geogan-test")
    model = perturbed(GeoGAN(**TINY))
    url = model.push_to_hub("geogan-test", model_card_kwargs={"steps": 7})
    assert url.endswith("/commit/0")
    assert calls[0] == ("create", "geogan-test") and calls[-1] == ("upload", "someone/geogan-test")
    uploaded = tmp_path / "uploaded"
    assert sorted(p.name for p in uploaded.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    card = (uploaded / "README.md").read_text()
    assert "Trained for 7 steps" in card
    assert 'GeoGAN.from_pretrained("someone/geogan-test")' in card and "<user>" not in card
    loaded = GeoGAN.from_pretrained(uploaded)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x, x).image, loaded(x, x).image)


def hub_cache(cache_dir: Path, repo_id: str, folder: Path, repo_type: str = "model") -> Path:
    """``folder`` as the cached snapshot of a Hub repo (huggingface_hub's cache layout):
    offline, hf_hub_download and snapshot_download read it as they read a real download."""
    repo = cache_dir / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return cache_dir


@pytest.fixture
def training_output(tmp_path) -> tuple[Path, GeoGAN, GeoGANDiscriminator]:
    """The training script's output layout: the generator on top, ``discriminator/`` below."""
    generator = perturbed(GeoGAN(**TINY))
    discriminator = perturbed(GeoGANDiscriminator(ndf=8, n_scales=2))
    out = tmp_path / "geogan-mustache"
    generator.save_pretrained(out)
    discriminator.save_pretrained(
        out / "discriminator", model_card_kwargs={"subfolder": "discriminator"}
    )
    return out, generator, discriminator


def assert_same_discriminator(a: GeoGANDiscriminator, b: GeoGANDiscriminator) -> None:
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        for (p1, c1), (p2, c2) in zip(a(x), b(x), strict=True):
            assert torch.equal(p1, p2) and torch.equal(c1, c2)


def test_discriminator_loads_from_its_subfolder_of_a_local_folder(training_output):
    out, _, discriminator = training_output
    # The repo root holds the generator's config: the discriminator is not there.
    with pytest.raises(ModelLoadError, match="unknown keys"):
        GeoGANDiscriminator.from_pretrained(out)
    assert_same_discriminator(
        discriminator, GeoGANDiscriminator.from_pretrained(out, subfolder="discriminator")
    )
    with pytest.raises(ModelLoadError, match=r"geogan-mustache: no subfolder 'critic'"):
        GeoGANDiscriminator.from_pretrained(out, subfolder="critic")
    card = (out / "discriminator" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert "pipeline_tag" not in meta and "image-to-image" not in meta["tags"]
    assert (
        'GeoGANDiscriminator.from_pretrained("<user>/<this-repo>", subfolder="discriminator")'
        in card
    )
    assert "# GeoGAN discriminator" in card and "It edits no images" in card


def test_discriminator_loads_from_its_subfolder_of_a_hub_repo(training_output, tmp_path):
    """The Hub download path, served offline (HF_HUB_OFFLINE=1) from huggingface_hub's cache."""
    out, generator, discriminator = training_output
    cache = hub_cache(tmp_path / "hub-cache", "someone/geogan-mustache", out)
    loaded = GeoGANDiscriminator.from_pretrained(
        "someone/geogan-mustache", subfolder="discriminator", cache_dir=cache
    )
    assert_same_discriminator(discriminator, loaded)
    top = GeoGAN.from_pretrained("someone/geogan-mustache", cache_dir=cache)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generator(x, x).image, top(x, x).image)
    with pytest.raises(ModelLoadError, match="someone/not-cached"):
        GeoGANDiscriminator.from_pretrained(
            "someone/not-cached", subfolder="discriminator", cache_dir=cache
        )


def tiny_training_args(dataset: Path, out: Path, *extra: str) -> argparse.Namespace:
    return train_accelerate.parse_args(
        [
            "--dataset_name", str(dataset), "--output_dir", str(out),
            "--attributes", "Mustache", "--resolution", "64", "--train_batch_size", "2",
            "--ngf", "4", "--n_blocks", "1", "--ndf", "4", "--n_scales", "2",
            "--report_to", "none", "--seed", "0", *extra,
        ]
    )  # fmt: skip


@pytest.mark.slow
def test_training_on_a_celeba_repo_pushes_cards_with_the_datas_terms(monkeypatch, tmp_path):
    """train_accelerate.main on flwrlabs/celeba's layout, then --push_to_hub; the Hub HTTP
    calls are mocked (fake_hub), everything before the upload is real."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    calls: list = []
    uploaded = tmp_path / "uploaded"
    fake_hub(monkeypatch, calls, uploaded, "someone/geogan-mustache")
    repo = celeba_repo(tmp_path / "celeba", "flwrlabs", face_rows())
    args = tiny_training_args(
        repo, tmp_path / "out", "--dataset_config_name", FLWRLABS_CONFIG,
        "--cache_dir", str(tmp_path / "cache"), "--max_train_steps", "1",
        "--validation_steps", "1", "--push_to_hub", "--hub_model_id", "geogan-mustache",
    )  # fmt: skip
    train_accelerate.main(args)
    # created first (under the given name), uploaded last under the id the Hub returned
    assert calls[0] == ("create", "geogan-mustache")
    assert calls[-1] == ("upload", "someone/geogan-mustache")

    card = (uploaded / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "other"
    assert meta["license_name"] == "celeba-dataset-release-agreement"
    assert "non-commercial research" in card
    assert f"config `{FLWRLABS_CONFIG}`" in card
    assert 'GeoGAN.from_pretrained("someone/geogan-mustache")' in card
    assert "![validation grid](validation/step-1.png)" in card
    assert (uploaded / "validation" / "step-1.png").is_file()
    assert "Training losses at the last step" in card

    critic_card = (uploaded / "discriminator" / "README.md").read_text()
    assert 'from_pretrained("someone/geogan-mustache", subfolder="discriminator")' in critic_card
    assert yaml.safe_load(critic_card.split("---")[1])["license"] == "other"
    assert "validation grid" not in critic_card
    loaded = GeoGANDiscriminator.from_pretrained(uploaded, subfolder="discriminator")
    assert loaded.config["n_scales"] == 2


def test_card_names_a_hub_dataset_and_its_declared_terms(monkeypatch, tmp_path):
    """A run on the Hub id flwrlabs/celeba: its card (the real front matter, served offline
    from huggingface_hub's cache) gives the licence; the id goes into the card metadata."""
    import huggingface_hub.constants

    card_folder = tmp_path / "card"
    card_folder.mkdir()
    (card_folder / "README.md").write_text(FLWRLABS_CARD)
    cache = hub_cache(tmp_path / "hub-cache", "flwrlabs/celeba", card_folder, "dataset")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    rows = face_rows(mirrored=False)
    dataset = datasets.load_dataset(
        str(celeba_repo(tmp_path / "celeba", "flwrlabs", rows)), FLWRLABS_CONFIG, split="train",
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    paired = PairedAttributeDataset(dataset, ["Mustache"], 64, show_progress=False)
    args = tiny_training_args(
        Path("flwrlabs/celeba"), tmp_path / "out", "--dataset_config_name", FLWRLABS_CONFIG
    )
    card_kwargs = train_accelerate.model_card_kwargs(args, paired, 10, 1, {"g_total": 1.0})
    GeoGAN(**TINY).save_pretrained(tmp_path / "model", model_card_kwargs=card_kwargs)
    card = (tmp_path / "model" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["datasets"] == ["flwrlabs/celeba"]
    assert meta["license"] == "other"
    assert meta["license_name"] == "celeba-dataset-release-agreement"
    assert (
        meta["license_link"] == "https://huggingface.co/datasets/flwrlabs/celeba/blob/main/LICENSE"
    )
    assert "These weights were trained on flwrlabs/celeba" in card
