"""Graph neural networks (Garcia and Bruna): the authors' shapes and sizes, the graphs of node
features, the learned adjacency and the graph convolution against hand computations, the query's
logits invariant to the order of the support set (and the network equivariant to the order of
its nodes), gradients against finite differences (float64), chunked evaluation, bad input,
checkpoints, and the command line with a resumed run (tiny runs on real Omniglot)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import train_interrupted_and_straight
from torch import nn

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import Episode
from fslearn.methods import GraphNeuralNetwork, build_method
from fslearn.methods import gnn as gnn_module
from fslearn.methods.gnn import (
    EdgeNetwork,
    GNNEmbedding,
    GraphConvolution,
    GraphNetwork,
    query_graphs,
)
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig


def _episode(tasks=1, n_way=5, k_shot=1, n_query=2, size=28, seed=0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(n_way).repeat_interleave(k_shot).expand(tasks, -1).contiguous()
    query_y = torch.arange(n_way).repeat_interleave(n_query).expand(tasks, -1).contiguous()
    return Episode(torch.rand(tasks, n_way * k_shot, 1, size, size, generator=generator),
                   support_y, torch.rand(tasks, n_way * n_query, 1, size, size,
                                         generator=generator), query_y,
                   torch.zeros(tasks, n_way, dtype=torch.long), n_way)


def _linear_sizes(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


# --- the authors' architecture ---------------------------------------------------------------


def test_the_authors_embedding():
    embedding = GNNEmbedding()
    assert embedding(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    convs = list(embedding.convs)
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (0, 0), (0, 0)]
    assert all(c.bias is None and c.out_channels == 64 for c in convs)
    assert embedding.side == 3 and _linear_sizes(embedding) == [(64 * 3 * 3, 64)]
    assert embedding.fc.bias is None
    # 3x3 convolutions 1->64 and three 64->64, the 576->64 layer, and batch norms (2 x 64 x 5)
    assert sum(p.numel() for p in embedding.parameters()) == (
        9 * 64 + 3 * 9 * 64 * 64 + 576 * 64 + 5 * 2 * 64)


def test_the_authors_graph_network_sizes():
    network = GraphNetwork(64 + 5, 5)  # F0 = 69, F1 = 117, F2 = 165
    assert [_linear_sizes(edges) for edges in network.edges] == [
        [(69, 138), (138, 103), (103, 69), (69, 69), (69, 1)],
        [(117, 234), (234, 175), (175, 117), (117, 117), (117, 1)]]
    assert _linear_sizes(network.last_edges) == [
        (165, 234), (234, 175), (175, 117), (117, 117), (117, 1)]
    assert network.last_edges.dropout.p == 0.3 and network.edges[0].dropout is None
    assert [conv.linear.out_features for conv in network.convs] == [48, 48]
    assert [conv.linear.in_features for conv in network.convs] == [2 * 69, 2 * 117]
    assert _linear_sizes(network.last_conv) == [(2 * 165, 5)]
    assert network.last_conv.norm is not None  # the authors' last layer has batch norm
    method = GraphNeuralNetwork()
    assert sum(p.numel() for p in method.graph.parameters()) == 276_930
    assert sum(p.numel() for p in method.backbone.parameters()) == 148_672
    assert method.fixed_way == 5 and GraphNeuralNetwork(n_way=20).fixed_way == 20
    assert dict(GraphNeuralNetwork.training_defaults) == {"n_way": 5, "k_shot": 1, "n_query": 1,
                                                          "batch_size": 60}


def test_paper_figures_are_declared():
    assert PAPER_RESULTS["gnn"] == {(5, 1): 0.992, (5, 5): 0.997, (20, 1): 0.974, (20, 5): 0.990}
    assert PAPER_RESULTS["citations"]["gnn"].startswith("Garcia and Bruna (2018)")


# --- the graphs and their layers by hand ---------------------------------------------------


def test_one_graph_per_query_with_the_query_first():
    support_z = torch.arange(12.0).view(1, 3, 4)  # 3 support images of 4 numbers
    support_y = torch.tensor([[2, 0, 1]])
    query_z = -torch.arange(8.0).view(1, 2, 4) - 1  # 2 queries
    graphs = query_graphs(support_z, support_y, query_z, 3)
    assert graphs.shape == (2, 4, 4 + 3)  # a graph per query, 1 + 3 nodes, 4 + 3 features
    for j in range(2):
        assert torch.equal(graphs[j, 0], torch.cat([query_z[0, j], torch.full((3,), 1 / 3)]))
        assert torch.equal(graphs[j, 1:, :4], support_z[0])
        assert torch.equal(graphs[j, 1:, 4:], torch.eye(3)[[2, 0, 1]])
    zeros = query_graphs(support_z, support_y, query_z, 3, "zeros")
    assert torch.equal(zeros[:, 0, 4:], torch.zeros(2, 3))
    assert torch.equal(zeros[:, 1:], graphs[:, 1:])
    two_tasks = query_graphs(support_z.expand(2, -1, -1), support_y.expand(2, -1),
                             query_z.expand(2, -1, -1), 3)
    assert two_tasks.shape == (4, 4, 7) and torch.equal(two_tasks[2:], graphs)


def test_the_adjacency_is_a_softmax_over_the_other_nodes():
    torch.manual_seed(0)
    edges = EdgeNetwork(5, 4).double().eval()
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    adjacency = edges(x)
    assert adjacency.shape == (3, 6, 6)
    assert torch.equal(adjacency.diagonal(dim1=1, dim2=2), torch.zeros(3, 6, dtype=torch.float64))
    assert torch.allclose(adjacency.sum(-1), torch.ones(3, 6, dtype=torch.float64))
    # by hand for one entry: the MLP on |x_i - x_j|, then the softmax over j != i
    h = (x[1, 2] - x[1]).abs()  # [6, 5], the pairs (2, j)
    for linear, norm in edges.layers:
        h = F.leaky_relu(norm(linear(h)), 0.01)
    scores = edges.score(h).squeeze(-1)
    expected = torch.cat([scores[:2], scores[3:]]).softmax(0)
    assert torch.allclose(torch.cat([adjacency[1, 2, :2], adjacency[1, 2, 3:]]), expected)


def test_the_graph_convolution_by_hand():
    conv = GraphConvolution(2, 1, norm=False).double()
    with torch.no_grad():  # out = 1 * own features + 10 * neighbours' (first feature) + 0.5
        conv.linear.weight.copy_(torch.tensor([[1.0, 0.0, 10.0, 0.0]]))
        conv.linear.bias.fill_(0.5)
    x = torch.tensor([[[1.0, 7.0], [2.0, 7.0], [4.0, 7.0]]], dtype=torch.float64)
    adjacency = torch.tensor([[[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.25, 0.75, 0.0]]],
                             dtype=torch.float64)
    # node 0: 1 + 10 * (0.5 * 2 + 0.5 * 4) + 0.5 = 31.5; node 1: 2 + 10 * 1 + 0.5 = 12.5;
    # node 2: 4 + 10 * (0.25 * 1 + 0.75 * 2) + 0.5 = 22
    assert torch.allclose(conv(x, adjacency),
                          torch.tensor([[[31.5], [12.5], [22.0]]], dtype=torch.float64))


# --- permutations --------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_query_logits_do_not_depend_on_the_order_of_the_support_set(training):
    torch.manual_seed(0)
    method = GraphNeuralNetwork(n_way=4).double()
    method.train(training)  # training: batch norm over all the graphs' nodes and pairs
    method.graph.last_edges.dropout.p = 0.0  # (its masks would follow the order of the nodes)
    generator = torch.Generator().manual_seed(1)
    support_z = torch.randn(2, 8, 64, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3], [3, 3, 2, 2, 1, 1, 0, 0]])
    query_z = torch.randn(2, 3, 64, generator=generator, dtype=torch.float64)
    order = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    before = method.scores(support_z, support_y, query_z, 4)
    after = method.scores(support_z[:, order], support_y[:, order], query_z, 4)
    assert torch.allclose(before, after, atol=1e-10)
    # a sanity check of the check: moving a label to another image does change the logits
    swapped = support_y.clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    assert not torch.allclose(method.scores(support_z, swapped, query_z, 4), before, atol=1e-3)
    # from images too: the support images and labels permuted together
    method.float().eval()
    episode = _episode(n_way=4, k_shot=2, n_query=1, seed=3)
    permuted = Episode(episode.support_x[:, order], episode.support_y[:, order], episode.query_x,
                       episode.query_y, episode.classes, 4)
    assert torch.allclose(method(episode), method(permuted), atol=1e-5)


def test_the_graph_network_is_equivariant_to_its_nodes():
    torch.manual_seed(0)
    network = GraphNetwork(6, 3).double().eval()
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    order = torch.tensor([3, 0, 4, 2, 1])
    assert torch.allclose(network(x)[:, order], network(x[:, order]), atol=1e-10)


def test_adjacencies_are_the_ones_forward_uses_and_the_query_rows_follow_the_support():
    torch.manual_seed(0)
    network = GraphNetwork(6, 3).double().eval()
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    found = network.adjacencies(x)
    assert len(found) == 3
    by_hand, h = [], x
    for edges, conv in zip(network.edges, network.convs, strict=True):
        by_hand.append(edges(h))
        h = torch.cat([h, F.leaky_relu(conv(h, by_hand[-1]))], dim=-1)
    by_hand.append(network.last_edges(h))
    for a, b in zip(found, by_hand, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(network.last_conv(h, by_hand[-1]), network(x))
    # the query node's rows, support nodes in the episode's order: permuting the support set
    # permutes them alike
    method = GraphNeuralNetwork(n_way=4).eval()
    episode = _episode(n_way=4, k_shot=2, n_query=1, seed=3)
    order = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    permuted = Episode(episode.support_x[:, order], episode.support_y[:, order], episode.query_x,
                       episode.query_y, episode.classes, 4)
    rows, rows_permuted = method.query_adjacency(episode), method.query_adjacency(permuted)
    for a, b in zip(rows, rows_permuted, strict=True):
        assert a.shape == (1, 4, 8)
        torch.testing.assert_close(a.sum(-1), torch.ones(1, 4))
        torch.testing.assert_close(a[..., order], b, rtol=1e-4, atol=1e-6)


# --- gradients -----------------------------------------------------------------------------


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    network = GraphNetwork(4 + 2, 2).double().eval()  # running statistics: a fixed function
    edges = EdgeNetwork(3, 2).double().train()  # batch statistics of the pairs
    x = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 0])
    assert torch.autograd.gradcheck(
        lambda nodes: F.cross_entropy(network(nodes)[:, 0], labels), (x,))
    y = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda nodes: edges(nodes)[:, :, 1:].sum(-1), (y,))


def test_the_loss_reaches_the_embedding():
    torch.manual_seed(0)
    method = GraphNeuralNetwork()
    loss, logits = method.loss(_episode(tasks=2))
    assert logits.shape == (2, 10, 5)
    loss.backward()
    assert method.backbone.convs[0].weight.grad.abs().sum() > 0
    assert method.graph.edges[0].layers[0][0].weight.grad.abs().sum() > 0


# --- evaluation, bad input, checkpoints ----------------------------------------------------


def test_evaluation_in_chunks_equals_one_batch(monkeypatch):
    torch.manual_seed(0)
    method = GraphNeuralNetwork().eval()
    episode = _episode(tasks=2, k_shot=2, n_query=3, seed=5)
    whole = method(episode)
    monkeypatch.setattr(gnn_module, "GRAPH_PAIRS_PER_CHUNK", 250)  # 2 graphs of 11 nodes
    assert torch.allclose(method(episode), whole, atol=1e-6)


def test_bad_input_is_refused_in_one_line():
    cases = [
        (lambda: GraphNeuralNetwork(image_size=18), "at least 20x20 pixels"),
        (lambda: GraphNeuralNetwork(n_way=1), "n_way must be an integer of at least 2"),
        (lambda: GraphNeuralNetwork(query_label="random"),
         "query_label must be one of uniform, zeros"),
        (lambda: GraphNeuralNetwork(n_way=5)(_episode(n_way=4)),
         r"built for 5-way episodes .* got n_way=4: train a model for 4-way episodes"),
        (lambda: GraphNeuralNetwork()(_episode(size=32)), r"built for images \[batch, 1, 28, 28\]"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            build()
        assert "\n" not in str(error.value)
    episode = _episode()
    bad = episode.query_y.clone()
    bad[0, 0] = 5
    with pytest.raises(ValueError, match=r"query labels must be in 0\.\.4"):
        GraphNeuralNetwork().loss(Episode(episode.support_x, episode.support_y, episode.query_x,
                                          bad, episode.classes, 5))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    method = build_method("gnn", n_way=4, query_label="zeros")
    method.training_step(_episode(n_way=4))
    method.eval()
    save_checkpoint(tmp_path, method)
    loaded, record = load_checkpoint(tmp_path)
    assert isinstance(loaded, GraphNeuralNetwork) and record["hparams"] == method.hparams
    episode = _episode(n_way=4, seed=2)
    assert torch.equal(loaded(episode), method(episode))


# --- training through the loop and the command line ----------------------------------------


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, omniglot_small):
    def fresh(seed: int) -> GraphNeuralNetwork:
        torch.manual_seed(seed)
        return GraphNeuralNetwork()

    config = TrainingConfig(n_way=5, k_shot=1, n_query=1, tasks=3, episodes=7, val_every=3,
                            val_episodes=4, val_way=5, val_query=2, checkpoint_every=2, seed=3)
    straight, _ = train_interrupted_and_straight(fresh, omniglot_small, config, tmp_path,
                                                 omniglot_small, crash_after=4)
    assert [e["episode"] for e in straight.history if "val_accuracy" in e] == [3, 6, 7]


@pytest.fixture(scope="module")
def gnn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gnn") / "run"
    assert main(["train", "gnn", "--way", "5", "--shot", "1", "--query", "1", "--tasks", "2",
                 "--episodes", "3", "--val-every", "3", "--val-episodes", "4",
                 "--checkpoint-every", "3", "--out", str(out), "--no-progress"]) == 0
    return out


def test_cli_trains_and_reports_its_own_way_only(gnn_run, capsys):
    record = json.loads((gnn_run / "best" / "checkpoint.json").read_text())
    assert record["method"] == "gnn"
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "n_way": 5,
                                 "query_label": "uniform"}
    assert record["config"]["batch_size"] == 2
    assert main(["report", str(gnn_run), "--split", "val", "--episodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [(5, 1), (5, 5)]
    assert [r["paper_accuracy"] for r in report["results"]] == [0.992, 0.997]
    assert report["paper"].startswith("Garcia and Bruna")


def test_cli_refuses_another_way_in_validation_and_passes_the_option(tmp_path, capsys):
    assert main(["train", "gnn", "--way", "5", "--val-way", "20", "--episodes", "1", "--out",
                 str(tmp_path / "a")]) == 2
    assert "--val-way 5" in capsys.readouterr().err
    assert main(["train", "gnn", "--query-label", "zeros", "--way", "3", "--shot", "1",
                 "--query", "1", "--tasks", "1", "--episodes", "1", "--val-every", "0",
                 "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    method, record = load_checkpoint(tmp_path / "b" / "best")
    assert method.query_label == "zeros" and record["hparams"]["n_way"] == 3
