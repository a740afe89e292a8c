"""The Meta-LSTM's first layer, coordinates last (fslearn) beside PyTorch's LSTMCell on
coordinates first, side by side in one process.

    python benchmarks/metalstm_cell.py                 # the Conv4 learner's 112,005 coordinates
    python benchmarks/metalstm_cell.py --rounds 3      # a smoke test

Both compute the same cell with the same weights (checked here within 1e-5); the figure of each
is the fastest of ``--rounds`` interleaved rounds, forward alone (what a test episode's update
costs) and forward with backward (a training update), one PyTorch thread. These are
measurements, not tests: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import time

import torch

from fslearn._system import describe_hardware
from fslearn.methods import MetaLSTM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    method = MetaLSTM()
    optimiser = method.optimiser
    coordinates = sum(p.numel() for p in method.network.parameters())
    hidden = optimiser.hidden_size
    inputs = torch.randn(4, coordinates)
    h, c = torch.randn(hidden, coordinates), torch.randn(hidden, coordinates)

    def ours() -> tuple[torch.Tensor, torch.Tensor]:
        return optimiser.first_layer(inputs, (h, c))

    def pytorch() -> tuple[torch.Tensor, torch.Tensor]:
        new_h, new_c = optimiser.lstm(inputs.T, (h.T, c.T))
        return new_h.T, new_c.T

    with torch.no_grad():
        for a, b in zip(ours(), pytorch(), strict=True):
            assert torch.allclose(a, b, atol=1e-5), "the two cells disagree"
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, cell in (("fslearn", ours), ("LSTMCell", pytorch)):
            for mode in ("forward", "forward+backward"):
                start = time.perf_counter()
                if mode == "forward":
                    with torch.no_grad():
                        cell()
                else:
                    new_h, new_c = cell()
                    (new_h.sum() + new_c.sum()).backward()
                seconds = time.perf_counter() - start
                best[name, mode] = min(best.get((name, mode), seconds), seconds)
    print(f"{coordinates:,} coordinates, hidden {hidden}, {describe_hardware()}, "
          f"torch {torch.__version__}")
    for mode in ("forward", "forward+backward"):
        ours_ms, theirs_ms = 1000 * best["fslearn", mode], 1000 * best["LSTMCell", mode]
        print(f"{mode:17s} fslearn {ours_ms:6.1f} ms   LSTMCell {theirs_ms:6.1f} ms   "
              f"ratio {theirs_ms / ours_ms:.2f}x")


if __name__ == "__main__":
    main()
