"""Coordinate and flow conventions, warping and thin-plate-spline flows (torch only).

Conventions used by every module of geogan_hf (image tensors are described in
:mod:`geogan_hf.imageio`, attribute names in :mod:`geogan_hf.regions`):

- **Pixel coordinates** are ``(x, y)`` with pixel centres at integers ``0 .. W-1`` (as dlib
  and menpo report landmarks).
- **Normalized coordinates** are ``(x, y)`` in ``[-1, 1]`` following
  ``grid_sample(..., align_corners=False)``: ``n = (2 * x + 1) / W - 1`` (and the same with
  ``H`` for ``y``), so ``-1`` and ``1`` are the outer edges of the border pixels. Landmarks
  fed to the networks and flows use them; being resolution independent, the same
  normalized point addresses the same place in a 256 px and a 1024 px version of an image.
- **Landmarks** are float arrays ``(68, 2)`` (batched ``(N, 68, 2)``) in iBUG 68-point order.
- **Flow** is a *backward displacement* in normalized coordinates, ``(N, 2, H, W)``,
  channel 0 = x. The output pixel at normalized position ``p`` is sampled from the input
  at ``p + flow[:, :, p]``; the identity flow is all zeros. A normalized displacement does
  not change with resolution, so flows are resized by plain bilinear interpolation, and
  a flow may warp an image of another resolution (how high-resolution results are made).
- **Masks** are float ``(N, 1, H, W)`` in ``[0, 1]``; 1 = take the (warped) exemplar.
- **Isotropic frame**: where distances matter (the thin-plate spline kernel)
  normalized coordinates are rescaled so that one unit is the same number of pixels along
  x and y: ``q = n * (W, H) / max(H, W)`` (the longer side spans ``[-1, 1]``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_TPS_RIDGE = 1e-8  # keeps the TPS system solvable with duplicate / collinear points
_TPS_CHUNK = 1 << 22  # grid points x control points evaluated per chunk


def _size_vector(size: tuple[int, int], like: torch.Tensor | np.ndarray):
    h, w = size
    if isinstance(like, torch.Tensor):
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        return torch.tensor([w, h], dtype=dtype, device=like.device)
    return np.array([w, h], dtype=np.float64)


def pixel_to_normalized(points, size: tuple[int, int]):
    """Convert pixel ``(x, y)`` points ``(..., 2)`` to normalized coordinates.

    Args:
        points: tensor or ndarray ``(..., 2)`` in pixels.
        size: ``(height, width)`` of the image the pixels belong to.

    Returns:
        Same type as ``points``: ``(2 * p + 1) / (W, H) - 1``.
    """
    wh = _size_vector(size, points)
    return (2 * points + 1) / wh - 1


def normalized_to_pixel(points, size: tuple[int, int]):
    """Inverse of :func:`pixel_to_normalized`: ``((n + 1) * (W, H) - 1) / 2``."""
    wh = _size_vector(size, points)
    return ((points + 1) * wh - 1) / 2


def face_turn(landmarks):
    """How far faces are turned left or right, from their 68 landmarks ``(..., 68, 2)``
    (ndarray or tensor, any one frame; returns ``(...)``).

    The jaw ends' (points 0 and 16) distances to the nose tip (point 30), their difference
    over their sum: 0 for a frontal face, about 0.6 at a three-quarter view, 1 in profile;
    positive where the nose tip lies nearer point 16.

    >>> import numpy as np
    >>> points = np.zeros((68, 2)); points[16, 0] = 100.0; points[30, 0] = 60.0
    >>> round(float(face_turn(points)), 2)
    0.2
    """
    nose = landmarks[..., 30, :]
    near_0 = ((landmarks[..., 0, :] - nose) ** 2).sum(-1) ** 0.5
    near_16 = ((landmarks[..., 16, :] - nose) ** 2).sum(-1) ** 0.5
    return (near_0 - near_16) / (near_0 + near_16).clip(min=1e-6)


def isotropic_scale(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``(2,)`` normalized to isotropic coordinates: ``(W, H) / max(H, W)``, as ``like``."""
    m = max(h, w)
    return torch.tensor([w / m, h / m], dtype=like.dtype, device=like.device)


def identity_grid(
    n: int,
    h: int,
    w: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Normalized coordinates of the pixel centres, ``(N, H, W, 2)`` as ``grid_sample`` wants."""
    dtype = dtype or torch.get_default_dtype()
    xs = (2 * torch.arange(w, device=device, dtype=dtype) + 1) / w - 1
    ys = (2 * torch.arange(h, device=device, dtype=dtype) + 1) / h - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0).repeat(n, 1, 1, 1)


def identity_flow(
    n: int,
    h: int,
    w: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The identity (zero) flow ``(N, 2, H, W)``."""
    return torch.zeros(n, 2, h, w, device=device, dtype=dtype or torch.get_default_dtype())


def warp_with_flow(
    image: torch.Tensor,
    flow: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Backward-warp ``image`` with ``flow``.

    Args:
        image: ``(N, C, Hi, Wi)``; may have another resolution than the flow.
        flow: ``(N, 2, H, W)`` normalized backward displacement.
        mode: ``grid_sample`` interpolation (``"bilinear"``, ``"nearest"``, ``"bicubic"``).
        padding_mode: ``grid_sample`` padding (``"border"``, ``"zeros"``, ``"reflection"``).

    Returns:
        ``(N, C, H, W)``: output pixel ``p`` = ``image`` sampled at ``p + flow(p)``.
    """
    n, _, h, w = flow.shape
    grid = identity_grid(n, h, w, device=flow.device, dtype=flow.dtype) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(
        image, grid.to(image.dtype), mode=mode, padding_mode=padding_mode, align_corners=False
    )


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a normalized flow to ``size = (height, width)`` (bilinear, no rescaling of values)."""
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False)


def sample_flow_at(flow: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``flow (N, 2, H, W)`` at normalized ``points (N, K, 2)`` -> ``(N, K, 2)``.

    Points beyond the outermost pixel centres take the border value.
    """
    grid = points.to(flow.dtype).unsqueeze(1)  # (N, 1, K, 2)
    values = F.grid_sample(flow, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return values[:, :, 0].transpose(1, 2)


def warp_points_backward(points: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Where the input point seen at output position ``points (N, K, 2)`` comes from."""
    return points + sample_flow_at(flow, points)


def _tps_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``U(|a_i - b_j|)`` for ``a (N, P, 2)``, ``b (N, K, 2)``; ``U(r) = r^2 log r^2``, ``U(0) = 0``."""
    # |a - b|^2 as one matmul of [a, |a|^2, 1] and [-2b, 1, |b|^2]. Clamping r^2 at 1e-30
    # gives U(0) = -7e-29 instead of 0 but keeps log and its gradient finite.
    lhs = torch.cat([a, a.square().sum(-1, keepdim=True), torch.ones_like(a[..., :1])], dim=-1)
    rhs = torch.cat([-2 * b, torch.ones_like(b[..., :1]), b.square().sum(-1, keepdim=True)], dim=-1)
    r2 = (lhs @ rhs.transpose(1, 2)).clamp_min(1e-30)
    return r2 * torch.log(r2)


def tps_flow(
    source_points: torch.Tensor,
    exemplar_points: torch.Tensor,
    size: tuple[int, int],
    regularization: float = 0.0,
) -> torch.Tensor:
    """Thin-plate-spline flow that carries exemplar landmarks onto source landmarks.

    Fits, per sample, the spline ``T(p) = A p + b + sum_i w_i U(|p - s_i|)`` with
    ``U(r) = r^2 log r^2`` and ``T(s_i) = e_i`` (``s`` source, ``e`` exemplar points), in the
    isotropic frame (see the module docstring), and returns ``T(p) - p`` on the pixel
    centres of the output grid. Hence ``warp_with_flow(exemplar, f)`` puts the exemplar's
    landmarks on the source's: ``warp_points_backward(source_points, f) ≈ exemplar_points``.

    The system is solved in float64 (a ridge of 1e-8 keeps it solvable when points
    coincide), the spline evaluated in float32 (float64 for float64 input) and the result
    cast back to the input dtype; it is differentiable with respect to both point sets.
    Near-duplicate source points with different targets (a closed source mouth, an open
    exemplar mouth) make the exact interpolant fold locally: ``regularization > 0`` smooths it.

    Args:
        source_points: ``(N, K, 2)`` normalized points in the output (source) frame.
        exemplar_points: ``(N, K, 2)`` matching normalized points in the exemplar.
        size: ``(height, width)`` of the flow.
        regularization: smoothing weight added to the kernel diagonal (0 = interpolate).

    Returns:
        ``(N, 2, H, W)`` normalized backward flow.
    """
    if source_points.shape != exemplar_points.shape or source_points.shape[-1] != 2:
        raise ValueError(
            f"tps_flow needs matching (N, K, 2) point sets, got {tuple(source_points.shape)} "
            f"and {tuple(exemplar_points.shape)}"
        )
    dtype = source_points.dtype if source_points.is_floating_point() else torch.float32
    h, w = size
    iso = isotropic_scale(h, w, torch.empty(0, dtype=torch.float64, device=source_points.device))
    src = source_points.to(torch.float64) * iso
    dst = exemplar_points.to(torch.float64) * iso
    n, k, _ = src.shape

    kernel = _tps_kernel(src, src)
    kernel = kernel + (regularization + _TPS_RIDGE) * torch.eye(
        k, dtype=kernel.dtype, device=kernel.device
    )
    affine = torch.cat([torch.ones_like(src[..., :1]), src], dim=-1)  # (N, K, 3)
    corner = -_TPS_RIDGE * torch.eye(3, dtype=kernel.dtype, device=kernel.device).expand(n, 3, 3)
    system = torch.cat(
        [torch.cat([kernel, affine], dim=2), torch.cat([affine.transpose(1, 2), corner], dim=2)],
        dim=1,
    )
    rhs = torch.cat([dst, dst.new_zeros(n, 3, 2)], dim=1)
    params = torch.linalg.solve(system, rhs)  # (N, K + 3, 2)
    weights, coeffs = params[:, :k], params[:, k:]

    # Evaluating the kernel in float32 costs < 0.01 px at 1024 px and is ~3x faster.
    eval_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    src, weights, coeffs, iso = (t.to(eval_dtype) for t in (src, weights, coeffs, iso))
    grid = identity_grid(1, h, w, device=src.device, dtype=eval_dtype).reshape(1, h * w, 2) * iso
    rows = max(1, _TPS_CHUNK // max(k, 1))
    out = []
    for start in range(0, h * w, rows):
        pts = grid[:, start : start + rows].expand(n, -1, 2)
        mapped = coeffs[:, :1] + pts @ coeffs[:, 1:] + _tps_kernel(pts, src) @ weights
        out.append(mapped - pts)
    flow = torch.cat(out, dim=1) / iso
    return flow.reshape(n, h, w, 2).permute(0, 3, 1, 2).to(dtype).contiguous()


def apply_homography(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``points`` ``(N, K, 2)`` (or ``(1, K, 2)``, shared) through the projective maps
    ``matrix`` ``(N, 3, 3)``.

    >>> apply_homography(torch.eye(3)[None] * 2, torch.tensor([[[0.5, -0.25]]]))
    tensor([[[ 0.5000, -0.2500]]])
    """
    mapped = torch.cat([points, torch.ones_like(points[..., :1])], -1) @ matrix.transpose(1, 2)
    # a map that sends a point behind the camera (denominator <= 0) is degenerate there
    return mapped[..., :2] / mapped[..., 2:].clamp_min(1e-6)


def homography_flow(matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, 2, H, W)`` backward flow of the projective maps ``matrix`` ``(N, 3, 3)`` from
    output (source) to input (exemplar) normalized coordinates, in ``matrix``'s dtype."""
    h, w = size
    grid = identity_grid(1, h, w, device=matrix.device, dtype=matrix.dtype).reshape(1, h * w, 2)
    mapped = apply_homography(matrix, grid)
    return (mapped - grid).reshape(-1, h, w, 2).permute(0, 3, 1, 2).contiguous()


# The Middlebury colour wheel (Baker et al., ICCV 2007) as torchvision's flow_to_image builds
# it: from red through yellow, green, cyan, blue and magenta back to red, in 15, 6, 4, 11, 13
# and 6 steps. Written here because importing torchvision for it pulls in torch._dynamo and
# sympy: 1.3-2.5 s on a process's first transfer (the demo's first visitor, every CLI run).
_WHEEL_HUES = ((1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1))
_WHEEL_STEPS = (15, 6, 4, 11, 13, 6)


def _colour_wheel() -> torch.Tensor:
    """``(55, 3)`` the wheel's colours, 0-255 (as torchvision's ``_make_colorwheel``)."""
    rows = []
    for i, steps in enumerate(_WHEEL_STEPS):
        start, end = (torch.tensor(_WHEEL_HUES[j % 6], dtype=torch.float32) for j in (i, i + 1))
        ramp = torch.floor(255 * torch.arange(steps) / steps)[:, None]
        rows.append(255 * start + (end - start) * ramp)
    return torch.cat(rows)


def flow_to_rgb(flow: torch.Tensor) -> torch.Tensor:
    """Colour-code a flow for display, pixel for pixel as torchvision's ``flow_to_image``
    (Middlebury colour wheel: hue = direction, saturation = magnitude; the zero flow is
    white).

    The displacement is measured in pixels, so hue does not depend on the aspect ratio;
    each sample is scaled to its own maximum.

    Args:
        flow: ``(N, 2, H, W)`` normalized flow.

    Returns:
        ``(N, 3, H, W)`` RGB image in ``[-1, 1]``, of ``flow``'s dtype.
    """
    _, _, h, w = flow.shape
    pixels = flow.float() * torch.tensor([w / 2, h / 2], device=flow.device).view(1, 2, 1, 1)
    largest = pixels.pow(2).sum(1).sqrt().flatten(1).amax(1).view(-1, 1, 1, 1)
    unit = pixels / (largest + torch.finfo(torch.float32).eps)
    wheel = _colour_wheel().to(flow.device)
    position = (torch.atan2(-unit[:, 1], -unit[:, 0]) / torch.pi + 1) / 2 * (len(wheel) - 1)
    k0 = torch.floor(position).to(torch.long)
    k1 = torch.where(k0 + 1 == len(wheel), 0, k0 + 1)
    f = (position - k0)[:, None]
    colour = (1 - f) * (wheel[k0] / 255.0).permute(0, 3, 1, 2) + f * (
        wheel[k1] / 255.0
    ).permute(0, 3, 1, 2)
    rgb = torch.floor(255 * (1 - unit.pow(2).sum(1, keepdim=True).sqrt() * (1 - colour)))
    # at the largest displacement rounding can reach -1 (torchvision's uint8 wraps it to 255)
    return (rgb.clamp(0, 255) / 127.5 - 1).to(flow.dtype)


def flow_jacobian_determinant(flow: torch.Tensor) -> torch.Tensor:
    """Jacobian determinant of ``p -> p + flow(p)`` in pixel units, ``(N, 1, H-1, W-1)``.

    Central differences on each 2x2 cell of pixel centres: 1 for the identity, below 0
    where the warp folds over.
    """
    _, _, h, w = flow.shape
    px = flow * torch.tensor([w / 2, h / 2], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    dx = (px[:, :, :, 1:] - px[:, :, :, :-1]).narrow(2, 0, h - 1)
    dx = (dx + (px[:, :, 1:, 1:] - px[:, :, 1:, :-1])) / 2
    dy = (px[:, :, 1:, :] - px[:, :, :-1, :]).narrow(3, 0, w - 1)
    dy = (dy + (px[:, :, 1:, 1:] - px[:, :, :-1, 1:])) / 2
    return ((1 + dx[:, 0]) * (1 + dy[:, 1]) - dx[:, 1] * dy[:, 0]).unsqueeze(1)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking); returns ``image`` itself at its own size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = image.shape[-2] > size[0] or image.shape[-1] > size[1]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The maximum of ``x`` ``(N, C, H, W)`` over the ``(2 radius + 1)``-pixel square around
    each pixel (a dilation), same size. Separable: a square max-pool costs the square of its
    side on a CPU (a 17-pixel one took 180 ms on a 1024² map), a row and a column twice it.

    >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1
    >>> max_filter(x, 1)[0, 0]
    tensor([[0., 0., 0., 0., 0.],
            [0., 1., 1., 1., 0.],
            [0., 1., 1., 1., 0.],
            [0., 1., 1., 1., 0.],
            [0., 0., 0., 0., 0.]])
    """
    rows = F.max_pool2d(x, (2 * radius + 1, 1), 1, (radius, 0))
    return F.max_pool2d(rows, (1, 2 * radius + 1), 1, (0, radius))


def min_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The minimum of ``x`` over the same square (an erosion): :func:`max_filter` of ``-x``.

    >>> x = torch.ones(1, 1, 5, 5); x[0, 0, 2, 2] = 0
    >>> min_filter(x, 1)[0, 0, 1:4, 1:4].sum().item(), min_filter(x, 1)[0, 0, 0, 0].item()
    (0.0, 1.0)
    """
    return -max_filter(-x, radius)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding; ``sigma`` in pixels (no-op below 0.3)."""
    if sigma < 0.3:
        return x
    radius = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def resample_box(
    field: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]
) -> torch.Tensor:
    """``field`` (any size) resampled bilinearly at the pixels ``box = (y0, y1, x0, x1)`` of a ``size`` image.

    The same as resizing ``field`` to ``size`` (no antialiasing) and cropping ``box``,
    without computing the rest: normalized coordinates address the same place at any size.
    """
    y0, y1, x0, x1 = box
    h, w = size
    ys = (2 * torch.arange(y0, y1, device=field.device, dtype=field.dtype) + 1) / h - 1
    xs = (2 * torch.arange(x0, x1, device=field.device, dtype=field.dtype) + 1) / w - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)
    grid = grid[None].expand(field.shape[0], -1, -1, -1)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=False)
