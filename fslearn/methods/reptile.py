r"""Reptile (Nichol, Achiam and Schulman, 2018): move the initialisation towards the weights that
a few steps of plain training on each task reach.

For each task :math:`\tau` of a batch, :math:`\phi_\tau` is what ``inner_steps`` gradient steps on
its support set make of :math:`\theta`; the outer update is

.. math:: \theta \leftarrow \theta + \epsilon \, \frac{1}{T}\sum_\tau (\phi_\tau - \theta),

no derivative of the inner loop at all. Written as a gradient, :math:`g = \theta - \bar\phi`, it
is one step of plain SGD with learning rate :math:`\epsilon` (the paper anneals it linearly from
1 to 0: ``--optimizer sgd --lr 1 --lr-schedule linear``), so the one training loop runs it.

At test time Reptile adapts exactly as MAML does (``test_inner_steps`` steps on the support set,
then the queries are scored). Differences from the paper's code, named here and in the chapter:
the inner optimizer is plain SGD on the whole support set (the paper: Adam with
:math:`\beta_1 = 0` on mini-batches of 10), and batch norm uses each batch's statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call

from fslearn.data.episodes import Episode
from fslearn.methods.maml import MAML, inner_loop

__all__ = ["Reptile"]


class Reptile(MAML):
    """Reptile on MAML's network; see the module docstring. Arguments as :class:`MAML`, whose
    ``first_order`` does not apply (Reptile never differentiates the inner loop)."""

    name = "reptile"

    def __init__(self, n_way: int = 5, in_channels: int = 1, inner_steps: int = 5,
                 inner_lr: float = 0.1, test_inner_steps: int | None = None,
                 engine: str = "auto", image_size: int = 28, hidden_channels: int = 64,
                 blocks: int = 4, task: str = "classification") -> None:
        super().__init__(n_way, in_channels, inner_steps, inner_lr, test_inner_steps,
                         first_order=True, engine=engine, image_size=image_size,
                         hidden_channels=hidden_channels, blocks=blocks, task=task)
        del self.hparams["first_order"]

    def training_step(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """Set each parameter's ``.grad`` to :math:`\\theta - \\bar\\phi`; return the query loss
        and logits at the adapted weights (for monitoring only: Reptile does not train on them).
        """
        self._check(episode)
        self._use_channels_last(True)
        params = {name: value.detach() for name, value in self.network_params().items()}
        step_sizes = self.step_sizes()
        moved = {name: torch.zeros_like(value) for name, value in params.items()}
        total, all_logits = torch.zeros(()), []
        with torch.no_grad():  # nothing here is differentiated: the update is theta - phi
            for t in range(episode.tasks):
                phi = inner_loop(self.network, params, episode.support_x[t],
                                 episode.support_y[t], self.inner_steps, step_sizes,
                                 loss_function=self.task_loss)
                for name in moved:
                    moved[name] += (params[name] - phi[name]) / episode.tasks
                logits = functional_call(self.network, phi, (episode.query_x[t],))
                total += self.task_loss(logits, episode.query_y[t]).cpu() / episode.tasks
                all_logits.append(logits)
        for name, value in self.network_params().items():
            value.grad = moved[name] if value.grad is None else value.grad + moved[name]
        return total, torch.stack(all_logits)
