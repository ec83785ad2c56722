import torch
import torch.nn.functional as F

import softmaxloss


def test_every_registered_impl_matches_float64_reference():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 10, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 10, (16,), generator=gen)
    ref_x = x.clone().requires_grad_(True)
    ref = F.cross_entropy(ref_x, t)
    ref.backward()
    for name, fn in softmaxloss.IMPLEMENTATIONS.items():
        xi = x.clone().requires_grad_(True)
        loss = fn(xi, t)
        loss.backward()
        assert abs(float(loss) - float(ref)) < 1e-13, name
        assert torch.allclose(xi.grad, ref_x.grad, rtol=0, atol=1e-15), name
