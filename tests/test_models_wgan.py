"""Generator / critic shapes, seeded init, and the WGAN-GP losses (Eq. 3)."""
import torch
from torch import nn

from qgan.models import Critic, Generator, build_models, critic_loss, generator_loss, to_uint8


def test_generator_and_critic_shapes_and_ranges():
    g, d = build_models(6, 4, torch.Generator().manual_seed(0))
    z = (torch.rand(3, 6) < 0.5).float()
    x = g(z)
    assert x.shape == (3, 5, 60, 60)
    assert float(x.detach().abs().max()) <= 1.0
    assert d(x).shape == (3,)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


def test_width_64_is_the_spec_network():
    g, d = Generator(12, 64), Critic(64)
    assert g.fc.out_features == 256 * 15 * 15
    convs = [m for m in g.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(256, 128), (128, 64), (64, 5)]
    dconvs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in dconvs] == [(5, 64), (64, 128), (128, 256)]
    assert d.net[-1].in_features == 256 * 8 * 8


def test_same_generator_seed_gives_identical_weights_and_other_seed_differs():
    a = build_models(5, 4, torch.Generator().manual_seed(7))
    b = build_models(5, 4, torch.Generator().manual_seed(7))
    c = build_models(5, 4, torch.Generator().manual_seed(8))
    for ma, mb, mc in zip(a, b, c):
        sa, sb, sc = ma.state_dict(), mb.state_dict(), mc.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_critic_loss_matches_the_unbatched_gradient_penalty_formula():
    torch.manual_seed(0)
    _, d = build_models(4, 4, torch.Generator().manual_seed(1))
    real = torch.rand(4, 5, 60, 60) * 2 - 1
    fake = torch.rand(4, 5, 60, 60) * 2 - 1
    eps = torch.tensor([0.1, 0.5, 0.9, 0.3])
    loss, w, gp = critic_loss(d, real, fake, eps, 10.0)
    # reference: separate forward passes, per-sample gradient norms
    xh = (eps.view(4, 1, 1, 1) * real + (1 - eps.view(4, 1, 1, 1)) * fake).requires_grad_(True)
    (gr,) = torch.autograd.grad(d(xh).sum(), xh)
    gp_ref = ((gr.flatten(1).norm(dim=1) - 1) ** 2).mean()
    w_ref = d(real).mean() - d(fake).mean()
    torch.testing.assert_close(gp, gp_ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w, w_ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.detach(), (-w_ref + 10 * gp_ref).detach(), rtol=1e-5, atol=1e-6)
    loss.backward()  # differentiable through the penalty (double backward)
    assert all(p.grad is not None for p in d.parameters())
    torch.testing.assert_close(generator_loss(d, fake), -d(fake).mean())


def test_to_uint8_maps_minus_one_one_to_0_255():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 4, 1, 1)
    assert to_uint8(x).flatten().tolist() == [0, 128, 255, 255]
