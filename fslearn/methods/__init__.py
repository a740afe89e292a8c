"""Few-shot methods, all behind :class:`FewShotMethod`, and a registry by name."""

from __future__ import annotations

from fslearn.methods.base import FewShotMethod, MetricMethod
from fslearn.methods.baseline import Baseline, BaselinePlusPlus
from fslearn.methods.inner_loop import InnerLoopMethod
from fslearn.methods.maml import ANIL, MAML, FirstOrderMAML, MetaSGD, PretrainedBaseline, adapt
from fslearn.methods.mann import MANN, LSTMBaseline
from fslearn.methods.matching import MatchingNetwork
from fslearn.methods.pixel_nn import PixelNearestNeighbour
from fslearn.methods.protonet import PrototypicalNetwork
from fslearn.methods.relation import RelationNetwork
from fslearn.methods.reptile import Reptile
from fslearn.methods.sequence import SequenceMethod
from fslearn.methods.siamese import SiameseNetwork

__all__ = [
    "ANIL",
    "MAML",
    "MANN",
    "METHODS",
    "Baseline",
    "BaselinePlusPlus",
    "FewShotMethod",
    "FirstOrderMAML",
    "InnerLoopMethod",
    "LSTMBaseline",
    "MatchingNetwork",
    "MetaSGD",
    "MetricMethod",
    "PretrainedBaseline",
    "PrototypicalNetwork",
    "RelationNetwork",
    "Reptile",
    "SequenceMethod",
    "SiameseNetwork",
    "adapt",
    "build_method",
]

#: methods that ``fslearn train <name>`` and checkpoints know by name
METHODS: dict[str, type[FewShotMethod]] = {
    PrototypicalNetwork.name: PrototypicalNetwork,
    MatchingNetwork.name: MatchingNetwork,
    RelationNetwork.name: RelationNetwork,
    PixelNearestNeighbour.name: PixelNearestNeighbour,
    MAML.name: MAML,
    FirstOrderMAML.name: FirstOrderMAML,
    MetaSGD.name: MetaSGD,
    ANIL.name: ANIL,
    Reptile.name: Reptile,
    PretrainedBaseline.name: PretrainedBaseline,
    MANN.name: MANN,
    LSTMBaseline.name: LSTMBaseline,
    SiameseNetwork.name: SiameseNetwork,
    Baseline.name: Baseline,
    BaselinePlusPlus.name: BaselinePlusPlus,
}


def build_method(name: str, **hparams: object) -> FewShotMethod:
    """A new method by its registered name, e.g. ``build_method("protonet", in_channels=1)``."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; available: {', '.join(sorted(METHODS))}.")
    return METHODS[name](**hparams)
