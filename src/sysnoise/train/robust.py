"""The general robustness methods the paper set against mix training (its Fig. 4): standard
augmentation and adversarial training, as options of `sysnoise train --robust NAME`.

- augmentation (torchvision.transforms.v2, their default settings): `randaugment`
  (RandAugment: 2 ops, magnitude 9) and `augmix` (AugMix: severity 3, width 3, alpha 1), drawn
  per image on the uint8 pixels the training pipeline produced, before normalisation;
- adversarial training at a small L-inf epsilon in pixel units (2/255 of the range): `fgsm`
  (FGSM with a random start and step 1.25 eps, Wong et al. 2020, "Fast is better than free")
  and `pgd` (3 steps of 2.5 eps / 3 from a random start, Madry et al. 2018); the loss is taken
  on the adversarial batch only, as both papers do. Pixels stay inside [0, 255].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sysnoise.registry import Registry

ROBUSTNESS: Registry = Registry("robustness method")


@dataclass(frozen=True)
class Method:
    kind: str  # "augment" | "adversarial"
    transform: str | None = None  # torchvision.transforms.v2 class name
    epsilon: float = 0.0  # L-inf radius in [0, 1] pixel units
    steps: int = 0
    step_size: float = 0.0  # in [0, 1] pixel units

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, 0, 0.0)}


EPSILON = 2 / 255
ROBUSTNESS.register("randaugment", "RandAugment (torchvision v2 defaults: 2 ops, magnitude 9) per image")(
    Method("augment", "RandAugment")
)
ROBUSTNESS.register("augmix", "AugMix (torchvision v2 defaults: severity 3, width 3, alpha 1) per image")(
    Method("augment", "AugMix")
)
ROBUSTNESS.register("fgsm", "FGSM adversarial training, eps 2/255, random start, step 1.25 eps (Wong et al. 2020)")(
    Method("adversarial", epsilon=EPSILON, steps=1, step_size=1.25 * EPSILON)
)
ROBUSTNESS.register("pgd", "PGD adversarial training, eps 2/255, 3 steps of 2.5 eps / 3, random start (Madry et al.)")(
    Method("adversarial", epsilon=EPSILON, steps=3, step_size=2.5 * EPSILON / 3)
)


def augment(method: Method, images):
    """uint8 NHWC numpy -> uint8 NHWC numpy, each image through its own draw of the transform
    (torch's RNG)."""
    import torch
    from torchvision.transforms import v2

    transform = getattr(v2, method.transform)()
    batch = torch.as_tensor(images).permute(0, 3, 1, 2)
    # one call per image: a v2 transform given a batch applies one draw to all of it
    return torch.stack([transform(image) for image in batch]).permute(0, 2, 3, 1).numpy()


def adversarial(method: Method, net, x, y, loss_fn, mean, std):
    """An adversarial copy of the normalised batch x ((pixels - mean) / std, pixels in 0..255):
    L-inf radius method.epsilon in [0, 1] pixel units, the result kept inside the valid pixel range.
    The attack runs with the network in eval mode, so BatchNorm's running statistics stay put."""
    import torch

    std = torch.as_tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    mean = torch.as_tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    radius, step = method.epsilon * 255.0 / std, method.step_size * 255.0 / std
    low, high = -mean / std, (255.0 - mean) / std
    delta = (torch.rand_like(x) * 2 - 1) * radius
    was_training = net.training
    net.eval()
    for _ in range(method.steps):
        delta.requires_grad_(True)
        loss = loss_fn(net(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = torch.maximum(torch.minimum(delta.detach() + step * grad.sign(), radius), -radius)
    net.train(was_training)
    return torch.maximum(torch.minimum(x + delta.detach(), high), low)
