"""Datasets, episodes and downloads."""

from fslearn.data.batches import LabelledBatch, LabelledBatchSampler
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode, EpisodeIndices, EpisodeSampler
from fslearn.data.errors import DataError
from fslearn.data.folder import load_image_folder
from fslearn.data.glyphs import build_glyphs, load_glyphs
from fslearn.data.omniglot import DataNotFoundError, load_omniglot
from fslearn.data.pairs import PairBatch, PairSampler, TripletBatch, TripletSampler
from fslearn.data.sequences import SequenceEpisode, SequenceSampler, SequenceTasks

__all__ = [
    "DataError",
    "DataNotFoundError",
    "Episode",
    "EpisodeIndices",
    "EpisodeSampler",
    "FewShotDataset",
    "LabelledBatch",
    "LabelledBatchSampler",
    "PairBatch",
    "PairSampler",
    "SequenceEpisode",
    "SequenceSampler",
    "SequenceTasks",
    "TripletBatch",
    "TripletSampler",
    "build_glyphs",
    "load_glyphs",
    "load_image_folder",
    "load_omniglot",
]
