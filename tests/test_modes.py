"""evaluation_mode: a module's mode and attributes, set for a block and restored after it."""

from __future__ import annotations

import pytest
from torch import nn

from fslearn._modes import evaluation_mode


class Stepper(nn.Module):
    """A module with a test-time setting, as MAML has ``test_inner_steps``."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.BatchNorm1d(2)
        self.test_inner_steps = 5


@pytest.mark.parametrize("training", [True, False])
def test_sets_eval_mode_and_attributes_then_restores_them(training):
    module = Stepper().train(training)
    with evaluation_mode(module, test_inner_steps=1) as inside:
        assert inside is module
        assert not module.training and not module.inner.training
        assert module.test_inner_steps == 1
        module.test_inner_steps = 2  # a change inside the block is undone too
    assert module.training is training and module.inner.training is training
    assert module.test_inner_steps == 5


def test_restores_after_an_exception():
    module = Stepper().train()
    with pytest.raises(RuntimeError, match="boom"), evaluation_mode(module, test_inner_steps=0):
        raise RuntimeError("boom")
    assert module.training and module.inner.training
    assert module.test_inner_steps == 5


def test_nested_use_restores_each_level():
    module = Stepper().train()
    with evaluation_mode(module, test_inner_steps=1):
        with evaluation_mode(module, test_inner_steps=2):
            assert not module.training and module.test_inner_steps == 2
        assert not module.training and module.test_inner_steps == 1  # still the outer block
    assert module.training and module.test_inner_steps == 5


def test_unknown_attribute_changes_nothing():
    module = Stepper().train()
    with pytest.raises(AttributeError, match="no attribute test_steps"), \
            evaluation_mode(module, test_steps=1):
        pass
    assert module.training and not hasattr(module, "test_steps")
