"""GeoGAN training objective: loss terms and their weighted sums.

Plain functions in the style of stargan-v2: each term returns a scalar tensor; the two
combiners return ``(total, parts)`` where ``parts`` maps a term's name to its *unweighted*,
detached value (for logging; call ``.item()`` only when you log).

Resolution independence. Flows follow the convention of :mod:`geogan_hf.geometry`
(backward displacement in normalized coordinates), so:

* the landmark term is an MSE between normalized displacements. The official code computes
  exactly this quantity and multiplies it by ``10 * 256``; the default weight ``2560`` keeps
  that magnitude. At 256 px one normalized unit is 128 px, so ``2560 * mse_normalized``
  equals ``2560 / 128**2 = 0.156`` times the MSE in pixels at 256 px, whatever the
  training resolution;
* the TV term follows the official ``mean(clamp((size * dflow)**2, 1e-3))`` with ``size``
  the *actual* width / height instead of a hard-coded 256: ``size * dflow`` is twice the
  derivative of the displacement in pixels per pixel, a resolution-free quantity, so weight
  1 reproduces the official value at 256 px and the same value for the same geometry at any
  size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import sample_flow_at, warp_with_flow
from .prior import TransferOutput, landmark_weights

__all__ = [
    "CycleOutputs",
    "LossWeights",
    "classification_loss",
    "cycle_loss",
    "discriminator_loss",
    "flow_tv_loss",
    "generator_loss",
    "inverse_flow",
    "landmark_error_pixels",
    "landmark_loss",
    "learned_flow",
    "learned_mask",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "mask_sparsity_loss",
]

DiscriminatorOutput = Sequence[tuple[Tensor, Tensor]]
"""Per scale: (patch logits ``(N, 1, h, w)``, attribute logits ``(N, n_attributes)``)."""


@dataclass
class LossWeights:
    """Weights of the objective; the defaults are the official training script's.

    ``landmark`` and ``tv`` are expressed for the resolution-independent terms of this
    module (see the module docstring for the conversion from the official 256-px ones).
    """

    adv: float = 1.0
    cls: float = 0.2
    cycle: float = 5.0
    landmark: float = 2560.0
    tv: float = 1.0
    mask: float = 0.1

    def to_dict(self) -> dict[str, float]:
        """The weights as a plain dict (for logs and model cards)."""
        return asdict(self)


@dataclass
class CycleOutputs:
    """Everything one generator pass of the cycle produced.

    Attributes:
        fake_ay: ``G(a, b_y)``, the source wearing the exemplar's attribute.
        fake_bx: ``F(b_y)``, the exemplar with its attribute removed.
        fake_by: ``G(fake_bx, fake_ay)``, the attribute put back on the exemplar.
        fake_ax: ``F(fake_ay)``, the attribute removed again from the source.
        transfer: the full :class:`~geogan_hf.model.GeoGANOutput` of ``G(a, b_y)``.
        back_transfer: the :class:`~geogan_hf.model.GeoGANOutput` of ``G(fake_bx, fake_ay)``.
    """

    fake_ay: Tensor
    fake_bx: Tensor
    fake_by: Tensor
    fake_ax: Tensor
    transfer: object
    back_transfer: object

    def fakes(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The four generated images, with the attribute (ay, by) then without (bx, ax)."""
        return self.fake_ay, self.fake_by, self.fake_bx, self.fake_ax


# ----------------------------------------------------------------------------- terms


def lsgan_generator_loss(outputs: DiscriminatorOutput) -> Tensor:
    """LSGAN generator term ``sum_scales mean((D(fake) - 1)^2)``."""
    return sum(F.mse_loss(patch, torch.ones_like(patch)) for patch, _ in outputs)


def lsgan_discriminator_loss(
    real_outputs: DiscriminatorOutput | None, fake_outputs: DiscriminatorOutput | None
) -> Tensor:
    """LSGAN discriminator term: reals towards 1, fakes towards 0, summed over scales."""
    loss = 0.0
    if real_outputs is not None:
        loss = loss + sum(F.mse_loss(p, torch.ones_like(p)) for p, _ in real_outputs)
    if fake_outputs is not None:
        loss = loss + sum(F.mse_loss(p, torch.zeros_like(p)) for p, _ in fake_outputs)
    return loss


def classification_loss(outputs: DiscriminatorOutput, attribute: Tensor, target: float) -> Tensor:
    """Domain classification BCE of the attribute head, summed over scales.

    Only the column of each sample's attribute is supervised: a pair only tells whether the
    image wears *that* attribute (``target`` 1) or not (0); its other attributes are unknown.

    Args:
        outputs: the discriminator's output.
        attribute: ``(N,)`` long indices into the discriminator's attributes.
        target: 1.0 (wears the attribute) or 0.0.
    """
    index = attribute.view(-1, 1)
    total = 0.0
    for _, logits in outputs:
        picked = logits.float().gather(1, index).squeeze(1)
        total = total + F.binary_cross_entropy_with_logits(picked, torch.full_like(picked, target))
    return total


def cycle_loss(reconstruction: Tensor, original: Tensor) -> Tensor:
    """Cycle reconstruction L1."""
    return F.l1_loss(reconstruction, original)


def landmark_loss(
    flow: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    points: Tensor | None = None,
) -> Tensor:
    """MSE between the flow at the source's landmarks and the displacement to the exemplar's.

    Args:
        flow: ``(N, 2, H, W)`` backward flow (normalized) that warps the exemplar onto the source.
        source_landmarks: ``(N, 68, 2)`` normalized.
        exemplar_landmarks: ``(N, 68, 2)`` normalized, matching points.
        points: ``(N, 68)`` weights of the landmarks
            (:func:`~geogan_hf.prior.landmark_weights`); ``None``: all.

    Returns:
        The mean squared error in normalized units (0 when the flow carries every weighted
        exemplar landmark onto its source landmark).
    """
    sampled = sample_flow_at(flow.float(), source_landmarks.float())
    error = (sampled - (exemplar_landmarks - source_landmarks).float()).square()
    if points is None:
        return error.mean()
    weights = points.float()[..., None].expand_as(error)
    return (error * weights).sum() / weights.sum().clamp_min(1)


@torch.no_grad()
def landmark_error_pixels(
    flow: Tensor, source_landmarks: Tensor, exemplar_landmarks: Tensor
) -> Tensor:
    """Mean landmark error of a flow in pixels of the flow's grid (a metric, not a loss).

    The distance between where the flow fetches each source landmark from and where the
    exemplar's matching landmark is, with x in units of the width and y of the height.
    """
    height, width = flow.shape[-2:]
    residual = (
        sample_flow_at(flow.float(), source_landmarks.float())
        - (exemplar_landmarks - source_landmarks).float()
    )
    scale = residual.new_tensor([width / 2.0, height / 2.0])
    return (residual * scale).norm(dim=-1).mean()


def flow_tv_loss(flow: Tensor, eps: float = 1e-3) -> Tensor:
    """Total variation of a flow: mean of clamped squared neighbour differences.

    The official form with the flow scaled by the actual image size (see the module
    docstring), hence independent of the resolution for the same geometry.
    """
    height, width = flow.shape[-2:]
    scaled = flow.float() * flow.new_tensor([width, height], dtype=torch.float32).view(1, 2, 1, 1)
    dx = scaled[:, :, :-1, :-1] - scaled[:, :, :-1, 1:]
    dy = scaled[:, :, :-1, :-1] - scaled[:, :, 1:, :-1]
    return torch.clamp(dx * dx + dy * dy, min=eps).mean()


def mask_sparsity_loss(mask: Tensor) -> Tensor:
    """L1 of a mask towards 0 (the attribute should cover as little as it needs)."""
    return mask.float().abs().mean()


def learned_flow(output: TransferOutput) -> Tensor:
    """The part of a transfer's flow its network predicted: with the geometry prior, the
    residual on top of the landmark TPS flow, else the whole flow.

    The TV term regularizes this part only: the TPS flow is smooth by construction, and
    penalizing its variation would pull the residual against the landmarks.
    """
    return output.flow if output.prior_flow is None else output.flow - output.prior_flow


def learned_mask(output: TransferOutput) -> Tensor:
    """The part of a transfer's mask its network predicted: with the geometry prior, the
    (signed) residual on top of the prior mask, else the whole mask.

    The sparsity term regularizes this part only: without a prior it keeps the mask small,
    with one it keeps the mask at the prior unless the images say otherwise.
    """
    return output.mask if output.prior_mask is None else output.mask - output.prior_mask


def inverse_flow(flow: Tensor, iterations: int = 3) -> Tensor:
    """Approximate inverse of a backward flow by fixed-point iteration.

    ``flow`` maps output position ``p`` to input position ``p + flow(p)``; the result ``g``
    maps input position ``q`` back: ``q + g(q) + flow(q + g(q)) ≈ q``. ``iterations=0``
    gives ``-flow``, the official code's first-order approximation.
    """
    inverse = -flow
    for _ in range(iterations):
        inverse = -warp_with_flow(flow, inverse)
    return inverse


# ----------------------------------------------------------------------------- combiners


def generator_loss(
    generator: nn.Module,
    discriminator: nn.Module,
    source: Tensor,
    exemplar: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    attribute,
    *,
    alpha: float,
    weights: LossWeights | None = None,
    inverse_iterations: int = 3,
) -> tuple[Tensor, dict[str, Tensor], CycleOutputs]:
    """The generator's full objective over the official cycle.

    ``fake_ay = G(a, b_y)``; ``fake_bx = F(b_y)`` (the mask brought back into the exemplar's
    frame with :func:`inverse_flow`); ``fake_by = G(fake_bx, fake_ay)`` (the landmarks swap
    roles: ``fake_bx`` has ``b_y``'s geometry, ``fake_ay`` has ``a``'s); ``fake_ax = F(fake_ay)``.

    Terms: LSGAN on the four fakes; classification (``fake_ay``, ``fake_by`` -> 1, ``fake_bx``,
    ``fake_ax`` -> 0); cycle L1 (``fake_ax`` vs ``a``, ``fake_by`` vs ``b_y``); landmark
    (averaged over both flows, so the weight keeps the official magnitude, which supervised
    the first flow only) and TV (summed over both flows, as official); mask sparsity
    (summed over both masks). With the geometry prior, TV and sparsity apply to what the
    networks add to the prior (:func:`learned_flow`, :func:`learned_mask`).

    Args:
        generator: a :class:`~geogan_hf.model.GeoGAN` (possibly wrapped, e.g. by DDP).
        discriminator: a :class:`~geogan_hf.model.GeoGANDiscriminator`.
        source, exemplar: ``(N, 3, H, W)`` in [-1, 1]; the source lacks the attribute.
        source_landmarks, exemplar_landmarks: ``(N, 68, 2)`` normalized.
        attribute: ``(N,)`` long indices (or anything ``GeoGAN.forward`` accepts).
        alpha: the refinement residual's scale (0 during the warm-up).
        weights: the loss weights (official defaults).
        inverse_iterations: fixed-point iterations of :func:`inverse_flow` for the masks.

    Returns:
        ``(total, parts, outputs)``: the weighted sum, the unweighted detached terms
        (``adv``, ``cls``, ``cycle``, ``landmark``, ``tv``, ``mask``) and the cycle's images.
    """
    weights = weights or LossWeights()
    core = getattr(generator, "module", generator)
    index = core.attribute_index(attribute, source.shape[0], source.device)

    transfer = generator(source, exemplar, source_landmarks, exemplar_landmarks, index, alpha)
    fake_ay = transfer.image
    mask_b = warp_with_flow(transfer.mask, inverse_flow(transfer.flow, inverse_iterations))
    fake_bx = core.remove(exemplar, mask_b, index)
    back = generator(fake_bx, fake_ay, exemplar_landmarks, source_landmarks, index, alpha)
    fake_by = back.image
    mask_a = warp_with_flow(back.mask, inverse_flow(back.flow, inverse_iterations))
    fake_ax = core.remove(fake_ay, mask_a, index)
    outputs = CycleOutputs(fake_ay, fake_bx, fake_by, fake_ax, transfer, back)

    points = landmark_weights([core.attributes[i] for i in index.tolist()], source.device)
    fakes = (fake_ay, fake_by, fake_bx, fake_ax)
    adv = cls = 0.0
    for d_out, target in zip(_split(discriminator(torch.cat(fakes)), 4), (1.0, 1.0, 0.0, 0.0)):
        adv = adv + lsgan_generator_loss(d_out)
        cls = cls + classification_loss(d_out, index, target)
    parts = {
        "adv": adv,
        "cls": cls,
        "cycle": cycle_loss(fake_ax, source) + cycle_loss(fake_by, exemplar),
        "landmark": 0.5
        * (
            landmark_loss(transfer.flow, source_landmarks, exemplar_landmarks, points)
            + landmark_loss(back.flow, exemplar_landmarks, source_landmarks, points)
        ),
        "tv": flow_tv_loss(learned_flow(transfer)) + flow_tv_loss(learned_flow(back)),
        "mask": mask_sparsity_loss(learned_mask(transfer)) + mask_sparsity_loss(learned_mask(back)),
    }
    total = _weighted_sum(parts, weights)
    return total, {k: v.detach() for k, v in parts.items()}, outputs


def discriminator_loss(
    discriminator: nn.Module,
    real_source: Tensor,
    real_exemplar: Tensor,
    fakes: Sequence[Tensor],
    attribute: Tensor,
    weights: LossWeights | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The discriminator's objective (official form).

    LSGAN: each real (source and exemplar) towards 1, each fake towards 0 with weight 1/2
    (the official balance of 2 reals against 4 fakes); classification on the reals only
    (source -> 0, exemplar -> 1 for the pair's attribute). Fakes are detached here.

    Returns:
        ``(total, parts)`` with unweighted detached ``real``, ``fake`` and ``cls``.
    """
    weights = weights or LossWeights()
    attribute = attribute.to(device=real_source.device, dtype=torch.long).view(-1)
    batch = torch.cat([real_source, real_exemplar, *(f.detach() for f in fakes)])
    out_a, out_b, *out_fakes = _split(discriminator(batch), 2 + len(fakes))
    real = lsgan_discriminator_loss(out_a, None) + lsgan_discriminator_loss(out_b, None)
    fake = 0.5 * sum(lsgan_discriminator_loss(None, out) for out in out_fakes)
    cls = classification_loss(out_a, attribute, 0.0) + classification_loss(out_b, attribute, 1.0)
    total = weights.adv * (real + fake) + weights.cls * cls
    return total, {"real": real.detach(), "fake": fake.detach(), "cls": cls.detach()}


def _split(outputs: DiscriminatorOutput, chunks: int) -> list[list[tuple[Tensor, Tensor]]]:
    """Split the output of one discriminator call on a concatenated batch into per-chunk outputs."""
    per_scale = [(p.chunk(chunks), c.chunk(chunks)) for p, c in outputs]
    return [[(p[i], c[i]) for p, c in per_scale] for i in range(chunks)]


def _weighted_sum(parts: dict[str, Tensor], weights: LossWeights) -> Tensor:
    return sum(getattr(weights, name) * value for name, value in parts.items())
