r"""Prototypical Networks with hallucinated examples (after Wang et al., 2018).

Wang, Girshick, Hebert and Hariharan (2018), "Low-Shot Learning from Imaginary Data". A 1-shot
support set gives each class one embedded example :math:`f_\theta(x)`. A *hallucinator*
:math:`G_\psi` turns it into :math:`M` more, from noise vectors :math:`\epsilon_1 \dots
\epsilon_M`:

.. math:: \tilde z_m = f_\theta(x) + G_\psi\big([f_\theta(x), \epsilon_m]\big),
          \qquad \epsilon_m \sim \mathcal N(0, I),

and each prototype is the mean over the class's real and hallucinated embeddings. The
hallucinator is trained with the embedding, end to end, by the Prototypical Networks loss on
the queries: it learns to produce whatever examples make the prototypes classify better, not
examples that look real (Wang et al.'s "meta-learned" hallucination). Here :math:`G_\psi` is a
small multi-layer perceptron that outputs a residual, so that at initialisation the
hallucinations sit near their seed and training starts as a Prototypical Network does.

In training the noise is drawn afresh for every support image; at test time each support image
gets the same :math:`M` fixed noise vectors (drawn once from the model's seed and saved with
it), so that an evaluation is a function of the weights and the episodes only.

Wang et al. report ImageNet low-shot figures only (up to 6 points in top-5 accuracy with one or
two examples per class); the chapter sets the result beside DAGAN's Omniglot figure
(Antoniou et al., 2017), a generator of images rather than of embeddings.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fslearn.backbones import Conv4
from fslearn.methods.options import Option
from fslearn.methods.protonet import PrototypicalNetwork, prototypes, squared_euclidean_distance

__all__ = ["HallucinatingPrototypes", "Hallucinator"]


class Hallucinator(nn.Module):
    """:math:`G_\\psi`: ``[..., D]`` embeddings and ``[..., noise]`` noise -> ``[..., D]``
    residuals, by a two-hidden-layer perceptron with leaky ReLUs (Wang et al.'s form, smaller).
    The last layer starts at zero, so that a new model's hallucinations equal their seed."""

    def __init__(self, features: int, noise: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features + noise, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, features))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z: Tensor, noise: Tensor) -> Tensor:
        return self.net(torch.cat([z, noise], dim=-1))


class HallucinatingPrototypes(PrototypicalNetwork):
    """A Prototypical Network whose prototypes also average ``hallucinations`` generated
    embeddings per support image.

    Args:
        backbone: the embedding network; a :class:`~fslearn.backbones.Conv4` with
            ``in_channels`` input channels when omitted (its embedding has ``features``
            dimensions).
        in_channels: image channels for the default backbone.
        hallucinations: :math:`M`, generated embeddings per support image (0: a plain
            Prototypical Network with an unused hallucinator).
        features: the embedding's dimension (64 for Conv4 on 28x28 images).
        noise: the dimension of the noise vectors.
        hidden: the hallucinator's hidden width.
    """

    name = "hallucination"
    # no paper_figures: Wang et al. report ImageNet only, and DAGAN's Omniglot figure is
    # another method's (the chapter sets it beside ours)
    cli_options = (
        Option(("--hallucinations",), "generated embeddings per support image (M)", type=int,
               metavar="M"),
    )

    def __init__(self, backbone: nn.Module | None = None, in_channels: int = 1,
                 hallucinations: int = 4, features: int = 64, noise: int = 64,
                 hidden: int = 128) -> None:
        for name, value, low in (("hallucinations", hallucinations, 0), ("features", features, 1),
                                 ("noise", noise, 1), ("hidden", hidden, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
        super().__init__(backbone if backbone is not None else Conv4(in_channels), in_channels)
        self.hallucinator = Hallucinator(features, noise, hidden)
        # the test-time noise: fixed, saved with the weights
        self.register_buffer("test_noise", torch.randn(hallucinations, noise))
        self.hallucinations = hallucinations
        self.hparams = {"in_channels": in_channels, "hallucinations": hallucinations,
                        "features": features, "noise": noise, "hidden": hidden}

    def hallucinate(self, support_z: Tensor) -> Tensor:
        """``support_z: [tasks, n_support, D]`` -> ``[tasks, n_support, M, D]``: the generated
        embeddings of each support image (fresh noise in training, the fixed noise in
        evaluation)."""
        tasks, n_support, features = support_z.shape
        if features != self.hparams["features"]:
            raise ValueError(f"{self.name} was built for {self.hparams['features']}-dimensional "
                             f"embeddings, but its backbone gives {features}: build it with "
                             f"features={features}.")
        if self.training:
            noise = torch.randn(tasks, n_support, *self.test_noise.shape,
                                device=support_z.device, dtype=support_z.dtype)
        else:
            noise = self.test_noise.to(support_z.dtype).expand(tasks, n_support, -1, -1)
        seeds = support_z.unsqueeze(2).expand(-1, -1, self.hallucinations, -1)
        return seeds + self.hallucinator(seeds, noise)

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Negative squared distances ``[tasks, n_query_total, n_way]`` of the queries to
        prototypes averaged over each class's real and hallucinated embeddings."""
        if self.hallucinations == 0:
            return super().scores(support_z, support_y, query_z, n_way)
        generated = self.hallucinate(support_z).flatten(1, 2)  # [tasks, n_support * M, D]
        every_z = torch.cat([support_z, generated], dim=1)
        every_y = torch.cat([support_y, support_y.repeat_interleave(self.hallucinations, dim=1)],
                            dim=1)
        return -squared_euclidean_distance(query_z, prototypes(every_z, every_y, n_way))

