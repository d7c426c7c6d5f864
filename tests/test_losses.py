"""Tests of geogan_hf.losses: each term on inputs with known answers, and gradient flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geogan_hf import losses
from geogan_hf.geometry import identity_flow, sample_flow_at, tps_flow, warp_with_flow
from geogan_hf.prior import RIGID_POINTS, landmark_weights
from geogan_hf.samples import load_sample


def _canonical(points: np.ndarray) -> torch.Tensor:
    """Real landmarks moved into a normalized 'aligned' frame: centred, extent ~1.2 units."""
    centred = points - points.mean(axis=0)
    return torch.from_numpy(centred / np.abs(centred).max() * 0.6).float()


@pytest.fixture(scope="module")
def face_landmarks() -> tuple[torch.Tensor, torch.Tensor]:
    """(source, exemplar) normalized landmarks (1, 68, 2): takeo and einstein ground truth."""
    source = _canonical(load_sample("takeo").landmarks)
    exemplar = _canonical(load_sample("einstein").landmarks)
    return source[None], exemplar[None]


def _d_out(patch_value: float, logits: list[list[float]], scales: int = 3):
    logit = torch.tensor(logits)
    n = logit.shape[0]
    return [(torch.full((n, 1, 4, 4), patch_value), logit.clone()) for _ in range(scales)]


def test_lsgan_terms_known_values():
    assert losses.lsgan_generator_loss(_d_out(1.0, [[0.0]])).item() == 0.0
    assert losses.lsgan_generator_loss(_d_out(0.0, [[0.0]])).item() == pytest.approx(3.0)
    real, fake = _d_out(1.0, [[0.0]]), _d_out(0.0, [[0.0]])
    assert losses.lsgan_discriminator_loss(real, fake).item() == 0.0
    half = _d_out(0.5, [[0.0]], scales=2)
    # (0.5 - 1)^2 + (0.5 - 0)^2 per scale, two scales.
    assert losses.lsgan_discriminator_loss(half, half).item() == pytest.approx(1.0)


def test_classification_uses_each_samples_attribute_column():
    # Sample 0 asks for column 1, sample 1 for column 0; the other columns are huge and
    # must not matter.
    out = _d_out(0.0, [[100.0, 0.0], [0.0, -100.0]], scales=1)
    attribute = torch.tensor([1, 0])
    assert losses.classification_loss(out, attribute, 1.0).item() == pytest.approx(math.log(2))
    confident = _d_out(0.0, [[0.0, 20.0], [20.0, 0.0]], scales=2)
    assert losses.classification_loss(confident, attribute, 1.0).item() < 1e-6
    assert losses.classification_loss(confident, attribute, 0.0).item() == pytest.approx(40.0)


def test_cycle_and_mask_terms():
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    assert losses.cycle_loss(image, image).item() == 0.0
    assert losses.cycle_loss(image + 0.5, image).item() == pytest.approx(0.5)
    assert losses.mask_sparsity_loss(torch.zeros(2, 1, 8, 8)).item() == 0.0
    assert losses.mask_sparsity_loss(torch.full((2, 1, 8, 8), 0.25)).item() == pytest.approx(0.25)


@pytest.mark.parametrize("size", [64, 256])
def test_flow_tv_known_value_at_any_resolution(size):
    assert losses.flow_tv_loss(identity_flow(1, size, size)).item() == pytest.approx(1e-3)
    # f_x = c * x_normalized: neighbour difference c * 2 / W, times W -> 2c, squared 4c^2;
    # the y channel is constant and clamps to eps.
    c = 0.1
    xs = (2 * torch.arange(size) + 1) / size - 1
    flow = torch.zeros(1, 2, size, size)
    flow[:, 0] = c * xs.view(1, 1, size)
    expected = (4 * c * c + 1e-3) / 2
    assert losses.flow_tv_loss(flow).item() == pytest.approx(expected, rel=1e-4)


def test_landmark_loss_zero_for_tps_flow_and_large_for_identity(face_landmarks):
    source, exemplar = face_landmarks
    weight = losses.LossWeights().landmark
    tps = tps_flow(source, exemplar, (128, 128))
    identity = identity_flow(1, 128, 128)
    at_tps = weight * losses.landmark_loss(tps, source, exemplar).item()
    at_identity = weight * losses.landmark_loss(identity, source, exemplar).item()
    assert at_identity == pytest.approx(weight * ((exemplar - source) ** 2).mean().item())
    assert at_identity > 1.0
    assert at_tps < 0.02 * at_identity
    # The metric in pixels agrees: under a pixel for the TPS flow, several for the identity.
    assert losses.landmark_error_pixels(tps, source, exemplar).item() < 1.0
    expected_px = ((exemplar - source) * 64).norm(dim=-1).mean().item()
    assert losses.landmark_error_pixels(identity, source, exemplar).item() == pytest.approx(
        expected_px, rel=1e-5
    )


def test_landmark_loss_is_resolution_independent(face_landmarks):
    source, exemplar = face_landmarks
    halfway = source + 0.5 * (exemplar - source)  # a flow that does half the job
    values = [
        losses.landmark_loss(tps_flow(source, halfway, (size, size)), source, exemplar).item()
        for size in (64, 256)
    ]
    expected = ((0.5 * (exemplar - source)) ** 2).mean().item()
    assert values[0] == pytest.approx(values[1], rel=0.05)
    assert values[1] == pytest.approx(expected, rel=0.05)


def test_default_weights_match_official_magnitude():
    weights = losses.LossWeights()
    assert weights.to_dict() == {
        "adv": 1.0,
        "cls": 0.2,
        "cycle": 5.0,
        "landmark": 10 * 256,
        "tv": 1.0,
        "mask": 0.1,
    }


def test_inverse_flow_constant_and_smooth(face_landmarks):
    shift = torch.zeros(1, 2, 32, 32)
    shift[:, 0], shift[:, 1] = 0.1, -0.05
    assert torch.allclose(losses.inverse_flow(shift), -shift, atol=1e-6)

    source, exemplar = face_landmarks
    flow = tps_flow(source, source + 0.3 * (exemplar - source), (64, 64))

    def residual(inverse):
        # q -> q + g(q) -> + flow(q + g(q)) should land back on q.
        composed = inverse + warp_with_flow(flow, inverse)
        return composed[:, :, 8:-8, 8:-8].abs().mean().item()

    assert residual(losses.inverse_flow(flow, 3)) < 0.25 * residual(losses.inverse_flow(flow, 0))


def test_sample_flow_at_agrees_with_landmark_loss(face_landmarks):
    source, exemplar = face_landmarks
    flow = tps_flow(source, exemplar, (64, 64))
    sampled = sample_flow_at(flow, source)
    manual = ((sampled - (exemplar - source)) ** 2).mean()
    assert losses.landmark_loss(flow, source, exemplar).item() == pytest.approx(manual.item())


# ----------------------------------------------------------------------------- with the model


def _models(geometry_prior: bool):
    from geogan_hf.model import GeoGAN, GeoGANDiscriminator

    torch.manual_seed(0)
    attributes = ("Mustache", "Eyeglasses")
    generator = GeoGAN(
        image_size=64, attributes=attributes, ngf=4, n_blocks=1, geometry_prior=geometry_prior
    )
    discriminator = GeoGANDiscriminator(attributes=attributes, ndf=4, n_scales=2)
    return generator, discriminator


def _batch(face_landmarks):
    torch.manual_seed(1)
    source_lm, exemplar_lm = face_landmarks
    return {
        "source": torch.rand(2, 3, 64, 64) * 2 - 1,
        "exemplar": torch.rand(2, 3, 64, 64) * 2 - 1,
        "source_landmarks": source_lm.expand(2, -1, -1),
        "exemplar_landmarks": exemplar_lm.expand(2, -1, -1),
        "attribute": torch.tensor([0, 1]),
    }


@pytest.mark.parametrize("geometry_prior", [False, True], ids=["paper", "prior"])
def test_generator_loss_reaches_every_generator_parameter(face_landmarks, geometry_prior):
    generator, discriminator = _models(geometry_prior)
    b = _batch(face_landmarks)
    total, parts, out = losses.generator_loss(
        generator, discriminator, b["source"], b["exemplar"], b["source_landmarks"],
        b["exemplar_landmarks"], b["attribute"], alpha=0.1,
    )  # fmt: skip
    assert set(parts) == {"adv", "cls", "cycle", "landmark", "tv", "mask"}
    assert all(torch.isfinite(v) and not v.requires_grad for v in parts.values())
    expected = sum(getattr(losses.LossWeights(), k) * v for k, v in parts.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(f.shape == b["source"].shape for f in out.fakes())
    total.backward()
    missing = [n for n, p in generator.named_parameters() if p.grad is None]
    assert not missing, f"parameters outside the graph: {missing[:5]}"
    zero = {n for n, p in generator.named_parameters() if not p.grad.abs().sum() > 0}
    if geometry_prior:
        # Zero-initialised heads: the heads themselves must learn at step 0 (what feeds
        # them only once they are non-zero); the removal network has no prior and learns fully.
        heads = [n for n in zero if n.startswith(("flow_net", "mask_net", "refine_net"))]
        assert len(heads) == len(zero)
        assert not any(n.startswith("remove_net") for n in zero)
        assert len(zero) < len(list(generator.parameters()))
    else:
        assert not zero, f"zero gradients: {sorted(zero)[:5]}"


@pytest.mark.parametrize("geometry_prior", [False, True], ids=["paper", "prior"])
def test_discriminator_loss_reaches_every_discriminator_parameter(face_landmarks, geometry_prior):
    generator, discriminator = _models(geometry_prior)
    b = _batch(face_landmarks)
    with torch.no_grad():
        _, _, out = losses.generator_loss(
            generator, discriminator, b["source"], b["exemplar"], b["source_landmarks"],
            b["exemplar_landmarks"], b["attribute"], alpha=0.0,
        )  # fmt: skip
    total, parts = losses.discriminator_loss(
        discriminator, b["source"], b["exemplar"], out.fakes(), b["attribute"]
    )
    assert set(parts) == {"real", "fake", "cls"}
    total.backward()
    for name, p in discriminator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in generator.parameters())


def test_discriminator_loss_split_matches_separate_calls(face_landmarks):
    _, discriminator = _models(False)
    b = _batch(face_landmarks)
    fakes = [torch.rand(2, 3, 64, 64) * 2 - 1 for _ in range(4)]
    total, parts = losses.discriminator_loss(
        discriminator, b["source"], b["exemplar"], fakes, b["attribute"]
    )
    expected = parts["real"] + parts["fake"] + losses.LossWeights().cls * parts["cls"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    # Instance norm is per sample, so one concatenated call equals separate calls.
    real = sum(
        losses.lsgan_discriminator_loss(discriminator(x), None)
        for x in (b["source"], b["exemplar"])
    )
    fake = 0.5 * sum(losses.lsgan_discriminator_loss(None, discriminator(f)) for f in fakes)
    assert parts["real"].item() == pytest.approx(real.item(), rel=1e-4)
    assert parts["fake"].item() == pytest.approx(fake.item(), rel=1e-4)


@pytest.fixture(scope="module")
def fresh_prior_losses(face_landmarks):
    """``(batch, parts, cycle outputs)`` of the generator loss of a fresh prior model."""
    generator, discriminator = _models(True)
    b = _batch(face_landmarks)
    with torch.no_grad():
        _, parts, out = losses.generator_loss(
            generator, discriminator, b["source"], b["exemplar"], b["source_landmarks"],
            b["exemplar_landmarks"], b["attribute"], alpha=0.0,
        )  # fmt: skip
    return b, parts, out


def test_landmark_loss_of_prior_model_is_small(fresh_prior_losses):
    b, parts, out = fresh_prior_losses
    points = landmark_weights(["Mustache", "Eyeglasses"])  # the batch's, by index
    identity = losses.landmark_loss(
        torch.zeros_like(out.transfer.flow), b["source_landmarks"], b["exemplar_landmarks"],
        points,
    )  # fmt: skip
    # The prior's TPS flow (zero learned residual) carries the landmarks (for glasses, the
    # points the frame rests on).
    assert parts["landmark"].item() < 0.02 * identity.item()


def test_glasses_landmark_loss_sees_only_where_a_frame_rests():
    """A flow that bends with the eyelids costs nothing extra for glasses (rigid), but does
    for a mustache (skin-borne: the paper's loss on all 68 points)."""
    source = torch.rand(2, 68, 2) * 1.6 - 0.8
    exemplar = source.clone()
    exemplar[:, [37, 38, 43, 44], 1] -= 0.05  # eyelids only
    flow = torch.zeros(2, 2, 32, 32)
    points = landmark_weights(["Eyeglasses", "Mustache"])
    assert points.shape == (2, 68) and points[1].sum() == 68
    assert points[0].sum() == len(RIGID_POINTS)
    glasses = losses.landmark_loss(flow[:1], source[:1], exemplar[:1], points[:1])
    mustache = losses.landmark_loss(flow[1:], source[1:], exemplar[1:], points[1:])
    assert glasses.item() == 0.0 and mustache.item() > 0


def test_prior_model_regularizers_see_only_the_learned_residuals(fresh_prior_losses):
    _, parts, out = fresh_prior_losses
    transfer = out.transfer
    # Fresh heads add nothing: TV sits at its floor (eps per flow) and sparsity at 0, while
    # the same terms on the whole TPS flow and prior mask would pull the residuals off it.
    assert parts["tv"].item() == pytest.approx(2e-3)
    assert parts["mask"].item() == 0.0
    assert losses.flow_tv_loss(transfer.flow).item() > 2e-3
    # a learned alpha correction (here +0.3 everywhere) is what the sparsity term sees
    corrected = type(transfer)(**{**vars(transfer), "mask": transfer.mask + 0.3})
    assert losses.mask_sparsity_loss(losses.learned_mask(corrected)).item() == pytest.approx(0.3)
    # Without the prior, the whole flow and mask are learned and regularized.
    plain = type(transfer)(**{**vars(transfer), "prior_flow": None, "prior_mask": None})
    assert torch.equal(losses.learned_flow(plain), transfer.flow)
    assert torch.equal(losses.learned_mask(plain), transfer.mask)
