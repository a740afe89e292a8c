"""SNAIL (Mishra et al. 2018): its causal blocks by hand, causality, one sequence per query, its
any-shot training sampler, training, checkpoints and the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset, train_interrupted_and_straight

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods import METHODS, SNAIL
from fslearn.methods.snail import (
    AnyShotSampler,
    AttentionBlock,
    DenseBlock,
    SNAILNetwork,
    TCBlock,
    dense_dilations,
    query_sequences,
    support_order,
)
from fslearn.training_config import TrainingConfig


def _depends_on(layer: torch.nn.Module, steps: int, channels: int) -> torch.Tensor:
    """``[steps, steps]`` booleans: output step ``t`` depends on input step ``s`` (its
    Jacobian block is not all zeros), for one random float64 input."""
    torch.manual_seed(0)
    layer = layer.double()
    x = torch.randn(1, steps, channels, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: layer(v), x)  # [1,T,F,1,T,C]
    return jacobian[0, :, :, 0].abs().sum(dim=(1, 3)) != 0


# --- the blocks --------------------------------------------------------------------------------


def test_dilations_follow_the_papers_pseudocode():
    assert dense_dilations(1) == []
    assert dense_dilations(2) == [2]
    assert dense_dilations(3) == dense_dilations(4) == [2, 4]
    assert dense_dilations(26) == [2, 4, 8, 16, 32]  # 5-way, K up to 5
    assert dense_dilations(101) == [2, 4, 8, 16, 32, 64, 128]  # 20-way, K up to 5
    with pytest.raises(ValueError, match="at least 1 step"):
        dense_dilations(0)


def test_a_dense_block_keeps_its_input_and_reads_steps_t_and_t_minus_its_dilation():
    block = DenseBlock(3, dilation=2, filters=4)
    x = torch.randn(2, 7, 3)
    out = block(x)
    assert out.shape == (2, 7, 7) and block.out_channels == 7
    assert torch.equal(out[..., :3], x)
    # step t of the output reads steps t and t - 2 of the input only
    depends = _depends_on(block, 7, 3)
    expected = torch.zeros(7, 7, dtype=torch.bool)
    for t in range(7):
        expected[t, t] = True
        if t >= 2:
            expected[t, t - 2] = True
    assert torch.equal(depends, expected)


def test_a_tc_block_reaches_back_by_even_offsets_up_to_its_receptive_field():
    steps = 20
    block = TCBlock(2, steps=8, filters=3)  # dilations 2, 4, 8
    assert block.out_channels == 2 + 3 * 3
    depends = _depends_on(block, steps, 2)
    # sums of distinct dilations: every even offset up to 2 + 4 + 8 = 14
    reach = {0, 2, 4, 6, 8, 10, 12, 14}
    expected = torch.tensor([[t - s in reach for s in range(steps)] for t in range(steps)])
    assert torch.equal(depends, expected)


def test_attention_matches_a_hand_computed_three_step_case():
    block = AttentionBlock(2, key_size=2, value_size=1).double()
    with torch.no_grad():
        block.query.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        block.query.bias.zero_()
        block.key.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, -1.0]]))
        block.key.bias.copy_(torch.tensor([0.0, 1.0]))
        block.value.weight.copy_(torch.tensor([[1.0, 3.0]]))
        block.value.bias.copy_(torch.tensor([0.5]))
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    # by hand: q_t = x_t, k_s = (2 a_s, 1 - b_s), v_s = a_s + 3 b_s + 0.5
    q = [(1, 0), (0, 1), (1, 1)]
    k = [(2, 1), (0, 0), (2, 0)]
    v = [1.5, 3.5, 4.5]
    reads = []
    for t in range(3):
        logits = [(q[t][0] * k[s][0] + q[t][1] * k[s][1]) / math.sqrt(2) for s in range(t + 1)]
        weights = [math.exp(a) / sum(math.exp(b) for b in logits) for a in logits]
        reads.append(sum(w * v[s] for s, w in enumerate(weights)))
    out = block(x)
    assert out.shape == (1, 3, 3)
    assert torch.equal(out[..., :2], x)
    assert reads[0] == 1.5  # the first step sees itself only
    torch.testing.assert_close(out[0, :, 2], torch.tensor(reads, dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)


def test_attention_weights_are_causal_rows_that_give_the_blocks_read():
    torch.manual_seed(3)
    block = AttentionBlock(4, key_size=3, value_size=2).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    weights = block.weights(x)
    assert weights.shape == (2, 5, 5)
    assert torch.equal(weights.triu(1), torch.zeros_like(weights))  # no step reads a later one
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    torch.testing.assert_close(weights @ block.value(x), block(x)[..., 4:], rtol=1e-12,
                               atol=1e-12)


def test_query_attention_is_each_blocks_last_row_in_the_episodes_support_order():
    torch.manual_seed(0)
    method = SNAIL(n_way=3, max_shot=2).eval()
    episode = _episode()
    found = method.query_attention(episode)
    order = support_order(6)
    with torch.no_grad():
        support_z = method.embed(episode.support_x.flatten(0, 1)).view(2, 6, -1)
        query_z = method.embed(episode.query_x.flatten(0, 1)).view(2, 6, -1)
        x = query_sequences(support_z[:, order], episode.support_y[:, order], query_z, 3)
        by_hand = []
        for layer in method.network.layers:
            if isinstance(layer, AttentionBlock):
                by_hand.append(layer.weights(x)[:, -1].view(2, 6, 7))
            x = layer(x)
    assert len(found) == 3
    for weights, expected in zip(found, by_hand, strict=True):
        assert weights.shape == (2, 6, 7)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6))
        for position, image in enumerate(order.tolist()):  # image `image` sat at `position`
            torch.testing.assert_close(weights[..., image], expected[..., position])
        torch.testing.assert_close(weights[..., -1], expected[..., -1])


def test_no_output_depends_on_a_later_input():
    torch.manual_seed(1)
    network = SNAILNetwork(in_features=6, n_way=3, steps=7).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    out = network(x)
    assert out.shape == (2, 7, 3)
    for step in range(7):
        changed = x.clone()
        changed[:, step] += torch.randn(2, 6, dtype=torch.float64)
        other = network(changed)
        assert torch.equal(other[:, :step], out[:, :step]), f"a step before {step} moved"
        assert not torch.allclose(other[:, step], out[:, step])
        assert not torch.allclose(other[:, -1], out[:, -1])  # the last step reads every step


def test_the_omniglot_model_has_the_papers_blocks_and_sizes():
    network = SNAIL(n_way=5, max_shot=5).network  # T = 26: TC blocks of 5 dense blocks
    assert [type(layer).__name__ for layer in network.layers] == [
        "AttentionBlock", "TCBlock", "AttentionBlock", "TCBlock", "AttentionBlock"]
    # 64 + 5 features, + 32, + 5 * 128, + 128, + 5 * 128, + 256
    assert [layer.out_channels for layer in network.layers] == [101, 741, 869, 1509, 1765]
    # by hand: attention (C + 1) * (2K + V); dense block 2 * 128 * (2C + 1); output 5 * 1766
    attention = 70 * (64 + 64 + 32) + 742 * (256 + 256 + 128) + 1510 * (512 + 512 + 256)
    dense = sum(256 * (2 * c + 1) for c in [101, 229, 357, 485, 613, 869, 997, 1125, 1253,
                                               1381])
    assert sum(p.numel() for p in network.parameters()) == attention + dense + 5 * 1766


@pytest.mark.parametrize("n_support", [1, 2, 3, 6])  # shorter and longer than the dilations
def test_the_shared_support_steps_give_the_whole_sequences_last_step(n_support):
    torch.manual_seed(2)
    network = SNAILNetwork(in_features=5, n_way=3, steps=8).double()  # dilations 2, 4, 8
    support = torch.randn(2, n_support, 5, dtype=torch.float64)
    queries = torch.randn(2, 4, 5, dtype=torch.float64)
    fast = network.query_logits(support, queries)
    assert fast.shape == (2, 4, 3)
    for j in range(4):
        whole = network(torch.cat([support, queries[:, j : j + 1]], dim=1))[:, -1]
        torch.testing.assert_close(fast[:, j], whole, rtol=1e-12, atol=1e-12)
    # and the same gradients: training through the shared steps is training the sequences
    fast_grads = torch.autograd.grad(fast.square().sum(), list(network.parameters()))
    wholes = [network(torch.cat([support, queries[:, j : j + 1]], dim=1))[:, -1]
              for j in range(4)]
    whole_grads = torch.autograd.grad(sum(w.square().sum() for w in wholes),
                                      list(network.parameters()))
    for a, b in zip(fast_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# --- the method --------------------------------------------------------------------------------


def _episode(n_way: int = 3, k_shot: int = 2, n_query: int = 2, tasks: int = 2,
             seed: int = 0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_way)
    return Episode(
        support_x=torch.rand(tasks, n_way * k_shot, 1, 28, 28, generator=generator),
        support_y=labels.repeat_interleave(k_shot).expand(tasks, -1).contiguous(),
        query_x=torch.rand(tasks, n_way * n_query, 1, 28, 28, generator=generator),
        query_y=labels.repeat_interleave(n_query).expand(tasks, -1).contiguous(),
        classes=labels.expand(tasks, -1).contiguous(), n_way=n_way)


def test_sequences_put_the_support_first_and_the_query_last_without_a_label():
    support_z, query_z = torch.randn(2, 4, 5), torch.randn(2, 3, 5)
    support_y = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]])
    sequences = query_sequences(support_z, support_y, query_z, n_way=2)
    assert sequences.shape == (6, 5, 7)
    for task in range(2):
        for j in range(3):
            sequence = sequences[task * 3 + j]
            assert torch.equal(sequence[:4, :5], support_z[task])
            assert torch.equal(sequence[:4, 5:], F.one_hot(support_y[task], 2).float())
            assert torch.equal(sequence[4, :5], query_z[task, j])
            assert torch.equal(sequence[4, 5:], torch.zeros(2))


def test_scores_are_the_last_step_of_each_query_sequence_in_the_fixed_support_order():
    torch.manual_seed(0)
    method = SNAIL(n_way=3, max_shot=2).eval()
    episode = _episode()
    order = support_order(6)
    assert sorted(order.tolist()) == list(range(6)) and torch.equal(order, support_order(6))
    with torch.no_grad():
        scores = method(episode)
        support_z = method.embed(episode.support_x.flatten(0, 1)).view(2, 6, -1)
        query_z = method.embed(episode.query_x.flatten(0, 1)).view(2, 6, -1)
        sequences = query_sequences(support_z[:, order], episode.support_y[:, order], query_z, 3)
        by_hand = method.network(sequences)[:, -1].view(2, 6, 3)
    assert scores.shape == (2, 6, 3)
    torch.testing.assert_close(scores, by_hand, rtol=1e-5, atol=1e-6)


def test_each_query_is_scored_alone_and_the_support_order_matters():
    torch.manual_seed(0)
    method = SNAIL(n_way=3, max_shot=2).eval()
    episode = _episode(n_query=3)
    one_query = Episode(episode.support_x, episode.support_y, episode.query_x[:, 4:5],
                        episode.query_y[:, 4:5], episode.classes, 3)
    with torch.no_grad():
        every = method(episode)
        alone = method(one_query)
        shuffled = method(Episode(episode.support_x.flip(1), episode.support_y.flip(1),
                                  episode.query_x, episode.query_y, episode.classes, 3))
    torch.testing.assert_close(alone[:, 0], every[:, 4], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(shuffled, every, atol=1e-4)  # a sequence model, not a set one


def test_one_model_scores_any_shot_and_refuses_another_way():
    torch.manual_seed(0)
    method = SNAIL(n_way=3, max_shot=2).eval()
    assert method.fixed_way == 3
    with torch.no_grad():
        for k_shot in (1, 2, 4):  # 4: longer than the sequences it was built for
            assert method(_episode(k_shot=k_shot)).shape == (2, 6, 3)
        with pytest.raises(ValueError, match=r"--way 4"):
            method(_episode(n_way=4))
    for bad in ({"n_way": 1}, {"max_shot": 0}, {"image_size": 8}):
        with pytest.raises(ValueError, match=r"must be an integer|at least 16x16"):
            SNAIL(**bad)


def test_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    method = SNAIL(n_way=3, max_shot=2).eval()
    save_checkpoint(tmp_path, method)
    loaded, record = load_checkpoint(tmp_path)
    assert isinstance(loaded, SNAIL) and record["hparams"] == method.hparams == {
        "in_channels": 1, "image_size": 28, "n_way": 3, "max_shot": 2}
    episode = _episode()
    with torch.no_grad():
        assert torch.equal(loaded(episode), method(episode))


# --- training ----------------------------------------------------------------------------------


def _image_index(images: torch.Tensor) -> torch.Tensor:
    """The dataset index that each of ``make_dataset``'s images ``[n, 1, H, W]`` encodes."""
    pixels = (images[:, 0, 0, :2] * 255).round().long()
    return pixels[:, 0] + 256 * pixels[:, 1]


def test_the_sampler_draws_every_shot_reproducibly_with_consistent_labels():
    counts = [12] * 8
    dataset = make_dataset(counts)
    sampler = AnyShotSampler(dataset, n_way=3, max_shot=4, n_query=2, tasks=2, seed=5)
    shots = []
    for index in range(40):
        episode = sampler.episode(index)
        k_shot = episode.k_shot
        shots.append(k_shot)
        assert 1 <= k_shot <= 4 and episode.support_x.shape[:2] == (2, 3 * k_shot)
        again = sampler.episode(index)
        assert torch.equal(again.support_x, episode.support_x)
        assert torch.equal(again.support_y, episode.support_y)
        for task in range(2):
            assert torch.equal(episode.support_y[task].bincount(minlength=3),
                               torch.full((3,), k_shot))
            # each support image is of the dataset class behind its label
            image = _image_index(episode.support_x[task])
            assert torch.equal(dataset.labels[image],
                               episode.classes[task][episode.support_y[task]])
        # the images are those of the episode sampler of that shot, reordered
        plain = EpisodeSampler(dataset, 3, k_shot, 2, tasks=2, seed=5).episode(index)
        assert torch.equal(episode.query_x, plain.query_x)
        for task in range(2):
            assert torch.equal(_image_index(episode.support_x[task]).sort().values,
                               _image_index(plain.support_x[task]).sort().values)
    assert set(shots) == {1, 2, 3, 4}
    shuffled = [not torch.equal(sampler.episode(i).support_y[0],
                                sampler.episode(i).support_y[0].sort().values)
                for i in range(40) if shots[i] > 1]
    assert any(shuffled)
    with pytest.raises(ValueError, match="max_shot"):
        AnyShotSampler(dataset, 3, 11, 2)  # 11 + 2 > 12 images per class


def test_a_few_adam_steps_lower_the_loss_on_an_episode(omniglot_small):
    torch.manual_seed(0)
    method = SNAIL(n_way=5, max_shot=1).train()
    episode = EpisodeSampler(omniglot_small, 5, 1, 2, seed=1).episode(0)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss, logits = method.training_step(episode)
        optimizer.step()
        losses.append(float(loss))
    assert logits.shape == (1, 10, 5)
    assert losses[-1] < 0.5 * losses[0], losses


def test_the_training_sampler_refuses_another_way(omniglot_small):
    method = SNAIL(n_way=5, max_shot=2)
    config = TrainingConfig(n_way=20, k_shot=1, n_query=1)
    with pytest.raises(ValueError, match="--way 5"):
        method.training_sampler(omniglot_small, config)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, omniglot_small):
    def fresh(seed: int) -> SNAIL:
        torch.manual_seed(seed)
        return SNAIL(n_way=5, max_shot=2)

    config = TrainingConfig(n_way=5, k_shot=1, n_query=1, batch_size=2, episodes=4,
                            val_every=2, val_episodes=2, val_way=5, val_query=1,
                            checkpoint_every=1, seed=3)
    train_interrupted_and_straight(fresh, omniglot_small, config, tmp_path, omniglot_small,
                                   crash_after=2)


def test_registered_with_its_help_and_trained_and_reported_by_the_cli(tmp_path, capsys):
    assert METHODS["snail"] is SNAIL
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "snail", "--help"])
    assert exit_code.value.code == 0
    assert "--max-shot" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", "snail", "--way", "5", "--shot", "1", "--query", "1", "--tasks", "1",
                 "--max-shot", "2", "--episodes", "2", "--val-every", "2", "--val-episodes",
                 "2", "--checkpoint-every", "2", "--out", str(out), "--no-progress"]) == 0
    assert "5-way 1- to 2-shot" in capsys.readouterr().err
    record = json.loads((out / "best" / "checkpoint.json").read_text())
    assert record["method"] == "snail"
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "n_way": 5, "max_shot": 2}
    assert main(["report", str(out), "--split", "val", "--episodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [(5, 1), (5, 5)]
    assert [r["paper_accuracy"] for r in report["results"]] == [0.9907, 0.9978]
