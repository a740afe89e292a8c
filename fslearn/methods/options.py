"""How a method declares what the command line and the training loop need to know about it.

A method class declares, next to its constructor:

* ``cli_options``: its :class:`Option` s. A constructor option's default is read from the
  constructor's signature and a training option's from ``training_defaults``, so the help
  printed by ``fslearn train <name> --help`` cannot drift from the code;
* ``family``: the :class:`Family` it belongs to, if several methods share its options and its
  way of training (the messages that refuse a family's options to other methods name it);
* ``training_defaults``: the :class:`~fslearn.training.TrainingConfig` fields (and
  ``image_size``) it trains with unless told otherwise, the settings of its sampler of
  training batches under ``"sampler"``.

Nothing here names a method: the command line finds every registered method's declarations
through :data:`fslearn.methods.METHODS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Family", "Option", "declared_options", "option_default"]


@dataclass(frozen=True)
class Family:
    """Methods that share options and a way of training.

    Attributes:
        name: how messages and help call them, plural (``"sequence methods"``).
        summary: what sets them apart, shown in the title of their options' help group.
        why: appended to the family's members where another method is refused an option that
            shapes the family's kind of training (``", which train on pairs"``).
        refuses: the shared training options (argument names: ``"way"``, ``"shot"``, ...) that
            do not apply to the family's kind of training; given, they are refused.
        refused_as: what those options shape, in the refusal (``"training episodes"``).
        trains_on: what the family's methods train on instead, in the refusal (after the
            method's name: ``"trains on pairs or triplets, ..."``).
    """

    name: str
    summary: str = ""
    why: str = ""
    refuses: tuple[str, ...] = ()
    refused_as: str = "training episodes"
    trains_on: str = ""


@dataclass(frozen=True)
class Option:
    """One command-line option of a method.

    Attributes:
        flags: the option strings, the first one canonical (``("--per-class", "--drawings")``).
        help: what it does; say the default in words where it is None or depends on something
            else (the default value itself is appended from the code).
        type: converts the command-line string (None for a flag).
        choices: the values accepted, if only some are.
        metavar: the name of the value in the help.
        flag: a switch without a value (given: True).
        constructor: a constructor argument of the method (its default read from the
            constructor's signature); False for a setting of the training run (its default
            read from the method's ``training_defaults``): the
            :class:`~fslearn.training.TrainingConfig` field ``config_field``, or where that is
            None a setting of the method's sampler, ``TrainingConfig.sampler[dest]``.
        config_field: see ``constructor`` (``"batch_size"``: an option that sizes the batch
            of one step in the method's own unit, pairs or images).
        exclusive: it shapes the family's kind of training, so a method outside the family is
            refused it together with the family's other such options, naming the family and
            its ``why``; other options are refused one at a time, naming the methods that take
            them.
        default_text: what a default of None means, in words (``"all of them"``).
        positive: values below 1 are refused (``--read-heads must be a positive integer``).
        needs: ``(argument name, what this option does)`` where it only means something with
            that other option of the method given too.
    """

    flags: tuple[str, ...]
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    flag: bool = False
    constructor: bool = True
    config_field: str | None = None
    exclusive: bool = False
    default_text: str | None = None
    positive: bool = False
    needs: tuple[str, str] | None = None

    @property
    def dest(self) -> str:
        """The argument's name: the first flag without dashes, ``-`` as ``_``."""
        return self.flags[0].lstrip("-").replace("-", "_")


def option_default(method: type, option: Option) -> Any:
    """The default of ``option`` for the method class ``method``: its constructor's default
    for a constructor option, its ``training_defaults`` entry for a training option (its
    ``config_field``, or its setting under ``"sampler"``; None where there is none)."""
    if option.constructor:
        parameter = inspect.signature(method.__init__).parameters.get(option.dest)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            return None
        return parameter.default
    defaults = getattr(method, "training_defaults", {})
    if option.config_field is not None:
        return defaults.get(option.config_field)
    return defaults.get("sampler", {}).get(option.dest)


def declared_options(methods: Iterable[type]) -> Mapping[str, tuple[Option, list[type]]]:
    """Every option that any of ``methods`` declares, by argument name, with the methods that
    declare it (in the order given); the first declaration stands for the others.

    Raises:
        ValueError: two declarations of one argument name with different flags, or a
            constructor option that the constructor does not take.
    """
    found: dict[str, tuple[Option, list[type]]] = {}
    for method in methods:
        for option in getattr(method, "cli_options", ()):
            if option.constructor and (
                    option.dest not in inspect.signature(method.__init__).parameters):
                raise ValueError(f"{method.__name__} declares {option.flags[0]} as a "
                                 f"constructor option, but its constructor takes no "
                                 f"{option.dest!r}.")
            first, owners = found.setdefault(option.dest, (option, []))
            if first.flags != option.flags or first.flag != option.flag:
                raise ValueError(f"{method.__name__} declares {option.flags} for "
                                 f"{option.dest!r}, but another method declares "
                                 f"{first.flags}: one argument, one set of flags.")
            owners.append(method)
    return found
