"""Published figures that the course sets beside its own (fractions, not percentages)."""

from __future__ import annotations

__all__ = ["PAPER_RESULTS", "STANDARD_SETTINGS"]

#: the four Omniglot settings every paper reports: (n_way, k_shot)
STANDARD_SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (20, 1), (20, 5))

#: method name -> {(n_way, k_shot): test accuracy on Omniglot, Vinyals protocol}
PAPER_RESULTS: dict = {
    # Snell, Swersky and Zemel (2017), Table 1, Euclidean distance, trained 60-way.
    "protonet": {(5, 1): 0.988, (5, 5): 0.997, (20, 1): 0.960, (20, 5): 0.989},
    "citations": {
        "protonet": "Snell, Swersky and Zemel (2017), Prototypical Networks for Few-shot "
        "Learning, NeurIPS, Table 1",
    },
}
