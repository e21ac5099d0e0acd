"""The one EMA (timm's ModelEmaV3): StyleGAN2-ADA's half-life schedule for the GAN, diffusers' warm-up for the DDPM."""

from __future__ import annotations

import pytest
import torch

from xaug.engine.generators.ema import HalfLifeEma, warmup_ema


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.register_buffer("avg", torch.zeros(2))


def _perturb(net: torch.nn.Module, step: int) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(step)))
        net.avg.fill_(float(step))


def test_half_life_ema_is_stylegan2_ada_semantics():
    torch.manual_seed(0)
    net = _Net()
    ema = HalfLifeEma(net, half_life_kimg=0.01, batch_size=4, rampup=0.05)  # half-life 10 images
    expected = {k: v.clone() for k, v in net.named_parameters()}
    for step in range(1, 80):
        _perturb(net, step)
        # StyleGAN2-ADA (training_loop.py): ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup),
        # ema_beta = 0.5 ** (batch_size / ema_nimg); p_ema = p.lerp(p_ema, ema_beta); buffers copied.
        beta = 0.5 ** (4 / max(min(10.0, step * 4 * 0.05), 1e-8))
        assert ema.get_decay(step) == pytest.approx(beta)
        for name, p in net.named_parameters():
            expected[name] = p.detach().lerp(expected[name], beta)
        ema.update(net, step=step)
    for name, p in ema.module.named_parameters():
        torch.testing.assert_close(p, expected[name], rtol=1e-5, atol=1e-6)
    assert ema.module.avg.tolist() == [79.0, 79.0]  # buffers copied, not averaged
    assert ema.get_decay(10_000) == pytest.approx(0.5 ** (4 / 10))  # ramp-up over: the configured half-life
    assert not any(p.requires_grad for p in ema.parameters())


def test_warmup_ema_matches_diffusers_ema_model():
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    net = _Net()
    ours = warmup_ema(net, decay=0.99, power=0.75)
    theirs = EMAModel(net.parameters(), decay=0.99, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    for step in range(1, 30):
        _perturb(net, step)
        ours.update(net, step=step)
        theirs.step(net.parameters())
        assert ours.get_decay(step) == pytest.approx(theirs.cur_decay_value)
    for mine, shadow in zip(ours.module.parameters(), theirs.shadow_params):
        torch.testing.assert_close(mine, shadow, rtol=1e-5, atol=1e-6)
    assert ours.get_decay(1_000_000) == 0.99
