"""Section 7.5's experiment: a Prototypical Network trained by clients that never pool images.

    python tools/federated_curves.py            # about 20 minutes at one thread

Omniglot's 30 background alphabets (Lake's protocol) are 30 clients, one alphabet each. Three
trainings of the same Prototypical Network (Conv4, seed 0), at equal communication rounds and
with the same episodes seen per round:

* centralised: one machine holding every alphabet, Adam (lr 1e-3), ``CLIENTS_PER_ROUND * STEPS``
  episodes per round drawn from all 964 background characters;
* FedAvg: each round ``CLIENTS_PER_ROUND`` clients each take ``STEPS`` Adam steps (lr 1e-3, a
  fresh optimizer) on their own alphabet's episodes; the server averages the weights by the
  clients' numbers of images;
* FedMeta: the same clients send the meta-gradient (the episode loss's gradient at the global
  weights) averaged over ``STEPS`` of their episodes; the server averages them the same way and
  takes one Adam step (lr 1e-3).

Every ``EVAL_EVERY`` rounds each model is evaluated on 300 5-way 1-shot episodes of the 20 test
alphabets (659 characters, never seen in training); after the last round on 1000.

Personalisation: each test alphabet is a new client. Its characters are split in two halves: the
first half is its own labelled data, on which the final global model takes ``PERSONAL_STEPS``
Adam steps (:func:`fslearn.federated.personalise`); the second half gives 50 within-alphabet
5-way 1-shot episodes, on which the global and the personalised model are compared (1000
episodes over the 20 alphabets).

The hyper-parameters are the package's defaults (5-way 1-shot, 5 queries per class, 5 local
steps, Adam 1e-3), fixed before the run and not tuned: Lake's protocol has no validation
alphabets, and tuning on the test alphabets is not allowed. The rounds and clients per round are
chosen so the whole run fits in about 20 minutes of one CPU core. Writes
book/data/federated-curves.json, which section 7.5 reads.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fslearn._system import describe_hardware
from fslearn.data import EpisodeSampler, load_omniglot
from fslearn.evaluation.classification import evaluate
from fslearn.evaluation.common import confidence_interval95
from fslearn.federated import (
    LocalTraining,
    alphabet_clients,
    personalise,
    run_federated,
)
from fslearn.methods import PrototypicalNetwork

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "federated-curves.json"
SEED = 0
ROUNDS = 100
CLIENTS_PER_ROUND = 5
STEPS = 5
EVAL_EVERY = 10
EVAL_EPISODES = 300
FINAL_EPISODES = 1000
PERSONAL_STEPS = 20
PERSONAL_EPISODES = 50
LOCAL = LocalTraining(n_way=5, k_shot=1, n_query=5, steps=STEPS, lr=1e-3, optimizer="adam")


def fresh_model() -> PrototypicalNetwork:
    """The same initial weights for every training."""
    torch.manual_seed(SEED)
    return PrototypicalNetwork()


def test_accuracy(model: PrototypicalNetwork, test, episodes: int) -> dict:
    result = evaluate(model, test, 5, 1, 15, episodes=episodes, seed=SEED)
    return {"accuracy": result.accuracy, "ci95": result.ci95, "episodes": episodes}


def train_centralised(background, test) -> tuple[PrototypicalNetwork, list[dict]]:
    """Adam on episodes of every background character, as many per round as FedAvg's clients
    take together."""
    model = fresh_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LOCAL.lr)
    sampler = EpisodeSampler(background, LOCAL.n_way, LOCAL.k_shot, LOCAL.n_query, seed=SEED)
    curve, step = [], 0
    for round_index in range(ROUNDS):
        model.train()
        losses = []
        for _ in range(CLIENTS_PER_ROUND * STEPS):
            optimizer.zero_grad(set_to_none=True)
            loss, _ = model.training_step(sampler.episode(step))
            optimizer.step()
            losses.append(float(loss))
            step += 1
        point = {"round": round_index + 1, "client_loss": float(np.mean(losses))}
        if (round_index + 1) % EVAL_EVERY == 0:
            point.update(test_accuracy(model, test, EVAL_EPISODES))
        curve.append(point)
    return model, curve


def train_federated(algorithm: str, clients, test) -> tuple[PrototypicalNetwork, list[dict]]:
    model = fresh_model()
    server_optimizer = (torch.optim.Adam(model.parameters(), lr=LOCAL.lr)
                        if algorithm == "fedmeta" else None)

    def evaluate_round(round_index: int, method) -> dict:
        if (round_index + 1) % EVAL_EVERY:
            return {}
        return test_accuracy(method, test, EVAL_EPISODES)

    history = run_federated(model, clients, ROUNDS, algorithm, LOCAL,
                            clients_per_round=CLIENTS_PER_ROUND,
                            server_optimizer=server_optimizer, seed=SEED,
                            evaluate=evaluate_round)
    curve = [{"round": record.round + 1, "clients": record.clients, **record.metrics}
             for record in history]
    return model, curve


def personalisation(models: dict, test) -> dict:
    """Global against personalised, on the held-out half of each test alphabet."""
    per_alphabet = []
    scores: dict[str, list[float]] = {f"{label} {kind}": [] for label in models
                                      for kind in ("global", "personalised")}
    for index, client in enumerate(alphabet_clients(test)):
        classes = client.dataset.num_classes
        own = client.dataset.select_classes(range(classes // 2))
        held_out = client.dataset.select_classes(range(classes // 2, classes))
        row = {"alphabet": client.name, "own_characters": own.num_classes,
               "held_out_characters": held_out.num_classes}
        for label, model in models.items():
            local = LocalTraining(LOCAL.n_way, LOCAL.k_shot, LOCAL.n_query, PERSONAL_STEPS,
                                  LOCAL.lr, "adam")
            adapted = personalise(model, own, local, seed=SEED + index)
            for kind, candidate in (("global", model), ("personalised", adapted)):
                result = evaluate(candidate, held_out, 5, 1, 15, episodes=PERSONAL_EPISODES,
                                  seed=SEED + index)
                scores[f"{label} {kind}"].extend(result.per_episode)
                row[f"{label} {kind}"] = result.accuracy
        per_alphabet.append(row)
    summary = {key: {"accuracy": float(np.mean(values)),
                     "ci95": confidence_interval95(torch.tensor(values, dtype=torch.float64)),
                     "episodes": len(values)} for key, values in scores.items()}
    return {"steps": PERSONAL_STEPS, "episodes_per_alphabet": PERSONAL_EPISODES,
            "summary": summary, "per_alphabet": per_alphabet}


def main() -> None:
    torch.set_num_threads(1)
    started = time.time()
    background = load_omniglot("train", "lake")
    test = load_omniglot("test", "lake")
    clients = alphabet_clients(background)
    runs, models, seconds = {}, {}, {}
    for label in ("centralised", "fedavg", "fedmeta"):
        begun = time.time()
        if label == "centralised":
            models[label], curve = train_centralised(background, test)
        else:
            models[label], curve = train_federated(label, clients, test)
        final = test_accuracy(models[label], test, FINAL_EPISODES)
        seconds[label] = time.time() - begun
        runs[label] = {"curve": curve, "final": final, "seconds": seconds[label]}
        print(f"{label}: {100 * final['accuracy']:.1f} +- {100 * final['ci95']:.1f} "
              f"({seconds[label]:.0f} s)", flush=True)
    personal = personalisation({k: models[k] for k in ("fedavg", "fedmeta")}, test)
    output = {
        "command": shlex.join(["python", "tools/federated_curves.py", *sys.argv[1:]]),
        "seed": SEED,
        "hardware": describe_hardware("cpu"),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seconds": time.time() - started,
        "setting": {"clients": len(clients), "client_names": [c.name for c in clients],
                    "client_images": [c.num_examples for c in clients], "rounds": ROUNDS,
                    "clients_per_round": CLIENTS_PER_ROUND, "local_steps": STEPS,
                    "episodes": "5-way 1-shot, 5 queries per class in training, 15 in tests",
                    "lr": LOCAL.lr, "optimizer": "adam", "server_optimizer_fedmeta": "adam",
                    "eval_every": EVAL_EVERY, "eval_episodes": EVAL_EPISODES,
                    "final_episodes": FINAL_EPISODES},
        "runs": runs,
        "personalisation": personal,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(output, indent=1) + "\n")
    print(f"Wrote {OUTPUT.relative_to(ROOT)} in {output['seconds']:.0f} s")


if __name__ == "__main__":
    main()
