"""The checker framework behind the course's exercises.

An exercise asks the student for one or more functions. For each of them a :class:`FunctionSpec`
gives the package's reference implementation, a few small hand-designed test cases
(:class:`Case`) and the typical wrong answers (:class:`Mistake`): each mistake is a wrong variant
of the reference with the hint to give when the student's function behaves exactly like it.

:func:`check_functions` runs the student's functions on every case and returns a
:class:`CheckResult` with one :class:`FunctionVerdict` per function. It never lets an exception
escape: a ``NotImplementedError`` (the stub of a student notebook) means "not done yet", any other
exception becomes a verdict that names the exception, the line of the student's code that raised
it, the shapes of the inputs, and a hint. Messages are plain text and deterministic (the
notebooks store them and nbval compares them); in Jupyter the result also renders in colour.

Adding an exercise: write a module next to this one with a ``check_...`` function that builds
the specs and calls :func:`check_functions`, then export it from ``fslearn.exercises``.
"""

from __future__ import annotations

import html
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

# what the checkers show of values, and the copies and comparisons of the cases' tensors
from fslearn.exercises.checker.values import (
    _SHOW_MAX,
    _article,
    _as_float64,
    _clone,
    _identical,
    _is_tensors,
    _number,
    _shape,
    _shape_text,
    _show_numbers,
    _show_value,
    describe,
)

__all__ = [
    "Case",
    "CheckResult",
    "FunctionSpec",
    "FunctionVerdict",
    "Mistake",
    "Status",
    "check_function",
    "check_functions",
    "check_given",
    "describe",
    "generic_error_hint",
    "show",
]

#: ``passed``: right on every case; ``not_done``: still the stub; ``wrong``: a wrong result;
#: ``error``: the student's code raised an exception or is not a function.
Status = Literal["passed", "not_done", "wrong", "error"]

#: Lines of an exception's message repeated in a verdict.
_ERROR_LINES = 4


@dataclass(frozen=True)
class Case:
    """One test input: the positional arguments of the function under test.

    Attributes:
        description: what the case is about, shown in messages ("labels in shuffled order").
        args: the arguments; tensors are cloned before every call, so the case is reusable.
        arg_names: one name per argument, for messages.
    """

    description: str
    args: tuple[Any, ...]
    arg_names: tuple[str, ...]


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer, recognised by behaving exactly like ``variant`` on every case.

    Attributes:
        key: stable identifier(s) of the mistake, ``+``-joined when several combine
            (``"population_std+percentage"``); tests and course authors use them.
        hint: what to tell the student.
        variant: the wrong implementation, with the reference's signature.
    """

    key: str
    hint: str
    variant: Callable[..., Any]


@dataclass(frozen=True)
class FunctionSpec:
    """How to check one function of an exercise.

    Attributes:
        name: the function's name in the notebook.
        reference: the right implementation (the package's own).
        cases: the test cases, simplest first (the first failing one is shown).
        mistakes: typical wrong answers, most likely first (the first that matches wins).
        returns: what the function returns, for messages ("one number", "[tasks, n_way, D]").
        output_axes: names of the output's axes, for messages about shapes.
        normalise: applied to the student's output (as a float64 tensor) before comparing.
        error_hint: a hint for an exception raised by the student's code, or None to fall back
            to the generic hints.
        rtol, atol: tolerances of the comparison with the reference (float32 work is fine).
        call: how to run a function (the student's, the reference or a mistake's variant) on a
            case's arguments and get what is compared, ``call(function, args)``; None:
            ``function(*args)``. An exercise sets it when what matters is not the plain return
            value: exercise 5.1 compares the adapted parameters *and* the meta-gradient that
            flows back through the student's inner step. It receives fresh copies of the
            arguments (dicts of tensors included), so the in-place check still sees them.
        output_check: what the comparison cannot see, such as the dtype (the values are compared
            as float64): ``output_check(raw)`` gets the raw output of each case once the values
            are right on every case and returns ``(key, hint)`` for a problem, or None. Exercise
            4 requires a float tensor, which the model's later arithmetic needs.
    """

    name: str
    reference: Callable[..., Any]
    cases: tuple[Case, ...]
    mistakes: tuple[Mistake, ...] = ()
    returns: str = ""
    output_axes: tuple[str, ...] = ()
    normalise: Callable[[Tensor], Tensor] | None = None
    error_hint: Callable[[BaseException], str | None] | None = None
    rtol: float = 1e-4
    atol: float = 1e-6
    call: Callable[[Callable[..., Any], tuple[Any, ...]], Any] | None = None
    output_check: Callable[[Any], tuple[str, str] | None] | None = None

    def run(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """``function`` on ``args``, through :attr:`call` when it is set."""
        return function(*args) if self.call is None else self.call(function, args)


@dataclass(frozen=True)
class FunctionVerdict:
    """The verdict on one function.

    Attributes:
        name: the function's name in the notebook.
        status: see :data:`Status`.
        message: the full plain-text message.
        mistakes: keys of the recognised typical mistakes (empty when none was recognised).
        student: the checked object (what :meth:`CheckResult.use` recognises).
        reference: the package's implementation.
    """

    name: str
    status: Status
    message: str
    mistakes: tuple[str, ...] = ()
    student: Any = field(default=None, repr=False, compare=False)
    reference: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


_COLOURS: dict[str, tuple[str, str]] = {
    # status: (border, background)
    "passed": ("#2e7d32", "#e8f5e9"),
    "not_done": ("#1565c0", "#e3f2fd"),
    "wrong": ("#ef6c00", "#fff3e0"),
    "error": ("#c62828", "#ffebee"),
}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of an exercise's checker: ``passed`` and ``message``, and one verdict per
    function. Its plain-text form is ``message``; in Jupyter it renders in colour."""

    #: the exercise, numbered by chapter as the notebooks are, e.g. "exercise 4.1, Siamese losses"
    exercise: str
    verdicts: tuple[FunctionVerdict, ...]

    @property
    def passed(self) -> bool:
        """Whether every function is right."""
        return all(verdict.passed for verdict in self.verdicts)

    @property
    def status(self) -> Status:
        """The worst status of the functions: error, wrong, not_done, then passed."""
        for status in ("error", "wrong", "not_done"):
            if any(verdict.status == status for verdict in self.verdicts):
                return status  # type: ignore[return-value]
        return "passed"

    @property
    def message(self) -> str:
        """The verdict in plain text: one paragraph per function."""
        text = "\n\n".join(verdict.message for verdict in self.verdicts)
        if self.passed and len(self.verdicts) > 1:
            text += "\n\nAll the functions of this exercise are right: well done!"
        # The last line names the exercise, numbered by chapter as in the book (``4.1``).
        return f"{text}\n\n[{self.exercise}]"

    @property
    def mistakes(self) -> tuple[str, ...]:
        """Keys of every recognised typical mistake."""
        return tuple(key for verdict in self.verdicts for key in verdict.mistakes)

    def use(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` if it passed this check, else the package's reference implementation.

        The cells after a checker call this, so that a notebook runs to the end before the
        exercise is solved; it prints a note when it hands back the reference.
        """
        for verdict in self.verdicts:
            if verdict.student is function:
                if verdict.passed:
                    return function
                print(f"Note: `{verdict.name}` has not passed the check yet, so the cells below "
                      f"use the package's reference implementation instead.")
                return verdict.reference  # type: ignore[return-value]
        name = getattr(function, "__name__", None)
        for verdict in self.verdicts:
            if verdict.name == name:
                print(f"Note: `{name}` has changed since it was checked: run the check again. "
                      f"Meanwhile the cells below use the package's reference implementation.")
                return verdict.reference  # type: ignore[return-value]
        raise ValueError(f"{function!r} is not one of the functions of {self.exercise!r}: "
                         f"{[verdict.name for verdict in self.verdicts]}.")

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        border, background = _COLOURS[self.status]
        return (f'<div style="border-left: 6px solid {border}; background: {background}; '
                f'color: #212121; padding: 0.4em 0.8em; margin: 0.2em 0;">'
                f'<pre style="margin: 0; white-space: pre-wrap; background: transparent;">'
                f"{html.escape(self.message)}</pre></div>")


def show(result: CheckResult) -> None:
    """Display ``result``: in colour in a Jupyter kernel, as plain text elsewhere."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        get_ipython = None  # type: ignore[assignment]
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(result)
    else:
        print(result.message)


def check_functions(exercise: str, specs: Sequence[FunctionSpec], students: Sequence[Any],
                    quiet: bool = False) -> CheckResult:
    """Check each student function against its spec; display the result unless ``quiet``."""
    verdicts = tuple(check_function(spec, student) for spec, student in zip(specs, students,
                                                                              strict=True))
    result = CheckResult(exercise, verdicts)
    if not quiet:
        show(result)
    return result


def check_given(checker: str, exercise: str,
                given: Sequence[tuple[str, Callable[[], FunctionSpec], Any]],
                quiet: bool = False) -> CheckResult:
    """Check the functions a student passed to an exercise's checker, each on its own.

    ``given`` lists ``(parameter name, spec factory, student function or None)`` for every
    function of the exercise; those left at None are not checked, so a notebook can check them
    one at a time. ``checker`` names the checker for the error raised when none is given.
    """
    chosen = [(make_spec, function) for _, make_spec, function in given if function is not None]
    if not chosen:
        first = given[0][0]
        raise TypeError(f"{checker} needs at least one function to check, e.g. "
                        f"{checker}({first}={first}).")
    return check_functions(exercise, [make_spec() for make_spec, _ in chosen],
                           [function for _, function in chosen], quiet=quiet)


# --------------------------------------------------------------------------------------------
# One function


class _BadOutput(Exception):
    """The student's function returned something that is not a number or a tensor."""


def check_function(spec: FunctionSpec, student: Any) -> FunctionVerdict:
    """Run ``student`` on every case of ``spec``; see the module docstring."""

    def verdict(status: Status, message: str, mistakes: tuple[str, ...] = ()) -> FunctionVerdict:
        return FunctionVerdict(spec.name, status, message, mistakes, student, spec.reference)

    if not callable(student):
        return verdict("error", f"Error: `{spec.name}` is not a function but "
                                f"{_article(type(student).__name__)}: run the cell that defines "
                                f"it, then this check again.")
    total = len(spec.cases)
    raws: list[Any] = []
    outputs: list[Tensor] = []
    first_failure: int | None = None
    for index, case in enumerate(spec.cases):
        args = _clone(case.args)
        try:
            raw = spec.run(student, args)
        except NotImplementedError:
            return verdict("not_done", f"Not done yet: fill in `{spec.name}` above (replace the "
                                       f"`raise NotImplementedError(...)` line), run its cell, "
                                       f"then run this check again.")
        except Exception as error:
            return verdict("error", _error_message(spec, student, index, error))
        changed = [name for name, before, after in zip(case.arg_names, case.args, args,
                                                       strict=True)
                   if _is_tensors(before) and not _identical(before, after)]
        if changed:
            return verdict("wrong", _header(spec, index, "changed its input") + "\n" + _hint(
                f"`{spec.name}` modified `{changed[0]}` in place (with an in-place operation "
                f"such as `-=`, `+=` or a method ending in `_`). The caller still needs its "
                f"data: compute new tensors instead."), ("modified_input",))
        try:
            got = _output_tensor(raw, spec)
        except _BadOutput as bad:
            return verdict("wrong", _header(spec, index, "returned the wrong kind of value")
                           + "\n" + _hint(str(bad)), ("returned_none",) if raw is None else ())
        raws.append(raw)
        outputs.append(got)
        if first_failure is None and not _close(got, _reference_output(spec, case), spec):
            first_failure = index
    if first_failure is None and spec.output_check is not None:
        for index, raw in enumerate(raws):
            problem = spec.output_check(raw)
            if problem is not None:
                key, text = problem
                return verdict("wrong", _header(spec, index, "returned the wrong kind of value")
                               + "\n" + _hint(text), (key,))
    if first_failure is None:
        return verdict("passed", f"Correct: `{spec.name}` agrees with the reference on all "
                                 f"{total} test cases.")
    return _wrong_verdict(spec, student, outputs, first_failure)


def _wrong_verdict(spec: FunctionSpec, student: Any, outputs: list[Tensor],
                   index: int) -> FunctionVerdict:
    case = spec.cases[index]
    got, expected = outputs[index], _reference_output(spec, case)
    same_shape = tuple(got.shape) == tuple(expected.shape)
    lines = [_header(spec, index, "gives wrong values" if same_shape else "gives the wrong shape")]
    lines.append("  inputs:   " + "; ".join(f"{name} = {_show_value(value)}" for name, value
                                           in zip(case.arg_names, case.args, strict=True)))
    if same_shape:
        lines.extend(_difference(expected, got, spec))
    else:
        lines.append(f"  expected: {_shape_text(expected, spec.output_axes)}")
        lines.append(f"  got:      {_shape_text(got, ())}")
    mistake = _recognise(spec, outputs)
    if mistake is not None:
        lines.append(_hint(mistake.hint))
        keys = tuple(mistake.key.split("+"))
    else:
        lines.append(_hint(_shape_hint(expected, got, spec) if not same_shape
                           else _values_hint(got)))
        keys = ()
    return FunctionVerdict(spec.name, "wrong", "\n".join(lines), keys, student, spec.reference)


def _recognise(spec: FunctionSpec, outputs: list[Tensor]) -> Mistake | None:
    """The first typical mistake that gives the student's outputs on every case."""
    for mistake in spec.mistakes:
        for case, got in zip(spec.cases, outputs, strict=True):
            try:
                wrong = _as_float64(spec.run(mistake.variant, _clone(case.args)))
            except Exception:
                break
            if not _close(got, wrong, spec):
                break
        else:
            return mistake
    return None


def _reference_output(spec: FunctionSpec, case: Case) -> Tensor:
    return _as_float64(spec.run(spec.reference, _clone(case.args)))


def _header(spec: FunctionSpec, index: int, what: str) -> str:
    case = spec.cases[index]
    return (f"Not right yet: `{spec.name}` {what} on test case {index + 1} of "
            f"{len(spec.cases)} ({case.description}).")


def _hint(text: str) -> str:
    return f"Hint: {text}"


def _difference(expected: Tensor, got: Tensor, spec: FunctionSpec) -> list[str]:
    if expected.numel() <= _SHOW_MAX:
        return [f"  expected: {_show_numbers(expected)}", f"  got:      {_show_numbers(got)}"]
    wrong = ~torch.isclose(got, expected, rtol=spec.rtol, atol=spec.atol, equal_nan=True)
    position = [int(i) for i in wrong.nonzero()[0]]
    at = "[" + ", ".join(map(str, position)) + "]"
    axes = (f" ({', '.join(spec.output_axes)})"
            if spec.output_axes and len(spec.output_axes) == expected.ndim else "")
    return [f"  output shape {_shape(expected)}{axes} is right; first wrong entry at {at}:",
            f"  expected: {_number(float(expected[tuple(position)]))}",
            f"  got:      {_number(float(got[tuple(position)]))}"]


def _shape_hint(expected: Tensor, got: Tensor, spec: FunctionSpec) -> str:
    want, have = tuple(expected.shape), tuple(got.shape)
    if not want:
        return (f"the function must return one number ({spec.returns or 'a scalar'}), not "
                f"{got.numel()} numbers.")
    names = f" ({', '.join(spec.output_axes)})" if len(spec.output_axes) == len(want) else ""
    if sorted(want) == sorted(have):
        return (f"the axes are in the wrong order: the result must be {_shape(expected)}{names}. "
                f"Check the order of the axes where you combine or reshape tensors.")
    if len(have) < len(want):
        return (f"your result has {len(have)} axes instead of {len(want)}{names}: did you reduce "
                f"(sum or mean) over one axis too many, or drop the tasks axis? The function "
                f"must handle a whole batch of tasks.")
    if len(have) > len(want):
        return (f"your result has {len(have)} axes instead of {len(want)}{names}: did you forget "
                f"to reduce (sum or mean) over an axis?")
    return (f"compare the shapes axis by axis: the result must be {_shape(expected)}{names}. "
            f"Print the shapes of your intermediate tensors (`.shape`) to see where they go wrong.")


def _values_hint(got: Tensor) -> str:
    if torch.isnan(got).any():
        return ("your result contains NaN (not a number): a division by zero, or the mean of an "
                "empty selection?")
    return ("the shape is right but not the values. Work out test case 1 by hand and compare "
            "with what your function returns on it; printing intermediate results helps.")


# --------------------------------------------------------------------------------------------
# Exceptions


def _error_message(spec: FunctionSpec, student: Any, index: int, error: Exception) -> str:
    case = spec.cases[index]
    kind = type(error).__name__
    text = [line.rstrip() for line in str(error).strip().splitlines() if line.strip()]
    if len(text) > _ERROR_LINES:
        text = [*text[:_ERROR_LINES], "..."]
    lines = [f"Error: `{spec.name}` raised {kind} on test case {index + 1} of "
             f"{len(spec.cases)} ({case.description}):"]
    lines.extend(f"    {line}" for line in text or ["(no message)"])
    where = _student_line(student, error)
    if where:
        lines.append(f"  in your code, {where}")
    lines.append("  inputs: " + "; ".join(f"{name}: {describe(value)}" for name, value
                                          in zip(case.arg_names, case.args, strict=True)))
    hint = spec.error_hint(error) if spec.error_hint is not None else None
    lines.append(_hint(hint or generic_error_hint(error)))
    return "\n".join(lines)


def _student_line(student: Any, error: BaseException) -> str | None:
    """``line N: <code>`` of the deepest frame in the file where ``student`` was defined."""
    code = getattr(student, "__code__", None)
    if code is None:
        return None
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == code.co_filename:
            found = frame
    if found is None:
        return None
    source = (found.line or "").strip()
    return f"line {found.lineno}: {source}" if source else f"line {found.lineno}"


def generic_error_hint(error: BaseException) -> str:
    """A hint for the common exceptions of tensor code."""
    text = str(error)
    if "must match the size of tensor" in text:
        return ("two tensors of incompatible shapes were combined. Broadcasting lines shapes up "
                "from the right and needs each pair of sizes to be equal or 1: print the shapes, "
                "and add an axis of size 1 where one is missing (`t.unsqueeze(1)` or "
                "`t[:, None]`).")
    if "shapes cannot be multiplied" in text:
        return ("a matrix product got incompatible shapes: in `a @ b` the last axis of `a` must "
                "have the size of the second-to-last axis of `b`. Print the shapes.")
    if "is invalid for input of size" in text or "view size is not compatible" in text:
        return ("a reshape asked for a shape with a different number of entries than the "
                "tensor has (or `.view` met a non-contiguous tensor: use `.reshape`).")
    if "dtype" in text or "scalar type" in text:
        return ("two tensors of different dtypes met (e.g. integer labels and float "
                "embeddings): convert one with `.to(other.dtype)` or `.float()`.")
    if isinstance(error, IndexError):
        return ("an index is out of range: check which axis you index, and that the labels run "
                "from 0 to n_way - 1.")
    if isinstance(error, NameError):
        return ("a name is not defined: run the notebook's first cells (the imports) and check "
                "the spelling.")
    if isinstance(error, ZeroDivisionError):
        return "a division by zero: which number can be 0 there?"
    if isinstance(error, AttributeError):
        return ("the object has no such attribute or method: torch and numpy name some things "
                "differently (`.numel()` vs `.size`, `dim=` vs `axis=`). Check the type of the "
                "object you call it on.")
    return "read the error above, fix your function, run its cell again, then this check."


# --------------------------------------------------------------------------------------------
# Outputs


def _output_tensor(raw: Any, spec: FunctionSpec) -> Tensor:
    if raw is None:
        raise _BadOutput(f"it returned None: did you forget the `return` statement? It should "
                         f"return {spec.returns or 'a tensor'}.")
    try:
        got = _as_float64(raw)
    except (TypeError, ValueError, RuntimeError) as error:
        raise _BadOutput(f"it returned {_article(type(raw).__name__)}, which is not "
                         f"{spec.returns or 'a tensor'}.") from error
    if torch.is_complex(got):
        raise _BadOutput("it returned complex numbers.")
    return spec.normalise(got) if spec.normalise is not None else got


def _close(got: Tensor, expected: Tensor, spec: FunctionSpec) -> bool:
    return tuple(got.shape) == tuple(expected.shape) and bool(
        torch.allclose(got, expected, rtol=spec.rtol, atol=spec.atol, equal_nan=True))
