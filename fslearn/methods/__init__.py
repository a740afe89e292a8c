"""Few-shot methods, all behind :class:`FewShotMethod`, and a registry by name."""

from __future__ import annotations

from dataclasses import fields

from fslearn.methods.base import FewShotMethod, MetricMethod
from fslearn.methods.baseline import Baseline, BaselinePlusPlus
from fslearn.methods.gnn import GraphNeuralNetwork
from fslearn.methods.hallucination import HallucinatingPrototypes
from fslearn.methods.inner_loop import InnerLoopMethod
from fslearn.methods.maml import ANIL, MAML, FirstOrderMAML, MetaSGD, PretrainedBaseline, adapt
from fslearn.methods.mann import MANN, LSTMBaseline
from fslearn.methods.matching import MatchingNetwork
from fslearn.methods.metalstm import MetaLSTM
from fslearn.methods.options import declared_options
from fslearn.methods.pixel_nn import PixelNearestNeighbour
from fslearn.methods.protoclr import ProtoCLR
from fslearn.methods.protonet import PrototypicalNetwork
from fslearn.methods.r2d2 import R2D2
from fslearn.methods.relation import RelationNetwork
from fslearn.methods.reptile import Reptile
from fslearn.methods.semi_supervised import SemiSupervisedPrototypes
from fslearn.methods.sequence import SequenceMethod
from fslearn.methods.siamese import SiameseNetwork
from fslearn.methods.snail import SNAIL
from fslearn.results import STANDARD_SETTINGS, PaperFigures
from fslearn.training_config import TrainingConfig

__all__ = [
    "ANIL",
    "MAML",
    "MANN",
    "METHODS",
    "R2D2",
    "SNAIL",
    "Baseline",
    "BaselinePlusPlus",
    "FewShotMethod",
    "FirstOrderMAML",
    "GraphNeuralNetwork",
    "HallucinatingPrototypes",
    "InnerLoopMethod",
    "LSTMBaseline",
    "MatchingNetwork",
    "MetaLSTM",
    "MetaSGD",
    "MetricMethod",
    "PretrainedBaseline",
    "ProtoCLR",
    "PrototypicalNetwork",
    "RelationNetwork",
    "Reptile",
    "SemiSupervisedPrototypes",
    "SequenceMethod",
    "SiameseNetwork",
    "adapt",
    "build_method",
    "register",
]

#: methods that ``fslearn train <name>`` and checkpoints know by name, in registration order
#: (the order in which messages and help list them); add one with :func:`register`
METHODS: dict[str, type[FewShotMethod]] = {}


def register(method: type[FewShotMethod]) -> type[FewShotMethod]:
    """Make ``method`` known by its ``name`` to ``fslearn train``, ``evaluate``, ``report``,
    ``predict`` and checkpoints; returns it, so it can decorate the class.

    The command line is built from the registry when it runs, so one call is all a new method
    needs (see CONTRIBUTING.md and tests/test_new_method.py).

    Raises:
        ValueError: no ``name``, a name another class holds, options that clash with the
            registered methods' (:func:`~fslearn.methods.options.declared_options`), or
            ``training_defaults`` naming no training setting (a misspelt or old field would
            otherwise be ignored without a word), or ``paper_figures`` that are not
            :class:`~fslearn.results.PaperFigures` or whose N-way K-shot figures are not
            fractions of the standard settings.
    """
    if not method.name:
        raise ValueError(f"{method.__name__} has no name: set the class attribute name, the "
                         f"word of `fslearn train <name>`.")
    if METHODS.get(method.name, method) is not method:
        raise ValueError(f"{method.name!r} is already the name of "
                         f"{METHODS[method.name].__name__}; choose another one.")
    declared_options([*METHODS.values(), method])  # raises on a clash
    settings = {f.name for f in fields(TrainingConfig)} | {"image_size"}
    unknown = sorted(set(method.training_defaults) - settings)
    if unknown:
        raise ValueError(f"{method.__name__}.training_defaults names {', '.join(unknown)}, "
                         f"which no run has: use TrainingConfig's fields "
                         f"({', '.join(sorted(settings))}).")
    _check_paper_figures(method)
    METHODS[method.name] = method
    return method


def _check_paper_figures(method: type[FewShotMethod]) -> None:
    """Refuse a ``paper_figures`` declaration that ``fslearn report`` would misread: a value
    that is not a :class:`~fslearn.results.PaperFigures`, or N-way K-shot figures outside the
    standard settings or not fractions."""
    for kind, declared in vars(method).get("paper_figures", {}).items():
        if not isinstance(declared, PaperFigures):
            raise ValueError(f"{method.__name__}.paper_figures[{kind!r}] is a "
                             f"{type(declared).__name__}: declare PaperFigures(citation, "
                             f"figures) (fslearn.results).")
        if kind != "classification":
            continue
        for setting, accuracy in declared.figures.items():
            if setting not in STANDARD_SETTINGS or not 0 < accuracy <= 1:
                raise ValueError(f"{method.__name__}.paper_figures['classification'] has "
                                 f"{setting!r}: {accuracy!r}; use (n_way, k_shot) among "
                                 f"{list(STANDARD_SETTINGS)} and accuracies as fractions "
                                 f"(0.988, not 98.8).")


for _method in (PrototypicalNetwork, MatchingNetwork, RelationNetwork, GraphNeuralNetwork,
                PixelNearestNeighbour, R2D2, MAML, FirstOrderMAML, MetaSGD, ANIL, Reptile,
                MetaLSTM, PretrainedBaseline, MANN, LSTMBaseline, SNAIL, SiameseNetwork, Baseline,
                BaselinePlusPlus, SemiSupervisedPrototypes, ProtoCLR, HallucinatingPrototypes):
    register(_method)
del _method


def build_method(name: str, **hparams: object) -> FewShotMethod:
    """A new method by its registered name, e.g. ``build_method("protonet", in_channels=1)``."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; available: {', '.join(sorted(METHODS))}.")
    return METHODS[name](**hparams)
