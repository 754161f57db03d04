"""Corpora: sources -> preprocessed windows -> Arrow shards (`prepare`), the shard schema and readers (`shards`),
and the batch-level streaming mixture used for pretraining (`stream`). May import cardiofm.data; never models."""
from .prepare import merge_reports, prepare_corpus
from .shards import build_mixture, corpus_features, corpus_shards, load_corpus, read_corpus_info, stream_corpus
from .sources import SOURCES, CorpusError, SourceOptions

__all__ = ["prepare_corpus", "merge_reports", "build_mixture", "corpus_features", "corpus_shards", "load_corpus",
           "read_corpus_info", "stream_corpus", "SOURCES", "SourceOptions", "CorpusError"]
