r"""ProtoCLR (Medina, Devos and Grossglauser, 2020): Prototypical Networks trained without labels.

Each training episode is made of :math:`N` distinct *unlabelled* images drawn from the whole
training set; each is its own class, with one augmented copy in the support set and
:math:`Q` others in the query set (:class:`~fslearn.data.contrastive.ContrastiveEpisodeSampler`,
ProtoTransfer's Omniglot augmentation). The loss is Prototypical Networks' cross-entropy over
squared Euclidean distances to the prototypes, so the network learns to map copies of one image
together and different images apart: a contrastive loss in the form of a few-shot episode. At
test time it is a Prototypical Network on labelled episodes (ProtoTransfer's "ProtoTune"
fine-tuning, a linear head initialised from the prototypes, is not part of this module).

Their Omniglot setting, as their code runs it (indy-lab/ProtoTransfer, ``omni-mini/``:
``experiments/protoclr_omniglot.sh``, ``prototransfer/train.py``, ``unlabelled_loader.py``):
Conv4 (64-d embedding, no projection head), 28x28 images scaled to [0, 1]; the images of the
Vinyals training *and* validation characters (1,200 characters, 24,000 drawings, no rotations:
``--train-split trainval --no-rotations`` here), labels unused; episodes of N = 50 images,
each with 1 support copy that is the image itself (``--no_aug_support``) and 3 augmented query
copies, all 200 images in one forward pass; Adam at 1e-3 without weight decay, halved every
25,000 episodes; up to 10^6 episodes, stopped after 20,000 without a better training accuracy,
and the checkpoint with the best training accuracy kept (no validation). Here the run's length
is fixed in advance and the final weights are kept (``--val-every 0``). Their test episodes are
those of this package: Vinyals's test characters with rotations, 15 queries per class, plain
prototypes (their fine-tuning, "ProtoTune", is in their 20-way 5-shot script only).

Published (Omniglot, Conv4, no labels, 5-way 1-shot / 5-shot): ProtoTransfer 88.00 / 96.48,
UMTRA 83.80 / 95.43, CACTUs-ProtoNets 68.12 / 83.58 (:attr:`ProtoCLR.paper_figures`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from fslearn.data.contrastive import ContrastiveEpisodeSampler
from fslearn.data.dataset import FewShotDataset
from fslearn.methods.options import Option
from fslearn.methods.protonet import PrototypicalNetwork
from fslearn.results import PaperFigures
from fslearn.training_config import TrainingConfig

__all__ = ["ProtoCLR"]


class ProtoCLR(PrototypicalNetwork):
    """A Prototypical Network pre-trained on episodes of augmented unlabelled images.

    ``--way`` sets the images per training episode, ``--shot`` and ``--query`` the augmented
    copies of each in the support and query sets; the dataset's labels are never read in
    training (validation episodes are labelled, as in ProtoTransfer's model selection).

    Args:
        backbone: the embedding network; a :class:`~fslearn.backbones.Conv4` when omitted.
        in_channels: image channels for the default backbone.
    """

    name = "protoclr"
    cli_options = (
        Option(("--augment-support",), "augment the support copies too (default: only the "
               "queries, the support copy is the image itself, as in ProtoTransfer's Omniglot "
               "runs)", flag=True, constructor=False),
    )
    sampler_settings = ("augment_support",)
    #: ProtoTransfer's Omniglot batches: 50 images, 1 clean support and 3 augmented query
    #: copies each
    training_defaults = MappingProxyType({
        "n_way": 50, "k_shot": 1, "n_query": 3,
        "sampler": MappingProxyType({"augment_support": False})})
    #: Omniglot, Conv4, no labels in training, 5-way 1-shot / 5-shot (20-way not set beside it:
    #: the figures we could check are 5-way): Medina et al. (2020), as tabulated in the
    #: ojss/c3lr README; UMTRA (Khodadadeh et al. 2019) and CACTUs-ProtoNets (Hsu et al. 2019)
    #: from the same table, for reference
    paper_figures = MappingProxyType({
        "classification": PaperFigures(
            "Medina, Devos and Grossglauser (2020), Self-Supervised Prototypical Transfer "
            "Learning for Few-Shot Classification (ProtoTransfer), Omniglot, Conv4, no labels "
            "in training",
            {(5, 1): 0.8800, (5, 5): 0.9648}),
        "unsupervised": PaperFigures(
            "UMTRA: Khodadadeh, Boloni and Shah (2019), NeurIPS; CACTUs-ProtoNets: Hsu, Levine "
            "and Finn (2019), ICLR; Omniglot 5-way, Conv4, as tabulated with ProtoTransfer",
            table={"umtra": {(5, 1): 0.8380, (5, 5): 0.9543},
                   "cactus_protonets": {(5, 1): 0.6812, (5, 5): 0.8358}}),
    })

    def __init__(self, backbone: nn.Module | None = None, in_channels: int = 1) -> None:
        super().__init__(backbone, in_channels)

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """``50img-1s3q``, ``50 unlabelled images per episode, 1 + 3 augmented copies``."""
        return (f"{config.n_way}img-{config.k_shot}s{config.n_query}q",
                f"{config.n_way} unlabelled images per episode, {config.k_shot} + "
                f"{config.n_query} augmented copies")

    def training_sampler(self, data: Any, config: TrainingConfig) -> ContrastiveEpisodeSampler:
        """Episodes of the training images' augmented copies; only ``data.images`` is given
        to the sampler, so no label can be used."""
        if not isinstance(data, FewShotDataset):
            raise ValueError(f"{self.name} learns from images, not from {type(data).__name__}: "
                             f"train it on an image dataset.")
        return ContrastiveEpisodeSampler(
            data.images, config.n_way, config.k_shot, config.n_query,
            tasks=config.batch_size or 1, seed=config.seed,
            augment_support=bool(config.sampler.get("augment_support", False)))
