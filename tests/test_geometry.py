"""Tests of geogan_hf.geometry: conventions, warping, TPS flows, flow colours and Jacobians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geogan_hf.geometry import (
    flow_jacobian_determinant,
    flow_to_rgb,
    homography_flow,
    identity_flow,
    identity_grid,
    normalized_to_pixel,
    pixel_to_normalized,
    resize_flow,
    sample_flow_at,
    tps_flow,
    warp_points_backward,
    warp_with_flow,
)
from geogan_hf.samples import load_sample


def _framed(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Landmarks moved and scaled so the face spans the middle ~60 % of a ``size`` square."""
    centre = (landmarks.min(0) + landmarks.max(0)) / 2
    return (landmarks - centre) / np.ptp(landmarks, axis=0).max() * 0.6 * size + size / 2


@pytest.fixture(scope="module")
def point_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Real landmarks of two different faces, normalized in a 256 px frame: (source, exemplar)."""
    pair = [
        pixel_to_normalized(_framed(load_sample(name).landmarks, 256), (256, 256))
        for name in ("takeo", "breakingbad")
    ]
    return tuple(torch.tensor(p, dtype=torch.float32)[None] for p in pair)


def _linear_flow(h: int, w: int) -> torch.Tensor:
    grid = identity_grid(1, h, w).permute(0, 3, 1, 2)
    return torch.stack([0.05 + 0.1 * grid[:, 1], -0.02 + 0.08 * grid[:, 0]], dim=1)


def test_pixel_normalized_conversions() -> None:
    size = (40, 60)
    corners = np.array([[-0.5, -0.5], [59.5, 39.5]])
    np.testing.assert_allclose(pixel_to_normalized(corners, size), [[-1, -1], [1, 1]])
    points = torch.rand(3, 5, 2, dtype=torch.float64) * 50
    back = normalized_to_pixel(pixel_to_normalized(points, size), size)
    torch.testing.assert_close(back, points)
    grid = identity_grid(2, 40, 60, dtype=torch.float64)
    assert grid.shape == (2, 40, 60, 2)
    torch.testing.assert_close(
        normalized_to_pixel(grid[0, 7, 11], size), torch.tensor([11.0, 7.0], dtype=torch.float64)
    )


def test_identity_flow_warps_image_onto_itself() -> None:
    image = torch.rand(2, 3, 32, 48)
    flow = identity_flow(2, 32, 48)
    assert flow.shape == (2, 2, 32, 48) and not flow.any()
    assert (warp_with_flow(image, flow) - image).abs().max() < 1e-5


def test_warp_image_of_another_resolution() -> None:
    big = torch.rand(1, 3, 64, 96)
    out = warp_with_flow(big, identity_flow(1, 32, 48))
    expected = F.interpolate(big, size=(32, 48), mode="bilinear", align_corners=False)
    assert out.shape == (1, 3, 32, 48)
    assert (out - expected).abs().max() < 1e-5


def test_constant_flow_shifts_by_whole_pixels() -> None:
    image = torch.rand(1, 1, 20, 30)
    flow = torch.zeros(1, 2, 20, 30)
    flow[:, 0] = 2 * 3 / 30  # three pixels to the right
    flow[:, 1] = -2 * 2 / 20  # two pixels up
    out = warp_with_flow(image, flow)
    assert (out[..., 2:, :-3] - image[..., :-2, 3:]).abs().max() < 1e-5


def test_sample_flow_at_is_exact_on_constant_and_linear_flows() -> None:
    points = torch.rand(2, 7, 2) * 1.8 - 0.9  # inside the outermost pixel centres
    constant = torch.ones(2, 2, 16, 24) * torch.tensor([0.3, -0.1]).view(1, 2, 1, 1)
    torch.testing.assert_close(
        sample_flow_at(constant, points), torch.tensor([0.3, -0.1]).expand(2, 7, 2)
    )
    flow = _linear_flow(16, 24).expand(2, -1, -1, -1)
    x, y = points[..., 0], points[..., 1]
    expected = torch.stack([0.05 + 0.1 * y, -0.02 + 0.08 * x], dim=-1)
    torch.testing.assert_close(sample_flow_at(flow, points), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        warp_points_backward(points, flow), points + expected, atol=1e-6, rtol=0
    )


def test_resize_flow_keeps_the_warp(point_pair) -> None:
    source, exemplar = point_pair
    # A linear flow is resized exactly (away from the border pixels).
    resized = resize_flow(_linear_flow(16, 24), (32, 48))
    assert (resized - _linear_flow(32, 48))[..., 1:-1, 1:-1].abs().max() < 1e-6
    # A smooth TPS flow sends points to the same place at both resolutions.
    small = tps_flow(source, exemplar, (64, 64), regularization=1e-3)
    big = resize_flow(small, (128, 128))
    points = torch.rand(1, 50, 2) * 1.6 - 0.8
    moved_small = warp_points_backward(points, small)
    moved_big = warp_points_backward(points, big)
    assert ((moved_small - moved_big).abs() * 64).max() < 0.25  # in 128 px pixels


def test_tps_maps_source_landmarks_onto_exemplar_landmarks(point_pair) -> None:
    source, exemplar = point_pair
    flow = tps_flow(source, exemplar, (256, 256))
    assert flow.shape == (1, 2, 256, 256) and flow.dtype == torch.float32
    error_px = (warp_points_backward(source, flow) - exemplar).abs() * 128
    assert error_px.max() < 0.5
    # The flow is not trivially zero: the two faces differ by several pixels.
    assert ((source - exemplar).abs() * 128).max() > 5


def _blobs(points_px: np.ndarray, size: int, sigma: float = 1.5) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    image = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points_px)
    return torch.tensor(image, dtype=torch.float32)[None, None]


def _peak(image: np.ndarray, near: np.ndarray, radius: int = 4) -> np.ndarray:
    x0, y0 = np.round(near).astype(int) - radius
    window = image[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
    yy, xx = np.mgrid[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
    window = np.clip(window - 0.2 * window.max(), 0, None)
    return np.array([(xx * window).sum(), (yy * window).sum()]) / window.sum()


def test_warped_image_agrees_with_warped_landmarks(point_pair) -> None:
    source, exemplar = point_pair
    index = [8, 19, 24, 30, 36, 45, 48, 54]  # well separated points
    size = 256
    exemplar_px = normalized_to_pixel(exemplar[0, index].numpy(), (size, size))
    source_px = normalized_to_pixel(source[0, index].numpy(), (size, size))
    flow = tps_flow(source, exemplar, (size, size))
    warped = warp_with_flow(_blobs(exemplar_px, size), flow)[0, 0].numpy()
    errors = [np.hypot(*(_peak(warped, p) - p)) for p in source_px]
    assert max(errors) < 1.0


def test_tps_batched_differentiable_and_dtype_following(point_pair) -> None:
    source, exemplar = point_pair
    batch_src = torch.cat([source, exemplar]).double()
    batch_dst = torch.cat([exemplar, source]).double().requires_grad_(True)
    flow = tps_flow(batch_src, batch_dst, (24, 32))
    assert flow.shape == (2, 2, 24, 32) and flow.dtype == torch.float64
    single = tps_flow(batch_src[1:], batch_dst[1:].detach(), (24, 32))
    torch.testing.assert_close(flow[1:].detach(), single)
    flow.square().sum().backward()
    assert torch.isfinite(batch_dst.grad).all() and batch_dst.grad.abs().sum() > 0


def test_tps_identity_and_duplicate_points(point_pair) -> None:
    source, _ = point_pair
    assert tps_flow(source, source, (32, 32)).abs().max() < 1e-5
    duplicated = source.clone()
    duplicated[0, 66] = duplicated[0, 62]  # closed mouth: inner lip points coincide
    flow = tps_flow(duplicated, source, (32, 32))
    assert torch.isfinite(flow).all()
    with pytest.raises(ValueError, match="matching"):
        tps_flow(source, source[:, :10], (32, 32))


def test_homography_flow_samples_where_the_map_sends_each_pixel() -> None:
    matrix = torch.tensor([[[1.1, 0.1, 0.05], [-0.05, 0.9, 0.1], [0.2, -0.1, 1.0]]])
    flow = homography_flow(matrix, (16, 24))
    assert flow.shape == (1, 2, 16, 24) and flow.dtype == matrix.dtype
    points = torch.tensor([[[-0.5, 0.25], [0.3, -0.6]]])
    mapped = torch.cat([points, torch.ones(1, 2, 1)], -1) @ matrix[0].T
    expected = mapped[..., :2] / mapped[..., 2:]
    assert torch.allclose(warp_points_backward(points, flow), expected, atol=2e-3)
    assert homography_flow(torch.eye(3)[None], (8, 8)).abs().max() < 1e-6


def test_flow_to_rgb_is_torchvisions_flow_image_of_the_pixel_flow() -> None:
    from torchvision.utils import flow_to_image

    flow = torch.randn(2, 2, 8, 12) * 0.1
    rgb = flow_to_rgb(flow)
    assert rgb.shape == (2, 3, 8, 12) and rgb.min() >= -1 and rgb.max() <= 1
    for sample, coded in zip(flow * torch.tensor([6.0, 4.0]).view(1, 2, 1, 1), rgb):
        assert torch.equal(coded, flow_to_image(sample).float() / 127.5 - 1)
    white = flow_to_rgb(identity_flow(1, 4, 4))
    assert torch.equal(white, torch.ones(1, 3, 4, 4))
    # normalized (0.2, 0.2) on a 4 x 8 image is (0.8, 0.4) pixels: not the diagonal's colour
    diagonal = torch.full((1, 2, 4, 8), 0.2)
    pixels = torch.tensor([0.8, 0.4]).view(1, 2, 1, 1).expand(1, 2, 4, 8)
    assert torch.equal(flow_to_rgb(diagonal), flow_to_image(pixels).float() / 127.5 - 1)
    # each sample is scaled to its own maximum: a small and a large flow look the same
    pair = torch.cat([diagonal * 0.01, diagonal])
    assert torch.equal(flow_to_rgb(pair)[0], flow_to_rgb(pair)[1])
    assert flow_to_rgb(flow.to(torch.bfloat16)).dtype == torch.bfloat16


def test_flow_jacobian_determinant() -> None:
    det = flow_jacobian_determinant(identity_flow(1, 10, 14))
    assert det.shape == (1, 1, 9, 13)
    torch.testing.assert_close(det, torch.ones_like(det))
    grid = identity_grid(1, 10, 14).permute(0, 3, 1, 2)
    mirror = torch.zeros(1, 2, 10, 14)
    mirror[:, 0] = -2 * grid[:, 0]  # p -> (-x, y): folds the image over
    torch.testing.assert_close(flow_jacobian_determinant(mirror), -torch.ones(1, 1, 9, 13))
    torch.testing.assert_close(
        flow_jacobian_determinant(0.5 * grid), torch.full((1, 1, 9, 13), 2.25)
    )
