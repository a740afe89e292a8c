r"""Reptile (Nichol, Achiam and Schulman, 2018): move the initialisation towards the weights that
a few steps of plain training on each task reach.

For each task :math:`\tau` of a batch, :math:`\phi_\tau` is what ``inner_steps`` gradient steps on
its support set make of :math:`\theta`; the outer update is

.. math:: \theta \leftarrow \theta + \epsilon \, \frac{1}{T}\sum_\tau (\phi_\tau - \theta),

no derivative of the inner loop at all. Written as a gradient, :math:`g = \theta - \bar\phi`, it
is one step of plain SGD with learning rate :math:`\epsilon` (the paper anneals it linearly from
1 to 0: ``--optimizer sgd --lr 1 --lr-schedule linear``), so the one training loop runs it.

The inner optimizer is the paper's: Adam with :math:`\beta_1 = 0`, learning rate ``inner_lr``
(1e-3), on mini-batches of ``inner_batch`` support images (10; the paper trains on 10 shots per
class, so 5 steps are one pass over a 5-way support set), or plain SGD (``inner_optimizer="sgd"``).
At test time Reptile adapts with the same optimizer for ``test_inner_steps`` steps (the paper: 50)
on mini-batches of ``test_inner_batch`` (5), then the queries are scored. Differences from the
paper's code, named here and in the chapter: by default Adam's state starts afresh for each task,
where the paper's code never resets its optimizer, so that each task's inner Adam starts from the
squared gradients the tasks before it left (``inner_adam_state="persistent"``: the state is kept
in the model and saved with it; every test task starts from the stored state and leaves it
unchanged, as the authors' evaluation restores it after each task); the mini-batches take the
support set in a fixed order that interleaves the classes (the paper's shuffles it); and batch
norm uses each batch's statistics.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import Tensor
from torch.func import functional_call

from fslearn.data.episodes import Episode
from fslearn.distributed import process_count
from fslearn.methods.inner_loop import (
    ADAM_STATES,
    INNER_OPTIMIZERS,
    AdamState,
    InnerLoopMethod,
    Params,
    inner_loop,
)
from fslearn.methods.options import Option
from fslearn.results import PaperFigures

__all__ = ["Reptile"]


class Reptile(InnerLoopMethod):
    r"""Reptile on MAML's network; see the module docstring. Arguments as
    :class:`~fslearn.methods.inner_loop.InnerLoopMethod` (whose
    ``first_order`` does not apply: Reptile never differentiates the inner loop), and

    Args:
        inner_optimizer: ``"adam"`` (the paper's, with :math:`\beta_1 = 0`) or ``"sgd"``.
        inner_batch: support images per inner step in training (``None``: all of them).
        test_inner_batch: support images per inner step at test time (``None``: all of them).
        inner_adam_state: ``"fresh"`` (Adam's state starts afresh for every task) or
            ``"persistent"`` (the authors' code: carried from task to task in training, and
            every test task starts from where training left it).
    """

    name = "reptile"
    #: Nichol et al. (2018), Omniglot table: transductive (batch norm over the whole test
    #: batch, as here by default) and non-transductive (each query scored beside the support
    #: set alone: ``transductive = False``)
    paper_figures = MappingProxyType({
        "classification": PaperFigures(
            "Nichol, Achiam and Schulman (2018), On First-Order Meta-Learning Algorithms "
            "(Omniglot, transductive)",
            {(5, 1): 0.9768, (5, 5): 0.9948, (20, 1): 0.8943, (20, 5): 0.9712}),
        "non_transductive": PaperFigures(
            "Nichol, Achiam and Schulman (2018), On First-Order Meta-Learning Algorithms "
            "(Omniglot, non-transductive)",
            {(5, 1): 0.9539, (5, 5): 0.9890, (20, 1): 0.8814, (20, 5): 0.9665})})
    cli_options = (
        *InnerLoopMethod.cli_options,
        Option(("--inner-optimizer",), "the inner optimizer (adam with beta1 = 0, as in the "
               "paper)", choices=INNER_OPTIMIZERS),
        Option(("--inner-batch",), "support images per inner step in training", type=int,
               default_text="all of them"),
        Option(("--test-inner-batch",), "support images per inner step at test time",
               type=int, default_text="all of them"),
        Option(("--inner-adam-state",), "where each task's inner Adam starts: afresh, or "
               "where the last task left it (persistent, the authors' code)",
               choices=ADAM_STATES),
    )

    def __init__(self, n_way: int = 5, in_channels: int = 1, inner_steps: int = 5,
                 inner_lr: float = 1e-3, test_inner_steps: int | None = 50,
                 engine: str = "auto", image_size: int = 28, hidden_channels: int = 64,
                 blocks: int = 4, task: str = "classification", inner_optimizer: str = "adam",
                 inner_batch: int | None = 10, test_inner_batch: int | None = 5,
                 inner_loss: str = "mean", architecture: str = "conv4",
                 inner_adam_state: str = "fresh") -> None:
        super().__init__(n_way, in_channels, inner_steps, inner_lr, test_inner_steps,
                         first_order=True, engine=engine, image_size=image_size,
                         hidden_channels=hidden_channels, blocks=blocks, task=task,
                         inner_loss=inner_loss, architecture=architecture)
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(f"inner_optimizer must be one of {', '.join(INNER_OPTIMIZERS)}, "
                             f"got {inner_optimizer!r}")
        for label, value in (("inner_batch", inner_batch),
                             ("test_inner_batch", test_inner_batch)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{label} must be a positive integer or None (the whole "
                                 f"support set), got {value!r}")
        if inner_adam_state not in ADAM_STATES:
            raise ValueError(f"inner_adam_state must be one of {', '.join(ADAM_STATES)}, got "
                             f"{inner_adam_state!r}")
        if inner_adam_state == "persistent" and inner_optimizer != "adam":
            raise ValueError("inner_adam_state='persistent' keeps the inner Adam's state: use "
                             "it with inner_optimizer='adam'")
        self.inner_optimizer = inner_optimizer
        self.inner_batch, self.test_inner_batch = inner_batch, test_inner_batch
        self.inner_adam_state = inner_adam_state
        if inner_adam_state == "persistent":  # buffers, so that checkpoints carry the state
            size = sum(value.numel() for value in self.network.parameters())
            self.register_buffer("adam_squares", torch.zeros(size))
            self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        del self.hparams["first_order"]
        self.hparams.update(inner_optimizer=inner_optimizer, inner_batch=inner_batch,
                            test_inner_batch=test_inner_batch)
        if inner_adam_state != "fresh":  # older records, without the key, load as they were
            self.hparams["inner_adam_state"] = inner_adam_state

    def _stored_adam_state(self) -> AdamState | None:
        """The persistent inner Adam state, as views of the buffers (None if fresh)."""
        if self.inner_adam_state == "fresh":
            return None
        shapes = [(name, value.shape) for name, value in self.network.named_parameters()]
        pieces = self.adam_squares.split([shape.numel() for _, shape in shapes])
        return AdamState({name: piece.view(shape) for (name, shape), piece in
                          zip(shapes, pieces, strict=True)}, int(self.adam_steps))

    def _store_adam_state(self, state: AdamState) -> None:
        stored = self._stored_adam_state()
        assert stored is not None
        for name, view in stored.squares.items():
            view.copy_(state.squares[name])
        self.adam_steps.fill_(state.steps)

    def step_sizes(self) -> dict[str, Tensor | float]:
        """Every parameter, the authors' batch-norm offsets too (``architecture="authors"``):
        Reptile's update is :math:`\\theta - \\phi`, so a parameter its inner loop left alone
        would never move."""
        return {name: self.inner_lr for name, _ in self.network.named_parameters()}

    def adapt(self, params: Params, support_x: Tensor, support_y: Tensor) -> Params:
        r""":math:`\phi`: one task's weights after the inner optimizer's steps on its support
        set, taken in mini-batches that hold every class in turn."""
        steps = self.training_inner_steps if self.training else self.test_inner_steps
        batch = self.inner_batch if self.training else self.test_inner_batch
        if self.task == "classification":  # class-major support -> one of each class in turn
            n_support = support_x.shape[0]
            order = torch.arange(n_support, device=support_x.device)
            order = order.view(self.n_way, n_support // self.n_way).T.reshape(-1)
            support_x, support_y = support_x[order], support_y[order]
        state = self._stored_adam_state()
        adapted = inner_loop(self.network, params, support_x, support_y, steps,
                             self.step_sizes(), first_order=True, loss_function=self.task_loss,
                             optimizer=self.inner_optimizer, batch_size=batch,
                             loss_scale=self.loss_scale(support_x.shape[0], batch),
                             adam_state=state)
        if state is not None and self.training:  # a test task leaves the state as it found it
            self._store_adam_state(state)
        return adapted

    def adapt_and_score(self, params: Params, step_sizes: dict[str, Tensor | float],
                        support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        return self.query_forward(self.network, self.adapt(params, support_x, support_y),
                                  support_x, query_x)

    def training_step(self, episode: Episode) -> tuple[Tensor, Tensor]:
        r"""Set each parameter's ``.grad`` to :math:`\theta - \bar\phi`; return the query loss
        and logits at the adapted weights (for monitoring only: Reptile does not train on them).
        """
        self._check(episode)
        if self.inner_adam_state == "persistent" and process_count() > 1:
            raise ValueError("inner_adam_state='persistent' carries the inner Adam's state from "
                             "task to task within one process, so the processes of a "
                             "distributed run would each keep their own: train it on one "
                             "process, or with inner_adam_state='fresh'")
        self._use_channels_last(True)
        params = {name: value.detach() for name, value in self.network_params().items()}
        moved = {name: torch.zeros_like(value) for name, value in params.items()}
        total, all_logits = torch.zeros(()), []
        with torch.no_grad():  # nothing here is differentiated: the update is theta - phi
            for t in range(episode.tasks):
                phi = self.adapt(params, episode.support_x[t], episode.support_y[t])
                for name in moved:
                    moved[name] += (params[name] - phi[name]) / episode.tasks
                logits = functional_call(self.network, phi, (episode.query_x[t],))
                total += self.task_loss(logits, episode.query_y[t]).cpu() / episode.tasks
                all_logits.append(logits)
        for name, value in self.network_params().items():
            value.grad = moved[name] if value.grad is None else value.grad + moved[name]
        return total, torch.stack(all_logits)
