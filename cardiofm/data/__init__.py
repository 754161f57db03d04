"""Data layer: readers -> Record -> preprocessing -> augmentation -> batches."""
from .channels import CHANNEL_VOCAB, TWELVE_LEADS, canonical_channel
from .collate import collate_samples, multi_hot
from .preprocess import PreprocessConfig, prepare_input, preprocess_record
from .record import VITALS, Record, RecordError
from .rpeaks import detect_rpeaks
from .augment.star import STAR

__all__ = ["CHANNEL_VOCAB", "TWELVE_LEADS", "canonical_channel", "collate_samples", "multi_hot", "PreprocessConfig",
           "prepare_input", "preprocess_record", "VITALS", "Record", "RecordError"]
__all__ += ["detect_rpeaks", "STAR"]
from .corpus import build_mixture, load_corpus
from .readers import read_wfdb
from .splits import ptbxl_strat_fold_split, source_aware_kfold, subject_split

__all__ += ["read_wfdb", "load_corpus", "build_mixture", "subject_split", "ptbxl_strat_fold_split",
            "source_aware_kfold"]
