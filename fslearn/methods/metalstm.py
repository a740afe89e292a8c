r"""The Meta-LSTM optimiser (Ravi and Larochelle, ICLR 2017, *Optimization as a Model for
Few-Shot Learning*): an LSTM learns how to train a learner (MAML's Conv4 with an ``n_way``
head) on a task's support set.

The learner's parameters :math:`\theta` are the cell state of an LSTM that has one cell per
parameter entry (coordinate) and weights shared by all of them. Gradient descent,
:math:`\theta_t = \theta_{t-1} - \alpha_t \nabla_t`, is the LSTM cell update
:math:`c_t = f_t \odot c_{t-1} + i_t \odot \tilde c_t` with :math:`f_t = 1`,
:math:`i_t = \alpha_t` and :math:`\tilde c_t = -\nabla_t`; the Meta-LSTM learns the gates:

.. math::
    c_t = \theta_t = f_t \odot \theta_{t-1} - i_t \odot \nabla_t, \qquad
    c_0 = \theta_0 \text{ (learned)},

    f_t = \sigma(W_F [h_t, \theta_{t-1}, \tilde f_{t-1}] + b_F), \qquad
    i_t = \sigma(W_I [h_t, \theta_{t-1}, \tilde i_{t-1}] + b_I),

where :math:`\nabla_t` and :math:`\mathcal{L}_t` are the learner's gradient and loss on step
:math:`t`'s support mini-batch, and :math:`h_t` is the output of a first LSTM layer (an ordinary
LSTM of ``hidden_size`` units, also shared across coordinates) that reads
:math:`[\mathrm{pre}(\mathcal{L}_t), \mathrm{pre}(\nabla_t)]`, four numbers per coordinate. The
preprocessing is Andrychowicz et al.'s (2016), with :math:`p = 10`:

.. math::
    \mathrm{pre}(x) = (\log|x| / p, \ \mathrm{sign}(x)) \text{ if } |x| \ge e^{-p},
    \qquad (-1, \ e^p x) \text{ otherwise}.

After ``inner_steps`` updates the learner scores the queries with :math:`\theta_T`, and the
query loss trains the LSTMs and :math:`\theta_0` with Adam.

Conventions, checked against the authors' code (twitter-research/meta-learning-lstm:
``model/lstm/meta-learner-lstm.lua``, ``lstm-helper.lua``, ``config/lstm/*.lua``) and the
PyTorch reimplementation markdtw/meta-learning-lstm-pytorch; fslearn's choices:

* **The gates' recurrent input** :math:`\tilde f_{t-1}, \tilde i_{t-1}`: both codes feed back the
  gates' *pre-activations* (the arguments of :math:`\sigma`), starting from 0; the paper's
  equation reads as the gate values. fslearn follows the code.
* **The gates see** :math:`h_t` (the first layer's output, which alone reads the loss and the
  gradient), the coordinate's current value :math:`\theta_{t-1}` and their previous
  pre-activation: :math:`W_F, W_I` have ``hidden_size + 2`` entries and :math:`b_F, b_I` one.
* **First order.** The gradient and loss fed to the LSTM are computed at a detached copy of
  :math:`\theta_{t-1}` (the authors run a second network and "break the computational graph"),
  so the meta-gradient never differentiates the learner's gradient: no Hessian. It still flows
  through the cell chain :math:`c_{t-1} \to c_t` and through the gates' input
  :math:`\theta_{t-1}`, down to :math:`\theta_0`.
* **Initialisation** (the authors' code): every weight of both layers uniform in
  [-0.01, 0.01], :math:`b_F` uniform in [4, 5] and :math:`b_I` in [-5, -4] (markdtw: the same
  for the second layer, :math:`b_F` in [4, 6], PyTorch's default for the first), so that it starts
  close to "keep :math:`\theta`, take a small gradient step" (:math:`f \approx 0.99`,
  :math:`i \approx 0.01`); :math:`c_0` is the learner's usual initialisation.
* **Inner loop.** The authors take ``nEpochs`` passes over the support set in mini-batches of
  ``batchSize``: mini-ImageNet 1-shot 12 passes of 5 (12 updates), 5-shot batches of 25 with 8
  passes in the last config (``train-imagenet-5shot.lua``); their Omniglot 5-way 1-shot config
  (``train-omniglot-1shot-5class.lua``), 15 passes of 5, and when it tests 5-shot episodes, 5
  passes in batches of 5 (25 updates). Here ``inner_steps`` counts updates, each on
  ``inner_batch`` support images (one of each class in turn, cycling; None: the whole support
  set, which at 5-way 1-shot is the authors' batch of 5). Defaults: that Omniglot config's
  training (15 updates on the 5 support images). Evaluation takes ``test_inner_steps`` updates
  (default: ``inner_steps``) with the same ``inner_batch``, whatever the shots: the authors' 25
  updates on 5-shot episodes would be ``--inner-batch 5 --test-inner-steps 25``, which also
  changes the 1-shot updates' count (one setting for every test shot here).
* **The learner's loss** is the mean cross-entropy over the mini-batch. Both codes divide its
  gradient once more by the batch size (a mean loss's gradient divided by B); fslearn does not:
  the learned input gate absorbs a constant factor, and :math:`\mathrm{pre}` turns it into a
  shift of :math:`\log B / p`.
* **Batch norm.** The authors run the learner in training mode everywhere in meta-training
  (each mini-batch's own statistics, support and query). At meta-test they score the queries
  with running averages collected over that task's support mini-batches, reset for every task
  (``learner.reset()``), never statistics carried across tasks. fslearn uses each batch's
  statistics at training, and by default at test too (:class:`~fslearn.backbones.TaskBatchNorm2d`,
  as its MAML): the queries of a test task together (``transductive``, the default) or each
  query with the support images alone (``transductive = False``). ``running_batch_norm = True``
  tests as the authors do: every support mini-batch's forward (at :math:`\theta_{t-1}`, the one
  that gives the LSTM its gradient) averages its statistics in, with torch's and Torch7's
  momentum 0.1 from mean 0 and variance 1 (their ``reset``), and each query is normalised with
  the averages (:func:`~fslearn.backbones.task_running_statistics`). After 15 updates a fifth
  of those averages (:math:`0.9^{15} = 0.21`) is still the reset's 0 and 1; the authors' code
  does the same. No mode keeps anything across tasks.
* **The learner.** The authors' (``model/imagenet-net.lua``, used by their Omniglot configs too)
  is a Conv4 of 32 filters with batch norm of epsilon 1e-3. fslearn's is the Conv4 of its MAML
  (:func:`~fslearn.methods.inner_loop.maml_network`: 64 filters, epsilon 1e-5), so that the two
  compare on the same network; ``hidden_channels=32`` gives the authors' width.
* **Outer loop.** Adam, learning rate 1e-3, one episode per step, and the meta-gradient's norm
  clipped to 0.25 (``maxGradNorm``; ``max_grad_norm`` here, clipped in :meth:`training_step`
  over the step's gradient; a run on several processes clips each process's share before they
  are averaged, where the authors ran one). The authors' Omniglot configs run 50,000 episodes.
* **Optional batch norm of the LSTMs' pre-activations** (``BN1``/``BN2``) is off in every
  config the authors ship; fslearn has none.

The paper reports mini-ImageNet only (5-way: 43.44 +- 0.77 1-shot, 60.60 +- 0.71 5-shot,
Table 1); no Omniglot figure was published, so no ``paper_figures`` are declared.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from fslearn.backbones import task_running_statistics
from fslearn.data.episodes import Episode
from fslearn.methods.inner_loop import InnerLoopMethod, Params
from fslearn.methods.options import Option

__all__ = ["LSTMOptimiser", "MetaLSTM", "OptimiserState", "UpdateRecord", "flatten_params",
           "preprocess", "unflatten_params"]

#: Andrychowicz et al.'s preprocessing constant (both codes use 10)
PREPROCESS_P = 10.0
#: the weight of each support mini-batch in the running averages of ``running_batch_norm``
#: (Torch7's ``SpatialBatchNormalization`` default, which the authors' learner keeps)
BATCH_NORM_MOMENTUM = 0.1

#: (first layer's (h, c), previous forget and input pre-activations), each per coordinate:
#: ``([hidden, P], [hidden, P]), [P], [P]`` (the first layer's states coordinate-last, see
#: :meth:`LSTMOptimiser.first_layer`); None before the first step
OptimiserState = tuple[tuple[Tensor, Tensor], Tensor, Tensor]


def preprocess(x: Tensor, p: float = PREPROCESS_P) -> Tensor:
    r"""Andrychowicz et al.'s preprocessing of gradients and losses: ``x: [...]`` ->
    ``[..., 2]``, :math:`(\log|x|/p, \mathrm{sign}(x))` where :math:`|x| \ge e^{-p}`, else
    :math:`(-1, e^p x)`. Large magnitudes are compressed to their order of magnitude and
    sign; tiny ones fall to a linear regime, so that the LSTM sees inputs of order 1."""
    big = x.abs() >= math.exp(-p)
    # the clamp keeps log finite where the first branch is not taken
    log_part = torch.where(big, x.abs().clamp_min(math.exp(-p)).log() / p, -torch.ones_like(x))
    sign_part = torch.where(big, x.sign(), x * math.exp(p))
    return torch.stack([log_part, sign_part], dim=-1)


def flatten_params(params: Params, names: list[str]) -> Tensor:
    """The parameters ``names`` of ``params`` as one vector ``[P]``, in that order."""
    return torch.cat([params[name].reshape(-1) for name in names])


def unflatten_params(flat: Tensor, like: Params, names: list[str]) -> Params:
    """Split ``flat: [P]`` back into tensors shaped as ``like[name]`` for each of ``names``."""
    sizes = [like[name].numel() for name in names]
    return {name: piece.view_as(like[name])
            for name, piece in zip(names, torch.split(flat, sizes), strict=True)}


class UpdateRecord(NamedTuple):
    r"""One update of :meth:`MetaLSTM.adapt`, for looking inside the learned optimiser: the
    learner's support loss :math:`\mathcal{L}_t` before the update, and per parameter tensor
    (shaped as it) the forget gate :math:`f_t`, the input gate :math:`i_t` (the step size)
    and the gradient :math:`\nabla_t` it read."""

    loss: float
    forget: Params
    input_gate: Params
    grad: Params


class LSTMOptimiser(nn.Module):
    r"""The two-layer coordinate-wise Meta-LSTM; see the module docstring.

    Args:
        hidden_size: units of the first LSTM layer (20 in both codes).
    """

    def __init__(self, hidden_size: int = 20) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        #: reads [pre(loss), pre(grad)]: 4 numbers per coordinate
        self.lstm = nn.LSTMCell(4, hidden_size)
        #: the gates' weights on [h_t, theta_{t-1}, previous pre-activation], and their biases
        self.forget_weight = nn.Parameter(torch.empty(hidden_size + 2))
        self.input_weight = nn.Parameter(torch.empty(hidden_size + 2))
        self.forget_bias = nn.Parameter(torch.empty(1))
        self.input_bias = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' start: small weights, a forget gate near 1 and an input gate near 0."""
        for weight in self.parameters():
            nn.init.uniform_(weight, -0.01, 0.01)
        nn.init.uniform_(self.forget_bias, 4.0, 5.0)
        nn.init.uniform_(self.input_bias, -5.0, -4.0)

    def initial_state(self, coordinates: int, like: Tensor) -> OptimiserState:
        """Zero states for ``coordinates`` cells, of ``like``'s dtype and device."""
        zeros = like.new_zeros(self.hidden_size, coordinates)
        return (zeros, zeros), like.new_zeros(coordinates), like.new_zeros(coordinates)

    def first_layer(self, inputs: Tensor, hidden: tuple[Tensor, Tensor]
                    ) -> tuple[Tensor, Tensor]:
        """``self.lstm`` (PyTorch's :class:`~torch.nn.LSTMCell`, whose weights it uses) on
        ``inputs: [4, P]`` and ``hidden: ([hidden, P], [hidden, P])``, coordinates last: each
        gate is then a contiguous block of rows, which makes the cell 2.3-2.5 times faster on a
        CPU than ``LSTMCell`` on ``[P, 4]``, whose gates are strided column blocks
        (``benchmarks/metalstm_cell.py``)."""
        h, c = hidden
        # [4 * hidden, 4 + hidden]
        weights = torch.cat([self.lstm.weight_ih, self.lstm.weight_hh], dim=1)
        bias = (self.lstm.bias_ih + self.lstm.bias_hh)[:, None]
        # PyTorch's row order: the input, forget, cell and output gates
        in_gate, forget_gate, cell_gate, out_gate = torch.addmm(
            bias, weights, torch.cat([inputs, h], dim=0)).chunk(4, dim=0)
        c = torch.sigmoid(forget_gate) * c + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
        return torch.sigmoid(out_gate) * torch.tanh(c), c

    def forward(self, theta: Tensor, grad: Tensor, loss: Tensor,
                state: OptimiserState | None = None) -> tuple[Tensor, OptimiserState]:
        r"""One update of the learner.

        Args:
            theta: ``[P]`` the learner's parameters :math:`\theta_{t-1}` (the cell state).
            grad: ``[P]`` the learner's gradient :math:`\nabla_t` at ``theta`` (a constant).
            loss: ``[]`` the learner's loss :math:`\mathcal{L}_t` (a constant).
            state: the previous step's :data:`OptimiserState` (None: the first step).

        Returns:
            :math:`\theta_t = \sigma(f) \theta_{t-1} - \sigma(i) \nabla_t` ``[P]``, and the new
            state.
        """
        coordinates = theta.shape[0]
        if state is None:
            state = self.initial_state(coordinates, theta)
        hidden, forget_prev, input_prev = state
        inputs = torch.cat([preprocess(loss.reshape(1)).reshape(2, 1).expand(2, coordinates),
                            preprocess(grad).T], dim=0)  # [4, P]: the authors' order
        h, c = self.first_layer(inputs, hidden)
        n = self.hidden_size
        # W [h_t, theta_{t-1}, previous pre-activation] + b, with h_t coordinate-last
        forget = (self.forget_weight[:n] @ h + self.forget_weight[n] * theta
                  + self.forget_weight[n + 1] * forget_prev + self.forget_bias)
        input_ = (self.input_weight[:n] @ h + self.input_weight[n] * theta
                  + self.input_weight[n + 1] * input_prev + self.input_bias)
        new_theta = torch.sigmoid(forget) * theta - torch.sigmoid(input_) * grad
        return new_theta, ((h, c), forget, input_)


class MetaLSTM(InnerLoopMethod):
    r"""The Meta-LSTM optimiser training MAML's network; see the module docstring.

    Args:
        n_way: classes of the learner's head (it scores ``n_way``-way episodes only).
        in_channels, image_size, hidden_channels, blocks: the learner's Conv4.
        inner_steps: updates of the learner on the support set in training (15: the authors'
            Omniglot 1-shot config).
        test_inner_steps: updates in validation and evaluation (default: ``inner_steps``).
        inner_batch: support images per update (None: all of them), one of each class in turn.
        hidden_size: units of the Meta-LSTM's first layer (20).
        max_grad_norm: the meta-gradient's norm is clipped to this in training (0.25, the
            authors'; None: no clipping).
    """

    name = "metalstm"
    # Ravi and Larochelle (2017) report mini-ImageNet only (Table 1: 43.44 +- 0.77 and
    # 60.60 +- 0.71 at 5-way 1- and 5-shot); register() accepts Omniglot settings only, so no
    # paper_figures are declared
    regression_hparams = None  # an image learner only
    #: the authors' outer loop: Adam at 1e-3 with a constant rate, one episode per step; 15
    #: queries per class as in their mini-ImageNet episodes
    training_defaults = MappingProxyType({"n_way": 5, "k_shot": 1, "n_query": 15,
                                          "batch_size": 1, "lr": 1e-3, "lr_gamma": 1.0})
    cli_options = (
        Option(("--inner-steps",), "inner gradient steps per task in training", type=int),
        Option(("--test-inner-steps",), "inner steps in validation and evaluation (Finn et al. "
               "test with 3)", type=int, default_text="--inner-steps"),
        Option(("--inner-batch",), "support images per inner step in training", type=int,
               default_text="all of them"),
        Option(("--hidden-size",), "units of the Meta-LSTM's first layer", type=int),
        Option(("--max-grad-norm",), "clip the meta-gradient's norm to this (the authors' 0.25)",
               type=float),
    )

    def __init__(self, n_way: int = 5, in_channels: int = 1, inner_steps: int = 15,
                 test_inner_steps: int | None = None, inner_batch: int | None = None,
                 image_size: int = 28, hidden_channels: int = 64, blocks: int = 4,
                 hidden_size: int = 20, max_grad_norm: float | None = 0.25) -> None:
        # inner_lr is unused (the LSTM chooses the steps); the loop engine: the LSTM's states
        # are per task and the learner's gradient is taken outside the graph
        super().__init__(n_way, in_channels, inner_steps, 1.0, test_inner_steps,
                         first_order=True, engine="loop", image_size=image_size,
                         hidden_channels=hidden_channels, blocks=blocks)
        for label, value in (("inner_batch", inner_batch), ("hidden_size", hidden_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive (or None: no clipping), got "
                             f"{max_grad_norm!r}")
        self.optimiser = LSTMOptimiser(hidden_size)
        self.inner_batch, self.max_grad_norm = inner_batch, max_grad_norm
        #: at evaluation, normalise each query with running averages of the support
        #: mini-batches' statistics (the authors' meta-test); False: each batch's own
        #: (``transductive`` then says which batch). Training is unchanged.
        self.running_batch_norm = False
        self.hparams = {"n_way": n_way, "in_channels": in_channels, "inner_steps": inner_steps,
                        "test_inner_steps": test_inner_steps, "inner_batch": inner_batch,
                        "image_size": image_size, "hidden_channels": hidden_channels,
                        "blocks": blocks, "hidden_size": hidden_size,
                        "max_grad_norm": max_grad_norm}

    def support_batches(self, support_x: Tensor, support_y: Tensor, steps: int
                        ) -> list[tuple[Tensor, Tensor]]:
        """The mini-batch of each of ``steps`` updates: ``inner_batch`` support images
        (``[b, C, H, W]``, ``[b]``) taken one of each class in turn from the class-major
        ``support_x: [n_way*k_shot, C, H, W]``, cycling."""
        n_support = support_x.shape[0]
        order = torch.arange(n_support, device=support_x.device)
        order = order.view(self.n_way, n_support // self.n_way).T.reshape(-1)
        batch = n_support if self.inner_batch is None else min(self.inner_batch, n_support)
        return [(support_x[rows], support_y[rows]) for rows in
                (order[torch.arange(s * batch, (s + 1) * batch, device=order.device) % n_support]
                 for s in range(steps))]

    def adapt(self, params: Params, support_x: Tensor, support_y: Tensor,
              record: list[UpdateRecord] | None = None) -> Params:
        r""":math:`\theta_T`: the learner's parameters after the Meta-LSTM's updates on one
        task's support set (``support_x: [n_way*k_shot, C, H, W]``), starting from
        :math:`\theta_0` = ``params``; differentiable in :math:`\theta_0` and the LSTM's weights,
        never through the learner's gradients (first order). With ``record``, one
        :class:`UpdateRecord` per update is appended to it (what the optimiser saw and did)."""
        steps = self.training_inner_steps if self.training else self.test_inner_steps
        names = list(params)
        theta = flatten_params(params, names)
        state: OptimiserState | None = None

        def support_loss(flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
            logits = functional_call(self.network, unflatten_params(flat, params, names), (x,))
            return self.task_loss(logits, y)

        for x, y in self.support_batches(support_x, support_y, steps):
            # at a detached copy: the gradient and loss are constants for the meta-gradient
            grad, loss = grad_and_value(support_loss)(theta.detach(), x, y)
            theta, state = self.optimiser(theta, grad, loss, state)
            if record is not None:
                _, forget, input_ = state
                record.append(UpdateRecord(
                    loss.item(),
                    unflatten_params(torch.sigmoid(forget).detach(), params, names),
                    unflatten_params(torch.sigmoid(input_).detach(), params, names),
                    unflatten_params(grad, params, names)))
        return unflatten_params(theta, params, names)

    def adapt_and_score(self, params: Params, step_sizes: dict[str, Tensor | float],
                        support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """One task's query logits ``[n_query_total, n_way]`` with the adapted learner
        (``step_sizes`` is unused: the LSTM chooses the steps); batch norm as
        :attr:`running_batch_norm` says."""
        if self.training or not self.running_batch_norm:
            return self.query_forward(self.network, self.adapt(params, support_x, support_y),
                                      support_x, query_x)
        with task_running_statistics(self.network, BATCH_NORM_MOMENTUM) as stop_collecting:
            adapted = self.adapt(params, support_x, support_y)
            stop_collecting()
            return functional_call(self.network, adapted, (query_x,))

    def training_step(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """The family's per-task back-propagation, then the authors' clipping of the step's
        meta-gradient norm to :attr:`max_grad_norm`."""
        loss, logits = super().training_step(episode)
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
        return loss, logits
