"""Published figures that the course sets beside its own (fractions, not percentages)."""

from __future__ import annotations

__all__ = ["PAPER_RESULTS", "STANDARD_SETTINGS"]

#: the four Omniglot settings every paper reports: (n_way, k_shot)
STANDARD_SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (20, 1), (20, 5))

#: method name -> {(n_way, k_shot): test accuracy on Omniglot, Vinyals protocol}
PAPER_RESULTS: dict = {
    # Snell, Swersky and Zemel (2017), Table 1, Euclidean distance, trained 60-way.
    "protonet": {(5, 1): 0.988, (5, 5): 0.997, (20, 1): 0.960, (20, 5): 0.989},
    # Finn, Abbeel and Levine (2017), appendix C, Table 2: sinusoid regression, mean squared
    # error after 1 / 5 / 10 gradient steps on K support points. method -> K -> steps -> MSE
    "sinusoid": {
        "maml": {5: {1: 0.67, 5: 0.38, 10: 0.35}},
        "pretrained": {5: {1: 2.41, 5: 2.23, 10: 2.19}},
    },
    "citations": {
        "sinusoid": "Finn, Abbeel and Levine (2017), Model-Agnostic Meta-Learning for Fast "
        "Adaptation of Deep Networks, ICML, appendix C, Table 2",
        "protonet": "Snell, Swersky and Zemel (2017), Prototypical Networks for Few-shot "
        "Learning, NeurIPS, Table 1",
    },
}
