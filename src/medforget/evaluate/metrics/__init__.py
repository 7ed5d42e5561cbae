"""Pure metric functions (no model needed) that the evaluation engine calls; see docs/metrics.md."""

from medforget.evaluate.metrics.forget_quality import forget_quality, truth_ratio, truth_ratios
from medforget.evaluate.metrics.general import (
    landmark_error,
    pairwise_accuracy,
    parse_pair_choice,
    parse_point,
    parse_quality_level,
    quality_correlation,
)
from medforget.evaluate.metrics.leak import leak_exact, leak_partial, leak_rate, redact
from medforget.evaluate.metrics.mia import (
    TokenStats,
    auroc,
    loss_score,
    min_k_plus_plus_score,
    min_k_score,
    privleak,
    supported_fpr,
    token_stats_from_logits,
    tpr_at_fpr,
    zlib_score,
)
from medforget.evaluate.metrics.refusal import REFUSAL_PATTERNS, REFUSAL_POOL, is_refusal, refusal_rate
from medforget.evaluate.metrics.text import (
    exact_match,
    exact_match_rate,
    mcq_accuracy,
    mean_rouge_l_f1,
    normalize_answer,
    parse_choice,
    rouge_l_f1,
)
from medforget.evaluate.metrics.ues import UESResult, behaviour_factor, clear_gap, kept_splits, unlearning_efficiency_score
from medforget.evaluate.metrics.wellformed import is_gibberish, is_well_formed, well_formed_rate

__all__ = [
    "REFUSAL_PATTERNS",
    "REFUSAL_POOL",
    "TokenStats",
    "UESResult",
    "auroc",
    "exact_match",
    "exact_match_rate",
    "forget_quality",
    "is_gibberish",
    "is_refusal",
    "is_well_formed",
    "landmark_error",
    "leak_exact",
    "leak_partial",
    "leak_rate",
    "loss_score",
    "mcq_accuracy",
    "mean_rouge_l_f1",
    "min_k_plus_plus_score",
    "min_k_score",
    "normalize_answer",
    "pairwise_accuracy",
    "parse_choice",
    "parse_pair_choice",
    "parse_point",
    "parse_quality_level",
    "privleak",
    "quality_correlation",
    "redact",
    "refusal_rate",
    "rouge_l_f1",
    "supported_fpr",
    "token_stats_from_logits",
    "tpr_at_fpr",
    "truth_ratio",
    "truth_ratios",
    "unlearning_efficiency_score",
    "behaviour_factor",
    "clear_gap",
    "kept_splits",
    "well_formed_rate",
    "zlib_score",
]
