"""The official GeoGAN generator's transfer path, rebuilt for a same-machine latency baseline.

A re-implementation (written from the architecture of wdyin/GeoGAN's ``networks.py`` and
``models.py``, at its training script's settings: ngf 16, 3 downsamplings, 3 ResBlocks,
``nn.InstanceNorm2d``) of what runs when the official code transfers an attribute:

- flow: one encoder applied to the source and to the exemplar, features concatenated at
  every scale; a 3x3 conv (256 -> 128) + IN + ReLU and 3 ResBlocks; a decoder whose level
  concatenates the deeper output with the fused skip at the deeper resolution, upsamples
  x2, then applies a 1x1 conv, a reflect-padded 3x3 conv, IN and ReLU; the output is a
  zero-padded 7x7 conv over ``[decoder output, fused full-resolution skip]`` (48 channels),
  divided by 10;
- mask: its own encoder, bottleneck and decoder on the same two inputs, sigmoid;
- refinement: one encoder on ``[blended, mask]`` (4 channels), no ResBlocks, a decoder with
  single-stream skips; residual ``2 tanh(r) * 0.1 * mask``;
- the 1024 path (the official test script): the whole 256 px transfer runs on downsampled
  copies, then the flow grid and the mask are upsampled (bilinear / nearest), the raw
  1024 exemplar is warped and blended; the refinement residual is not applied at 1024.

Weights are random, so only the cost (parameters, FLOPs, latency) means anything. Its
parameter count, 2,903,558, and FLOPs match the issue's figures for the official
generator (2.90 M, 14.6 GFLOPs), which checks the rebuild.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_norm_relu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.InstanceNorm2d(conv.out_channels), nn.ReLU())


class OfficialEncoder(nn.Module):
    """Reflect-pad 3 + 7x7 conv, then stride-2 3x3 convs; features at every scale."""

    def __init__(self, in_channels: int, ngf: int = 16, n_downsample: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [nn.Sequential(nn.ReflectionPad2d(3), conv_norm_relu(nn.Conv2d(in_channels, ngf, 7)))]
            + [
                conv_norm_relu(nn.Conv2d(ngf * 2**i, ngf * 2 ** (i + 1), 3, stride=2, padding=1))
                for i in range(n_downsample)
            ]
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class OfficialDecoder(nn.Module):
    """Per level: cat(deeper, skip), bilinear x2, 1x1 conv, reflect-pad 3x3 conv, IN, ReLU;
    then a zero-padded 7x7 conv over cat(output, full-resolution skip)."""

    def __init__(self, out_channels: int, ngf: int, n_upsample: int, skip_factor: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        for i in range(n_upsample):
            wide, narrow = ngf * 2 ** (n_upsample - i), ngf * 2 ** (n_upsample - i - 1)
            self.levels.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear"),
                    nn.Conv2d(wide * skip_factor, narrow, 1),
                    nn.ReflectionPad2d(1),
                    conv_norm_relu(nn.Conv2d(narrow, narrow, 3)),
                )
            )
        self.output = nn.Conv2d(ngf * skip_factor, out_channels, 7, padding=3)

    def forward(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        for level, skip in zip(self.levels, reversed(skips[1:])):
            x = level(torch.cat([x, skip], 1))
        return self.output(torch.cat([x, skips[0]], 1))


class OfficialResBlock(nn.Module):
    """pix2pixHD residual block: two reflect-padded 3x3 convs with instance norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            conv_norm_relu(nn.Conv2d(channels, channels, 3)),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class OfficialTwoStream(nn.Module):
    """Flow or mask network: shared encoder on both inputs, bottleneck, ResBlocks, decoder."""

    def __init__(
        self, out_channels: int, ngf: int = 16, n_downsample: int = 3, n_blocks: int = 3
    ) -> None:
        super().__init__()
        deep = ngf * 2**n_downsample
        self.encoder = OfficialEncoder(3, ngf, n_downsample)
        self.bottleneck = nn.Sequential(
            conv_norm_relu(nn.Conv2d(2 * deep, deep, 3, padding=1)),
            *(OfficialResBlock(deep) for _ in range(n_blocks)),
        )
        self.decoder = OfficialDecoder(out_channels, ngf, n_downsample, skip_factor=3)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        skips = [torch.cat(pair, 1) for pair in zip(self.encoder(a), self.encoder(b))]
        return self.decoder(self.bottleneck(skips[-1]), skips)


class OfficialGenerator(nn.Module):
    """The official transfer path: flow, mask and refinement networks (removal F excluded)."""

    def __init__(self, ngf: int = 16, n_downsample: int = 3, n_blocks: int = 3) -> None:
        super().__init__()
        self.image_size = 256
        self.flow_net = OfficialTwoStream(2, ngf, n_downsample, n_blocks)
        self.mask_net = OfficialTwoStream(1, ngf, n_downsample, n_blocks)
        self.refine_encoder = OfficialEncoder(4, ngf, n_downsample)
        self.refine_decoder = OfficialDecoder(3, ngf, n_downsample, skip_factor=2)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Transfer at 256 px, or through the official 1024 path for larger inputs."""
        full_a, full_b = a, b
        if a.shape[-1] != self.image_size:
            size = (self.image_size, self.image_size)
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
        flow = self.flow_net(a, b) / 10
        mask = torch.sigmoid(self.mask_net(a, b))
        grid = identity(flow) + flow
        warped = F.grid_sample(b, grid.permute(0, 2, 3, 1), align_corners=False)
        blended = mask * warped + (1 - mask) * a
        skips = self.refine_encoder(torch.cat([blended, mask], 1))
        residual = 2 * torch.tanh(self.refine_decoder(skips[-1], skips)) * 0.1 * mask
        image = (blended + residual).clamp(-1, 1)
        if full_a is a:
            return image
        # the official 1024 test: the 256 px result is computed, then recomposed at 1024
        grid = F.interpolate(grid, size=full_a.shape[-2:], mode="bilinear")
        warped = F.grid_sample(full_b, grid.permute(0, 2, 3, 1), align_corners=False)
        mask = F.interpolate(mask, size=full_a.shape[-2:], mode="nearest")
        return mask * warped + (1 - mask) * full_a


def identity(flow: Tensor) -> Tensor:
    """Identity grid ``(N, 2, H, W)`` (x, y) from -1 to 1 at the corner pixels' centres, as the
    official code builds it (the package's own convention is ``align_corners=False``)."""
    n, _, h, w = flow.shape
    ys = torch.linspace(-1, 1, h, dtype=flow.dtype)
    xs = torch.linspace(-1, 1, w, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy])[None].expand(n, -1, -1, -1)
