"""Generator and critic of the WGAN-GP (spec §4) and the WGAN-GP losses (Eq. 3).

Images are (B, 5, 60, 60) in [-1, 1] (uint8 data scaled x / 127.5 - 1). `width` scales every layer;
width 64 is the spec §4 network (G: 256-128-64 feature maps, D: 64-128-256), small widths give slim nets
for CPU tests. Weights are initialised from a `torch.Generator` (PyTorch's default init laws), so the same
seed gives the same networks for the Bernoulli and the QCBM model.
"""
from __future__ import annotations

import math

import torch
from torch import nn

CHANNELS = 5
SIZE = 60


class Generator(nn.Module):
    """G: z (B, n) -> image (B, 5, 60, 60) in [-1, 1].

    Linear(n, 4w*15*15) -> (4w,15,15) -> BN -> ReLU -> ConvT(4w,2w,4,2,1) 30x30 -> BN -> ReLU
    -> ConvT(2w,w,4,2,1) 60x60 -> BN -> ReLU -> Conv(w,5,3,1,1) -> tanh.
    """

    def __init__(self, n_latent: int, width: int = 64, channels: int = CHANNELS) -> None:
        super().__init__()
        w = int(width)
        self.n_latent = int(n_latent)
        self.width = w
        self.fc = nn.Linear(self.n_latent, 4 * w * 15 * 15)
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], 4 * self.width, 15, 15)
        return self.net(h)


class Critic(nn.Module):
    """D (critic, no BatchNorm because of the per-sample gradient penalty): (B, 5, 60, 60) -> (B,) scores.

    Conv(5,w,4,2,1) 30x30 -> LReLU(0.2) -> Conv(w,2w,4,2,1) 15x15 -> LReLU -> Conv(2w,4w,3,2,1) 8x8
    -> LReLU -> Flatten -> Linear(4w*8*8, 1), no sigmoid.
    """

    def __init__(self, width: int = 64, channels: int = CHANNELS) -> None:
        super().__init__()
        w = int(width)
        self.width = w
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(4 * w * 8 * 8, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every Linear/Conv/ConvTranspose/BatchNorm of `module` from `generator`.

    Same laws as PyTorch's defaults (kaiming_uniform(a=sqrt(5)) weights, U(+-1/sqrt(fan_in)) biases,
    BN weight 1 bias 0), but drawn in module order from the given generator, not from global state.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


def build_models(n_latent: int, width: int, generator: torch.Generator) -> tuple[Generator, Critic]:
    """G and D initialised from `generator` (G first, then D)."""
    g = Generator(n_latent, width)
    d = Critic(width)
    init_weights(g, generator)
    init_weights(d, generator)
    return g, d


def critic_loss(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
    gp_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """WGAN-GP critic loss (Eq. 3): L_D = mean D(fake) - mean D(real) + lambda mean (||grad D(x_hat)|| - 1)^2.

    real, fake: (B, 5, 60, 60) (fake detached); eps: (B,) uniforms in [0, 1] for x_hat = eps x + (1 - eps) x~.
    One critic forward over [real, fake] (valid: the critic has no batch statistics) and a separate one over
    x_hat, so that the penalty's double backward runs over B samples only (putting x_hat in the same batch
    makes the input-gradient pass, and its backward, cover all 3B samples: about 2x slower on CPU).
    Returns (loss_d, wasserstein = mean D(real) - mean D(fake), gp), the last two detached.
    """
    b = real.shape[0]
    e = eps.to(real.dtype).view(b, 1, 1, 1)
    x_hat = (e * real + (1.0 - e) * fake).requires_grad_(True)
    out = critic(torch.cat([real, fake], 0))
    d_real, d_fake = out[:b], out[b:]
    d_hat = critic(x_hat)
    (grad,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
    gp = ((grad.reshape(b, -1).norm(2, dim=1) - 1.0) ** 2).mean()
    w = d_real.mean() - d_fake.mean()
    loss = -w + gp_lambda * gp
    return loss, w.detach(), gp.detach()


def generator_loss(critic: Critic, fake: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss (Eq. 3 / Eq. 6): L_G = -mean D(G(z))."""
    return -critic(fake).mean()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (B, 5, 60, 60) -> uint8 0..255 on CPU."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu()


def critic_step(critic: Critic, opt_d: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor,
                eps: torch.Tensor, gp_lambda: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step of the critic on Eq. 3 (see critic_loss); returns (loss_d, wasserstein, gp), detached."""
    loss_d, w, gp = critic_loss(critic, real, fake, eps, gp_lambda)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    return loss_d.detach(), w, gp


def generator_step(generator: nn.Module, critic: Critic, opt_g: torch.optim.Optimizer,
                   z: torch.Tensor) -> torch.Tensor:
    """One Adam step of the generator on L_G = -mean D(G(z)) (Eq. 3), critic weights frozen; returns L_G."""
    critic.requires_grad_(False)
    loss_g = generator_loss(critic, generator(z))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    critic.requires_grad_(True)
    return loss_g.detach()
