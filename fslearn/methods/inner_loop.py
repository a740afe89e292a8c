r"""The family base of inner-loop (optimisation-based) methods, and the functional inner loop
they share: MAML and its variants, Reptile and the fine-tuned baseline all adapt the same
network to each task by gradient steps on its support set.

The inner loop is written with :func:`torch.func.functional_call` and :func:`torch.func.grad`,
so the same code runs in a per-task Python loop or vectorised over the tasks with
:func:`torch.func.vmap`, and under ``torch.no_grad()`` (evaluation still adapts).

Batch norm uses the statistics of the current batch, at training and at test time alike, as in
the authors' code (transductive): see :class:`~fslearn.backbones.TaskBatchNorm2d`.

Two conventions of Finn et al.'s code that the paper does not state, and fslearn's choices
(checked against cbfinn/maml; ``shared/notes/optimisation-methods.md``):

* **The inner loss.** fslearn differentiates the mean cross-entropy over the N*K support images
  (``inner_loss="mean"``, the default and what every shipped checkpoint was trained with). The
  authors' ``utils.xent`` returns each example's cross-entropy divided by K
  (``update_batch_size``) and ``tf.gradients`` differentiates the sum of that vector: the sum
  over the support set divided by K, N times the mean (``inner_loss="sum_over_k"``). The same
  step therefore needs N times the ``inner_lr`` under the mean: the paper's alpha = 0.4 at
  5-way is 2.0 here, its 0.1 at 20-way is 2.0 too, and fslearn's 0.4 (5-way) and 0.1 (20-way)
  are the authors' 0.08 and 0.005. Their outer loss is summed the same way, which Adam's
  normalisation makes irrelevant; fslearn's outer loss is the mean over queries and tasks.
  Regression (N = 1) is the same under both.
* **The Omniglot network.** fslearn's Conv4 max-pools after each 3x3 convolution (padding 1),
  and its batch norm has a scale and an offset, both adapted (``architecture="conv4"``). The
  authors' (``architecture="authors"``, :class:`~fslearn.backbones.StridedConv4`) uses
  convolutions of stride 2 with TensorFlow's 'SAME' padding, a spatial mean before the head,
  and batch norm without a learned scale whose offset is not among the adapted weights (only
  the outer loop learns it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from fslearn.backbones import Conv4, OffsetBatchNorm2d, StridedConv4, TaskBatchNorm2d
from fslearn.data.episodes import Episode
from fslearn.methods.base import FewShotMethod
from fslearn.methods.options import Family, Option

__all__ = [
    "ADAM_STATES",
    "ARCHITECTURES",
    "ENGINES",
    "INNER_LOSSES",
    "INNER_OPTIMIZERS",
    "TASKS",
    "AdamState",
    "InnerLoopMethod",
    "Params",
    "adapt",
    "inner_loop",
    "inner_loss_scale",
    "maml_network",
    "sinusoid_network",
]

#: how the tasks of a batch are run: one after another, or vectorised with torch.func.vmap
ENGINES = ("auto", "loop", "vmap")
#: image classification (Conv4, cross-entropy) or sinusoid regression (an MLP, squared error)
TASKS = ("classification", "regression")
#: the inner loop's update: plain gradient steps, or Adam with beta1 = 0 (Reptile's)
INNER_OPTIMIZERS = ("sgd", "adam")
ADAM_BETA2, ADAM_EPS = 0.999, 1e-8
#: where the inner Adam's state starts: afresh for each task (fslearn's first Reptile), or where
#: the last task left it (Nichol et al.'s code, whose optimizer is never reset between tasks)
ADAM_STATES = ("fresh", "persistent")
#: how the inner loss reduces over the support examples: their mean (fslearn's), or their sum
#: divided by the shots K (Finn et al.'s code), N times the mean over N*K images
INNER_LOSSES = ("mean", "sum_over_k")
#: the image network: fslearn's Conv4 (max-pooling, batch norm with a scale and an offset, all
#: adapted) or the Omniglot network of Finn et al.'s code (strided, spatial mean, see
#: :class:`~fslearn.backbones.StridedConv4`)
ARCHITECTURES = ("conv4", "authors")

Params = dict[str, Tensor]


@dataclass
class AdamState:
    r"""The inner Adam's state, carried from one call of :func:`inner_loop` to the next.

    With :math:`\beta_1 = 0` Adam keeps only the running mean of the squared gradients
    (``squares``, by parameter name; a missing name starts at zero) and how many steps made it
    (``steps``, for the bias correction). :func:`inner_loop` replaces both by their values
    after its steps, so the next task starts where this one ended.
    """

    squares: Params = field(default_factory=dict)
    steps: int = 0


def maml_network(n_way: int, in_channels: int = 1, image_size: int = 28,
                 hidden_channels: int = 64, blocks: int = 4,
                 architecture: str = "conv4") -> nn.Sequential:
    """The body (module ``0``), then a linear layer to ``n_way`` logits (module ``1``, the head).

    ``"conv4"``: a Conv4 with per-batch batch norm; each block halves the image, so the head
    takes ``hidden_channels * (image_size // 2**blocks)**2`` features (64 for 28x28 Omniglot).
    ``"authors"``: :class:`~fslearn.backbones.StridedConv4`, whose spatial mean gives the head
    ``hidden_channels`` features at any image size; its head starts as the authors' does, with
    standard normal weights and zero biases.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got "
                         f"{architecture!r}")
    if architecture == "authors":
        head = nn.Linear(hidden_channels, n_way)
        nn.init.normal_(head.weight)
        nn.init.zeros_(head.bias)
        return nn.Sequential(StridedConv4(in_channels, hidden_channels, blocks), head)
    body = Conv4(in_channels, hidden_channels, blocks)
    for block in body.features:
        block[1] = TaskBatchNorm2d(hidden_channels)
    side = image_size // 2**blocks
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for {blocks} blocks, which "
                         f"halve it {blocks} times: use at least {2**blocks} pixels.")
    return nn.Sequential(body, nn.Linear(hidden_channels * side * side, n_way))


def inner_loss_scale(inner_loss: str, examples: int, k_shot: int) -> float:
    """What the mean loss over one inner step's ``examples`` is multiplied by under the
    ``inner_loss`` convention: 1 for ``"mean"``; ``examples / k_shot`` for ``"sum_over_k"`` (the
    sum of the per-example losses divided by the shots K, as ``utils.xent`` and ``tf.gradients``
    of Finn et al.'s code compute it), which is ``n_way`` on a whole N-way K-shot support set.
    """
    if inner_loss not in INNER_LOSSES:
        raise ValueError(f"inner_loss must be one of {', '.join(INNER_LOSSES)}, got "
                         f"{inner_loss!r}")
    if inner_loss == "mean":
        return 1.0
    if k_shot < 1:
        raise ValueError(f"the sum_over_k inner loss needs at least one shot, got {k_shot}")
    return examples / k_shot


def sinusoid_network(hidden: int = 40) -> nn.Sequential:
    """The paper's regression network: 1 input, two hidden layers of ``hidden`` ReLU units
    (module ``0``), one output (module ``1``, the head)."""
    body = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
    return nn.Sequential(body, nn.Linear(hidden, 1))


def inner_loop(
    model: nn.Module,
    params: Params,
    support_x: Tensor,
    support_y: Tensor,
    steps: int,
    step_sizes: dict[str, Tensor | float],
    first_order: bool = False,
    loss_function: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    optimizer: str = "sgd",
    batch_size: int | None = None,
    loss_scale: float = 1.0,
    adam_state: AdamState | None = None,
) -> Params:
    """Adapt ``params`` to one task's support set with ``steps`` gradient steps.

    Args:
        model: the network, called as ``functional_call(model, params, support_x)``.
        params: every parameter of ``model`` by name; those in ``step_sizes`` are adapted.
        support_x: ``[n_support, C, H, W]``; support_y: ``[n_support]`` labels.
        steps: number of inner gradient steps (0 returns ``params`` unchanged).
        step_sizes: the inner learning rate of each adapted parameter, a number or a tensor
            shaped like the parameter (Meta-SGD).
        first_order: treat the inner gradients as constants (no second derivatives).
        loss_function: the task loss, ``loss_function(outputs, support_y)``.
        optimizer: ``"sgd"`` (plain gradient steps, MAML) or ``"adam"``: Adam with
            :math:`\\beta_1 = 0, \\beta_2 = 0.999`, from ``adam_state`` (Reptile's inner
            optimizer; its square root is not meant to be differentiated through).
        batch_size: examples per step, taken in order and cycling through the support set
            (``None``: the whole support set at every step).
        loss_scale: the inner loss is ``loss_scale * loss_function(outputs, y)``; see
            :func:`inner_loss_scale` (1: the mean over the step's examples).
        adam_state: Adam's state to start from and to leave the steps' state in (``None``: a
            fresh state, used for this task alone); see :class:`AdamState`.

    Returns:
        The adapted parameters (the others unchanged), as differentiable functions of
        ``params`` unless ``first_order``.
    """
    if optimizer not in INNER_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(INNER_OPTIMIZERS)}, got "
                         f"{optimizer!r}")
    adapted = {name: params[name] for name in step_sizes}
    fixed = {name: value for name, value in params.items() if name not in step_sizes}
    carried = AdamState() if adam_state is None else adam_state
    squares = {name: carried.squares.get(name, torch.zeros_like(value))
               for name, value in adapted.items()}
    n_support = support_x.shape[0]
    batch = n_support if batch_size is None else min(batch_size, n_support)

    def support_loss(fast: Params, x: Tensor, y: Tensor) -> Tensor:
        loss = loss_function(functional_call(model, {**fixed, **fast}, (x,)), y)
        return loss if loss_scale == 1.0 else loss_scale * loss

    for step in range(steps):
        x, y = support_x, support_y
        if batch < n_support:
            rows = torch.arange(step * batch, (step + 1) * batch,
                                device=support_x.device) % n_support
            x, y = support_x[rows], support_y[rows]
        # torch.func.grad rather than torch.autograd.grad: it works inside vmap and under
        # torch.no_grad(), and the outer autograd still differentiates through it
        gradients = grad(support_loss)(adapted, x, y)
        if first_order:
            gradients = {name: value.detach() for name, value in gradients.items()}
        if optimizer == "adam":  # torch.optim.Adam's update with beta1 = 0
            squares = {name: ADAM_BETA2 * squares[name] + (1 - ADAM_BETA2) * g * g
                       for name, g in gradients.items()}
            correction = math.sqrt(1 - ADAM_BETA2 ** (carried.steps + step + 1))
            gradients = {name: g / (squares[name].sqrt() / correction + ADAM_EPS)
                         for name, g in gradients.items()}
        adapted = {name: value - step_sizes[name] * gradients[name]
                   for name, value in adapted.items()}
    if optimizer == "adam":
        # detached: the state is a statistic of past gradients, never differentiated
        carried.squares = {name: value.detach() for name, value in squares.items()}
        carried.steps += steps
    return {**fixed, **adapted}


def adapt(
    model: nn.Module,
    support_x: Tensor,
    support_y: Tensor,
    steps: int = 1,
    lr: float = 0.4,
    loss_function: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    first_order: bool = False,
    adapt_only: Callable[[str], bool] | None = None,
) -> Params:
    """Adapt any ``nn.Module`` to one task: ``steps`` gradient steps of size ``lr`` on its
    support set, leaving the module itself untouched. Predict with the adapted parameters through
    :func:`torch.func.functional_call`; back-propagating a loss computed with them gives MAML's
    meta-gradient in the module's ``.grad`` (first-order if ``first_order``)::

        adapted = adapt(model, support_x, support_y, steps=5, lr=0.1)
        query_loss = F.cross_entropy(functional_call(model, adapted, (query_x,)), query_y)
        query_loss.backward()

    Args:
        model: the network; every parameter that requires a gradient is adapted, unless
            ``adapt_only`` says otherwise.
        support_x: ``[n_support, ...]`` inputs; support_y: ``[n_support]`` targets.
        steps: inner gradient steps (0 returns the parameters unchanged).
        lr: the inner step size.
        loss_function: ``loss_function(model(support_x), support_y)``.
        first_order: treat the inner gradients as constants (no second derivatives).
        adapt_only: adapt only the parameters whose names it accepts, e.g.
            ``lambda name: name.startswith("head.")`` (ANIL).

    Returns:
        Every parameter of ``model`` by name, the adapted ones replaced.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"adapt takes an nn.Module, got {type(model).__name__}")
    params = {name: value for name, value in model.named_parameters() if value.requires_grad}
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters, so there is "
                         f"nothing to adapt: pass the network whose weights should change.")
    step_sizes: dict[str, Tensor | float] = {
        name: float(lr) for name in params if adapt_only is None or adapt_only(name)}
    if not step_sizes:
        raise ValueError(f"adapt_only accepted none of the parameters of "
                         f"{type(model).__name__} ({', '.join(list(params)[:4])}, ...): "
                         f"nothing would be adapted.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if support_x.shape[:1] != support_y.shape[:1] or support_x.dim() == 0:
        raise ValueError(f"support_x and support_y must hold the same number of examples "
                         f"along their first dimension; got shapes {tuple(support_x.shape)} "
                         f"and {tuple(support_y.shape)}")
    for name, module in model.named_modules():
        if (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training
                and module.track_running_stats):
            raise ValueError(
                f"{name or type(model).__name__} is a batch norm layer that updates its running "
                f"statistics in training mode, which the inner loop's gradient steps cannot do: "
                f"call model.eval() to normalise with the stored statistics, or build the layer "
                f"with track_running_stats=False to use each batch's statistics (as MAML does).")
    return inner_loop(model, params, support_x, support_y, steps, step_sizes, first_order,
                      loss_function)


class InnerLoopMethod(FewShotMethod):
    """The family base of methods that adapt to each task by gradient steps on its support set
    (second-order MAML on a Conv4 with a linear head of ``n_way`` outputs, as it stands).

    Contract for a subclass: it may change which parameters are adapted and by how much
    (:meth:`step_sizes`), how many inner steps training takes (:attr:`training_inner_steps`),
    how one task is adapted and scored (:meth:`adapt_and_score`) and the update it leaves in
    ``.grad`` (:meth:`training_step`); ``hparams`` must stay the arguments of its own
    constructor, so that a checkpoint can rebuild it. Its episodes must have ``n_way`` classes
    (the head's size), or be regression tasks of one output.

    Args:
        n_way: classes per episode (the size of the head; episodes must have this many).
        in_channels: image channels.
        inner_steps: inner gradient steps in training.
        inner_lr: the inner step size :math:`\\alpha`; what it means depends on ``inner_loss``.
        test_inner_steps: inner steps when the method is in evaluation mode (the paper tests
            with 3, the authors' code with 10); default: ``inner_steps``.
        first_order: drop the second derivatives (first-order MAML).
        engine: ``"loop"`` (tasks one after another), ``"vmap"`` (tasks vectorised) or
            ``"auto"`` (see :meth:`resolved_engine`).
        image_size: side of the square input images (sets the head's input size).
        hidden_channels, blocks: the Conv4's width and depth (smaller for tests).
        task: ``"classification"`` (the Conv4 and cross-entropy) or ``"regression"`` (sinusoid
            regression: the paper's MLP with ``hidden_channels`` units, squared error; ``n_way``
            must be 1).
        inner_loss: what the inner steps differentiate. ``"mean"`` (fslearn's): the mean loss
            over the step's support examples (all N*K of them unless Reptile takes
            mini-batches). ``"sum_over_k"`` (Finn et al.'s code): the per-example losses summed
            and divided by the shots K, N times the mean on an N-way support set, so the same
            ``inner_lr`` takes N times the step: the paper's alpha = 0.4 at 5-way is 2.0 under
            ``"mean"``, and fslearn's 0.4 under ``"mean"`` is the authors' 0.08. Sinusoid
            regression (N = 1) and Adam's inner steps (Reptile, which rescaling barely changes)
            differ little or not at all. Evaluation uses the same convention as training.
        architecture: ``"conv4"`` (fslearn's network) or ``"authors"`` (the strided Omniglot
            network of Finn et al.'s code, whose batch-norm offsets only the outer loop learns;
            see :func:`maml_network`). Images only.
    """

    family = Family("optimisation-based methods", summary="the inner loop")
    batch_statistics = "task"  # each task is adapted and scored on its own images
    #: the paper's sinusoid network: two hidden layers of 40 units, one output
    regression_hparams = MappingProxyType({"n_way": 1, "task": "regression",
                                           "hidden_channels": 40})
    cli_options = (
        Option(("--inner-steps",), "inner gradient steps per task in training", type=int),
        Option(("--inner-lr",), "inner step size alpha (Meta-SGD: its initial value; with an "
               "Adam inner optimizer: its learning rate)", type=float),
        Option(("--test-inner-steps",), "inner steps in validation and evaluation (Finn et al. "
               "test with 3)", type=int, default_text="--inner-steps"),
        Option(("--engine",), "run the tasks of a batch in a loop or vectorised with "
               "torch.func.vmap (auto: vmap on CUDA and for --sinusoid, the loop for images on "
               "a CPU)", choices=ENGINES),
        Option(("--inner-loss",), "what the inner steps differentiate: the mean loss over the "
               "support images, or their sum divided by the shots K as in Finn et al.'s code "
               "(N times the mean: the same --inner-lr takes N times the step)",
               choices=INNER_LOSSES),
        Option(("--architecture",), "the network: fslearn's Conv4 (max-pooling), or the "
               "strided Omniglot network of Finn et al.'s code (spatial mean, batch norm "
               "without a scale, its offset learned by the outer loop only)",
               choices=ARCHITECTURES),
    )

    def __init__(self, n_way: int = 5, in_channels: int = 1, inner_steps: int = 1,
                 inner_lr: float = 0.4, test_inner_steps: int | None = None,
                 first_order: bool = False, engine: str = "auto", image_size: int = 28,
                 hidden_channels: int = 64, blocks: int = 4,
                 task: str = "classification", inner_loss: str = "mean",
                 architecture: str = "conv4") -> None:
        super().__init__()
        for label, value in (("n_way", n_way), ("inner_steps", inner_steps)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if test_inner_steps is not None and (not isinstance(test_inner_steps, int)
                                             or test_inner_steps < 0):
            raise ValueError(f"test_inner_steps must be a non-negative integer, got "
                             f"{test_inner_steps!r}")
        if not inner_lr > 0:
            raise ValueError(f"inner_lr must be positive, got {inner_lr!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        inner_loss_scale(inner_loss, 1, 1)  # refuses an unknown convention
        if task == "regression":
            if n_way != 1:
                raise ValueError(f"sinusoid regression has one output: n_way must be 1, got "
                                 f"{n_way}")
            self.network = sinusoid_network(hidden_channels)
            if architecture != "conv4":
                raise ValueError(f"architecture {architecture!r} is an image network; sinusoid "
                                 f"regression uses the paper's MLP: leave --architecture out.")
            self.task_loss: Callable[[Tensor, Tensor], Tensor] = F.mse_loss
        else:
            self.network = maml_network(n_way, in_channels, image_size, hidden_channels, blocks,
                                        architecture)
            self.task_loss = F.cross_entropy
        self.task, self.inner_loss, self.architecture = task, inner_loss, architecture
        self.n_way, self.inner_steps, self.inner_lr = n_way, inner_steps, float(inner_lr)
        self.test_inner_steps = inner_steps if test_inner_steps is None else test_inner_steps
        self.first_order, self.engine = first_order, engine
        #: at test time, batch norm normalises the queries with statistics of the whole query
        #: set (True: transductive, as MAML's and Reptile's reference code do), or each query
        #: is scored in one batch with the support images alone (False: Nichol et al.'s
        #: non-transductive setting, where no query informs another); training is unchanged
        self.transductive = True
        self.hparams = {"n_way": n_way, "in_channels": in_channels, "inner_steps": inner_steps,
                        "inner_lr": float(inner_lr), "test_inner_steps": test_inner_steps,
                        "first_order": first_order, "engine": engine, "image_size": image_size,
                        "hidden_channels": hidden_channels, "blocks": blocks, "task": task,
                        "inner_loss": inner_loss, "architecture": architecture}

    @property
    def fixed_way(self) -> int | None:
        """A head of ``n_way`` outputs scores ``n_way``-way episodes only."""
        return self.n_way

    # -- what the variants change --------------------------------------------------------------
    def network_params(self) -> Params:
        """The parameters :math:`\\theta` of the network, by name."""
        return dict(self.network.named_parameters())

    def adaptable_names(self) -> list[str]:
        """The network's parameters that an inner loop may adapt: all of them but those a module
        leaves to the outer loop (its ``meta_only`` ones: the authors' batch-norm offsets)."""
        meta_only = {f"{prefix}.{name}" if prefix else name
                     for prefix, module in self.network.named_modules()
                     for name in getattr(module, "meta_only", ())}
        return [name for name, _ in self.network.named_parameters() if name not in meta_only]

    def step_sizes(self) -> dict[str, Tensor | float]:
        """The inner step size of every adapted parameter (all the adaptable ones, here)."""
        return {name: self.inner_lr for name in self.adaptable_names()}

    def loss_scale(self, n_support: int, batch: int | None = None) -> float:
        """The factor :attr:`inner_loss` puts on the mean support loss of an inner step on
        ``batch`` of the ``n_support`` examples (``None``: all of them); see
        :func:`inner_loss_scale`."""
        examples = n_support if batch is None else min(batch, n_support)
        return inner_loss_scale(self.inner_loss, examples, n_support // self.n_way)

    # -- one task, many tasks ------------------------------------------------------------------
    def adapt_and_score(self, params: Params, step_sizes: dict[str, Tensor | float],
                        support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """One task: adapt to its support set, then its query logits ``[n_query_total, n_way]``."""
        steps = self.training_inner_steps if self.training else self.test_inner_steps
        scale = self.loss_scale(support_x.shape[0])
        if steps and not any(name.startswith("0.") for name in step_sizes):
            # the body (module 0) is not adapted, so its features are the same at every inner
            # step: computed once, and only the head (module 1) takes the steps
            body, head = ({name[2:]: value for name, value in params.items()
                           if name.startswith(prefix)} for prefix in ("0.", "1."))
            support_z = functional_call(self.network[0], body, (support_x,))
            query_z = self.query_forward(self.network[0], body, support_x, query_x)
            adapted = inner_loop(self.network[1], head, support_z, support_y, steps,
                                 {name[2:]: size for name, size in step_sizes.items()},
                                 self.first_order, self.task_loss, loss_scale=scale)
            return functional_call(self.network[1], adapted, (query_z,))
        adapted = inner_loop(self.network, params, support_x, support_y, steps, step_sizes,
                             self.first_order, self.task_loss, loss_scale=scale)
        return self.query_forward(self.network, adapted, support_x, query_x)

    def query_forward(self, module: nn.Module, params: Params, support_x: Tensor,
                      query_x: Tensor) -> Tensor:
        """``module`` with ``params`` on one task's queries ``[n_query_total, ...]``: in one
        batch (training, or :attr:`transductive`), else each query in a batch with the support
        images ``support_x`` alone, its batch statistics theirs and its own."""
        if self.training or self.transductive:
            return functional_call(module, params, (query_x,))
        return torch.cat([functional_call(module, params,
                                          (torch.cat([support_x, query.unsqueeze(0)]),))[-1:]
                          for query in query_x])

    @property
    def training_inner_steps(self) -> int:
        """Inner steps during meta-training."""
        return self.inner_steps

    def resolved_engine(self) -> str:
        """``"auto"``: vmap on CUDA; on a CPU the loop for the Conv4 (faster there, and a
        fraction of the memory: ``benchmarks/maml.py``) but vmap for the sinusoid MLP, whose
        tiny per-task operations cost more in Python overhead than in arithmetic (13x faster on
        one CPU thread: ``benchmarks/results/maml-sinusoid-cpu.json``)."""
        if self.engine != "auto":
            return self.engine
        device = next(self.parameters()).device
        return "vmap" if device.type == "cuda" or self.task == "regression" else "loop"

    def _use_channels_last(self, flag: bool) -> None:
        """Channels-last maps and batch norm with its affine part inside ``F.batch_norm``
        (both faster on a CPU), or neither: what ``torch.func.vmap`` needs (``flag=False``)."""
        if isinstance(self.network[0], Conv4 | StridedConv4):
            self.network[0].channels_last = flag
        for module in self.network.modules():
            if isinstance(module, TaskBatchNorm2d | OffsetBatchNorm2d):
                module.fuse_affine = flag

    def _check(self, episode: Episode) -> None:
        if self.task == "regression":
            if episode.support_x.dim() != 3 or episode.n_way != 1:
                raise ValueError(f"A regression {self.name} takes episodes of points "
                                 f"[tasks, n, 1] with n_way 1 (SinusoidRegression); got "
                                 f"support_x of shape {tuple(episode.support_x.shape)}")
            return
        if episode.n_way != self.n_way:
            raise ValueError(f"This {self.name} model has a head of {self.n_way} classes, so it "
                             f"scores {self.n_way}-way episodes only; got {episode.n_way}-way. "
                             f"Train a {episode.n_way}-way model (--way {episode.n_way}).")
        if episode.support_x.dim() != 5:
            raise ValueError(f"{self.name} adapts on images [tasks, n, C, H, W]; got support_x "
                             f"of shape {tuple(episode.support_x.shape)}")

    def forward(self, episode: Episode) -> Tensor:
        """Query logits ``[tasks, n_way*n_query, n_way]``, each task adapted on its support."""
        self._check(episode)
        params, step_sizes = self.network_params(), self.step_sizes()
        task: Callable[..., Tensor] = lambda sx, sy, qx: self.adapt_and_score(  # noqa: E731
            params, step_sizes, sx, sy, qx)
        vectorised = self.resolved_engine() == "vmap"
        self._use_channels_last(not vectorised)  # vmap takes neither (see there)
        if vectorised:
            return vmap(task, randomness="error")(episode.support_x, episode.support_y,
                                                  episode.query_x)
        return torch.stack([task(episode.support_x[t], episode.support_y[t], episode.query_x[t])
                            for t in range(episode.tasks)])

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        logits = self(episode)
        return self.task_loss(logits.flatten(0, 1), episode.query_y.flatten(0, 1)), logits

    def training_step(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """The loop engine back-propagates each task as soon as it is scored, so that only one
        task's graph (activations of every inner step) is in memory at a time."""
        if self.resolved_engine() == "vmap":
            return super().training_step(episode)
        self._check(episode)
        self._use_channels_last(True)
        params, step_sizes = self.network_params(), self.step_sizes()
        total, all_logits = torch.zeros(()), []
        for t in range(episode.tasks):
            logits = self.adapt_and_score(params, step_sizes, episode.support_x[t],
                                          episode.support_y[t], episode.query_x[t])
            loss = self.task_loss(logits, episode.query_y[t]) / episode.tasks
            loss.backward()
            total = total + loss.detach().cpu()
            all_logits.append(logits.detach())
        return total, torch.stack(all_logits)
