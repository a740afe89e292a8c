"""fslearn: few-shot learning, the package behind an open course.

The pieces fit together like this::

    from fslearn.data import load_omniglot, EpisodeSampler
    from fslearn.methods import PrototypicalNetwork, MatchingNetwork, RelationNetwork, MAML, adapt
    from fslearn.training import TrainingConfig, train
    from fslearn.evaluation import evaluate
    from fslearn.data import SequenceTasks           # sequence episodes, for MANN and LSTM
    from fslearn.evaluation import evaluate_sequences
    from fslearn.prediction import predict     # classify your own images
"""

__version__ = "0.1.0"

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.data import Episode, EpisodeSampler, FewShotDataset, load_image_folder, load_omniglot
from fslearn.evaluation import (
    EvaluationResult,
    SequenceResult,
    confidence_interval95,
    evaluate,
    evaluate_sequences,
)
from fslearn.methods import (
    ANIL,
    MAML,
    MANN,
    FewShotMethod,
    FirstOrderMAML,
    LSTMBaseline,
    MatchingNetwork,
    MetaLSTM,
    MetaSGD,
    MetricMethod,
    PrototypicalNetwork,
    RelationNetwork,
    Reptile,
    adapt,
)
from fslearn.prediction import Prediction, predict
from fslearn.training import TrainingConfig, train

__all__ = [
    "ANIL",
    "MAML",
    "MANN",
    "Episode",
    "EpisodeSampler",
    "EvaluationResult",
    "FewShotDataset",
    "FewShotMethod",
    "FirstOrderMAML",
    "LSTMBaseline",
    "MatchingNetwork",
    "MetaLSTM",
    "MetaSGD",
    "MetricMethod",
    "Prediction",
    "PrototypicalNetwork",
    "RelationNetwork",
    "Reptile",
    "SequenceResult",
    "TrainingConfig",
    "__version__",
    "adapt",
    "confidence_interval95",
    "evaluate",
    "evaluate_sequences",
    "load_checkpoint",
    "load_image_folder",
    "load_omniglot",
    "predict",
    "save_checkpoint",
    "train",
]
