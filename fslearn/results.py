"""Published figures that the course sets beside its own (fractions, not percentages).

A method's own figures are declared in its module, beside its constructor, as
``paper_figures = {"classification": PaperFigures(citation, {(n_way, k_shot): accuracy})}``
(see :class:`PaperFigures`); this module keeps what belongs to no one method: the settings every
paper reports, the papers' test set, and Lake et al.'s challenge table. :data:`PAPER_RESULTS`
gathers the registered methods' declarations under their names, for code written before them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["KINDS_OF_TEST", "LAKE_CHALLENGE_ERRORS", "PAPER_DATASET", "PAPER_RESULTS",
           "STANDARD_SETTINGS", "PaperFigures", "paper_figures"]

#: the four Omniglot settings every paper reports: (n_way, k_shot)
STANDARD_SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (20, 1), (20, 5))

#: the test set of the papers' N-way K-shot figures below (a figure of fslearn's on another test
#: set, such as the Lake protocol's evaluation alphabets, has no paper figure beside it)
PAPER_DATASET = "omniglot/vinyals/test"

#: Lake, Salakhutdinov and Tenenbaum (2015), Science 350(6266), Fig. 3 and text: error rates
#: (fractions) on their 20-way within-alphabet one-shot challenge (20 runs, 400 test items).
#: label -> (error, who and how, trained under Lake's protocol: the 30 background alphabets
#: only; None for people). Koch et al. (2015) trained a verification network on 40 alphabets
#: with affine distortions, their own protocol.
LAKE_CHALLENGE_ERRORS: dict[str, tuple[float, str, bool | None]] = {
    "people": (0.045, "Lake et al. (2015): human participants", None),
    "BPL": (0.033, "Lake et al. (2015): Bayesian Program Learning", True),
    "Siamese convnet": (0.080, "Koch, Zemel and Salakhutdinov (2015), as reported by Lake et al. "
                               "(2015): own protocol, 40 training alphabets, affine distortions",
                        False),
    "deep convnet": (0.135, "Lake et al. (2015): a deep convolutional network", True),
    "hierarchical deep": (0.348, "Lake et al. (2015): hierarchical deep model", True),
}

#: the kinds of test whose published figures ``fslearn report`` sets beside a checkpoint's, and
#: the shape of :attr:`PaperFigures.figures` for each: ``"classification"``, N-way K-shot test
#: accuracy on :data:`PAPER_DATASET`, ``{(n_way, k_shot): accuracy}``; ``"regression"``, sinusoid
#: mean squared error after gradient steps on K support points, ``{k_shot: {steps: mse}}``;
#: ``"sequences"``, Omniglot sequence episodes, ``{n_way: {presentation: accuracy}}``. A method
#: may declare figures under other names too (a table the book reads, not ``report``).
KINDS_OF_TEST = ("classification", "regression", "sequences")


@dataclass(frozen=True)
class PaperFigures:
    """Figures one paper published for a method, with the words to cite it by.

    Args:
        citation: authors (year), title, venue and the table the figures come from.
        figures: the method's own figures, shaped as :data:`KINDS_OF_TEST` says for the kind
            they are declared under (fractions, or errors where the kind says so).
        table: the whole published table, row label -> figures of the same shape, where the
            report shows the paper's other rows beside the method's (Santoro et al.'s human
            participants and baselines); empty where only the method's row is shown.
    """

    citation: str
    figures: Mapping[Any, Any] = field(default_factory=dict)
    table: Mapping[str, Mapping[Any, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.citation.strip():
            raise ValueError("PaperFigures needs a citation: authors (year), title, venue and "
                             "the table the figures come from.")
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))
        object.__setattr__(self, "table", MappingProxyType(
            {label: MappingProxyType(dict(row)) for label, row in self.table.items()}))


def paper_figures(method: type, kind: str) -> PaperFigures | None:
    """The figures ``method`` (a class) declares for ``kind`` of test, or None.

    Only the class's own declaration counts, never one inherited: a subclass is another method,
    trained otherwise, and the figures of its parent's paper are not its own (first-order MAML
    is a MAML subclass; ProtoCLR a Prototypical Network one).
    """
    return vars(method).get("paper_figures", {}).get(kind)


def _gathered() -> dict[str, Any]:
    """Every registered method's declared figures in the layout :data:`PAPER_RESULTS` had
    before methods declared them: method name -> classification figures; ``"sinusoid"`` ->
    method name -> regression figures; ``"sequences"`` -> the published table; any other
    kind -> its figures; ``"citations"`` -> each of those keys -> its citation."""
    from fslearn.methods import METHODS  # the registry imports the methods, which import this

    gathered: dict[str, Any] = {}
    citations: dict[str, str] = {}
    for name, method in METHODS.items():
        for kind, declared in vars(method).get("paper_figures", {}).items():
            if kind == "classification":
                gathered[name], citations[name] = dict(declared.figures), declared.citation
            elif kind == "regression":
                gathered.setdefault("sinusoid", {})[name] = dict(declared.figures)
                citations["sinusoid"] = declared.citation
            elif kind == "sequences":
                table = declared.table or {name: declared.figures}
                gathered["sequences"] = {label: dict(row) for label, row in table.items()}
                citations["sequences"] = declared.citation
            else:
                gathered[kind] = dict(declared.table or declared.figures)
                citations[kind] = declared.citation
    gathered["citations"] = citations
    return gathered


class _PaperResults(Mapping[str, Any]):
    """A read-only view of the registered methods' declared figures, read afresh at each
    access (a method registered later is in it)."""

    def __getitem__(self, key: str) -> Any:
        return _gathered()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_gathered())

    def __len__(self) -> int:
        return len(_gathered())

    def __repr__(self) -> str:
        return f"PAPER_RESULTS({_gathered()!r})"


#: every registered method's published figures, by method name (``"pixel_nn"``,
#: ``"protonet"``...: ``{(n_way, k_shot): accuracy}`` on :data:`PAPER_DATASET`), with the
#: sinusoid figures under ``"sinusoid"`` (method -> K -> steps -> MSE), Santoro et al.'s table
#: under ``"sequences"``, other declared tables under their kind, and the citations under
#: ``"citations"``. Read from the methods' ``paper_figures`` declarations (:func:`paper_figures`)
PAPER_RESULTS: Mapping[str, Any] = _PaperResults()
