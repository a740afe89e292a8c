r"""Model-agnostic meta-learning (Finn, Abbeel and Levine, 2017) and its first-order, Meta-SGD
and ANIL variants, and the paper's fine-tuned baseline.

For each task, the inner loop adapts the parameters :math:`\theta` to the support set with a few
gradient steps,

.. math:: \theta'_0 = \theta, \qquad
          \theta'_{s+1} = \theta'_s - \alpha \odot \nabla_{\theta'} \mathcal{L}_{S}(\theta'_s),

and the outer loop moves :math:`\theta` to lower the query loss of the adapted parameters summed
over the tasks, :math:`\sum_\tau \mathcal{L}_{Q_\tau}(\theta'_{S}(\theta))`. Its gradient
differentiates through the inner steps (second order). The variants:

* **first-order MAML** treats each inner gradient as a constant, so
  :math:`\partial\theta'/\partial\theta = I` and no second derivatives are needed;
* **Meta-SGD** (Li et al. 2017) learns :math:`\alpha`, one step size per parameter entry;
* **ANIL** (Raghu et al. 2020) adapts only the final linear layer; the body gets the outer
  gradient only.

The inner loop and the family base all of them share live in
:mod:`fslearn.methods.inner_loop`.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import Tensor, nn

# the family base and the functional inner loop live in fslearn.methods.inner_loop; re-exported
# here, where they were first defined, so that existing imports keep working
from fslearn.methods.inner_loop import (
    ENGINES,
    INNER_OPTIMIZERS,
    TASKS,
    InnerLoopMethod,
    Params,
    adapt,
    inner_loop,
    maml_network,
    sinusoid_network,
)
from fslearn.results import PaperFigures

#: Finn, Abbeel and Levine (2017), appendix C, Table 2: sinusoid regression, mean squared error
#: after 1 / 5 / 10 gradient steps on K support points (MAML and the pretrained baseline)
FINN_2017_SINUSOID = ("Finn, Abbeel and Levine (2017), Model-Agnostic Meta-Learning for Fast "
                      "Adaptation of Deep Networks, ICML, appendix C, Table 2")

__all__ = [
    "ANIL",
    "ENGINES",
    "INNER_OPTIMIZERS",
    "MAML",
    "TASKS",
    "FirstOrderMAML",
    "InnerLoopMethod",
    "MetaSGD",
    "Params",
    "PretrainedBaseline",
    "adapt",
    "inner_loop",
    "maml_network",
    "sinusoid_network",
]


class MAML(InnerLoopMethod):
    """Second-order MAML on a Conv4 with a linear head of ``n_way`` outputs; the arguments are
    :class:`~fslearn.methods.inner_loop.InnerLoopMethod`'s."""

    name = "maml"
    #: Finn et al. (2017), Table 1 (batch statistics at test time, as here) and Table 2
    paper_figures = MappingProxyType({
        "classification": PaperFigures(
            "Finn, Abbeel and Levine (2017), Model-Agnostic Meta-Learning for Fast Adaptation of "
            "Deep Networks, ICML, Table 1",
            {(5, 1): 0.987, (5, 5): 0.999, (20, 1): 0.958, (20, 5): 0.989}),
        "regression": PaperFigures(FINN_2017_SINUSOID, {5: {1: 0.67, 5: 0.38, 10: 0.35}}),
    })


class FirstOrderMAML(MAML):
    """MAML without second derivatives: each inner gradient is a constant in the outer step."""

    name = "fomaml"
    #: first-order MAML as reported by Nichol et al. (2018), Omniglot table
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Nichol, Achiam and Schulman (2018), On First-Order Meta-Learning Algorithms "
        "(first-order MAML, Omniglot)",
        {(5, 1): 0.983, (5, 5): 0.992, (20, 1): 0.894, (20, 5): 0.979})})

    def __init__(self, n_way: int = 5, in_channels: int = 1, inner_steps: int = 1,
                 inner_lr: float = 0.4, test_inner_steps: int | None = None,
                 engine: str = "auto", image_size: int = 28, hidden_channels: int = 64,
                 blocks: int = 4, task: str = "classification", inner_loss: str = "mean",
                 architecture: str = "conv4") -> None:
        super().__init__(n_way, in_channels, inner_steps, inner_lr, test_inner_steps,
                         first_order=True, engine=engine, image_size=image_size,
                         hidden_channels=hidden_channels, blocks=blocks, task=task,
                         inner_loss=inner_loss, architecture=architecture)
        del self.hparams["first_order"]


class MetaSGD(MAML):
    """MAML with a learned step size for every parameter entry, initialised to ``inner_lr``."""

    name = "metasgd"
    #: Li et al. (2017), Omniglot table
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Li, Zhou, Chen and Li (2017), Meta-SGD: Learning to Learn Quickly for Few-Shot "
        "Learning (Omniglot)",
        {(5, 1): 0.9953, (5, 5): 0.9993, (20, 1): 0.9593, (20, 5): 0.9897})})

    def __init__(self, n_way: int = 5, in_channels: int = 1, inner_steps: int = 1,
                 inner_lr: float = 0.4, test_inner_steps: int | None = None,
                 engine: str = "auto", image_size: int = 28, hidden_channels: int = 64,
                 blocks: int = 4, task: str = "classification", inner_loss: str = "mean",
                 architecture: str = "conv4") -> None:
        super().__init__(n_way, in_channels, inner_steps, inner_lr, test_inner_steps,
                         first_order=False, engine=engine, image_size=image_size,
                         hidden_channels=hidden_channels, blocks=blocks, task=task,
                         inner_loss=inner_loss, architecture=architecture)
        del self.hparams["first_order"]
        # ParameterDict keys may not contain dots: "0.features.0.0.weight" -> "0-features-..."
        parameters = dict(self.network.named_parameters())
        self.learned_step_sizes = nn.ParameterDict({
            name.replace(".", "-"): nn.Parameter(torch.full_like(parameters[name], inner_lr))
            for name in self.adaptable_names()})

    def step_sizes(self) -> dict[str, Tensor | float]:
        return {name: self.learned_step_sizes[name.replace(".", "-")]
                for name in self.adaptable_names()}


class ANIL(MAML):
    """Almost no inner loop: only the linear head is adapted; the body learns in the outer loop.

    Mind the test-time steps. The body learns features large enough for the one training step
    of ``inner_lr`` to fit the support set, so ``inner_lr`` is far above the head's stable step
    size: a second and third step overshoot (the support loss rises) before the softmax
    saturates, and more so with 5 shots, whose first step fits less tightly. A model trained
    with one step and tested with three can therefore score 5-shot below 1-shot, as the first
    shipped ``anil-omniglot-5way`` did (chapter 5); test with the step it was trained with, or
    with 10 steps or more, chosen on validation classes.
    """

    name = "anil"
    #: Raghu et al. (2020): Omniglot 20-way only
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Raghu, Raghu, Bengio and Vinyals (2020), Rapid Learning or Feature Reuse? Towards "
        "Understanding the Effectiveness of MAML, ICLR (Omniglot 20-way)",
        {(20, 1): 0.962, (20, 5): 0.980})})

    def step_sizes(self) -> dict[str, Tensor | float]:
        return {name: self.inner_lr for name, _ in self.network.named_parameters()
                if name.startswith("1.")}  # module 1 of the network is the head


class PretrainedBaseline(MAML):
    """The paper's baseline: one network trained on the query points of all tasks at once (no
    inner loop in training), then fine-tuned on each test task's support set with
    ``test_inner_steps`` gradient steps of size ``inner_lr``, exactly as MAML adapts."""

    name = "pretrained"
    paper_figures = MappingProxyType({
        "regression": PaperFigures(FINN_2017_SINUSOID, {5: {1: 2.41, 5: 2.23, 10: 2.19}})})

    @property
    def training_inner_steps(self) -> int:
        return 0
