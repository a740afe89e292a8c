"""Temporary module modes shared by evaluation, prediction, the methods and the book's widgets.

Evaluating a model must not change it: batch norm has to use its running statistics (evaluation
mode), and a method's test-time settings (such as MAML's ``test_inner_steps``) may be set for one
run only. :func:`evaluation_mode` does both and puts everything back, even when the run fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from torch import nn

__all__ = ["evaluation_mode"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@contextmanager
def evaluation_mode(module: ModuleT, **attributes: Any) -> Iterator[ModuleT]:
    """Put ``module`` in evaluation mode, and set ``attributes`` on it, for the ``with`` block.

    On exit, normal or by an exception, each attribute gets back the value it had on entry
    (including a change made to it inside the block) and the module goes back to the mode it was
    in, by ``module.train(was_training)``, which sets the mode of every submodule alike. Gradient
    tracking is left alone: wrap the block in :func:`torch.no_grad` where that is wanted.

    Args:
        module: the module to evaluate.
        **attributes: existing attributes of ``module`` to set for the block, e.g.
            ``test_inner_steps=10``.

    Yields:
        ``module`` itself.

    Raises:
        AttributeError: ``module`` has no attribute of one of those names (nothing is changed).

    Example::

        with evaluation_mode(maml, test_inner_steps=10), torch.no_grad():
            predictions = maml(episode)
    """
    missing = [name for name in attributes if not hasattr(module, name)]
    if missing:
        raise AttributeError(f"{type(module).__name__} has no attribute {', '.join(missing)} "
                             "to set for evaluation")
    kept = {name: getattr(module, name) for name in attributes}
    was_training = module.training
    module.eval()
    try:
        for name, value in attributes.items():
            setattr(module, name, value)
        yield module
    finally:
        for name, value in kept.items():
            setattr(module, name, value)
        module.train(was_training)
