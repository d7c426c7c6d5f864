"""Hugging Face Hub integration: save/load round trips, strict loading, model card, push."""

from __future__ import annotations

import inspect
import json
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from geogan_hf import GeoGAN, GeoGANDiscriminator, ModelLoadError
from geogan_hf.model import CARD_MARKER

TINY = {"ngf": 4, "n_blocks": 1, "image_size": 64}
ROOT = Path(__file__).resolve().parent.parent


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


def test_push_to_hub_uploads_a_loadable_checkpoint(monkeypatch, tmp_path):
    """The upload itself needs the network: HfApi is replaced, everything before it is real."""
    import huggingface_hub.hub_mixin as hub_mixin

    uploaded: dict[str, Path] = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploaded["dir"] = copy_checkpoint(Path(folder_path), tmp_path / "uploaded")
            return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(hub_mixin, "HfApi", FakeApi)
    model = perturbed(GeoGAN(**TINY))
    url = model.push_to_hub("someone/geogan-test", model_card_kwargs={"steps": 7})
    assert url.endswith("/commit/0")
    files = sorted(p.name for p in uploaded["dir"].iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    assert "Trained for 7 steps" in (uploaded["dir"] / "README.md").read_text()
    loaded = GeoGAN.from_pretrained(uploaded["dir"])
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x, x).image, loaded(x, x).image)
