"""Every figure a marketer reads, measured against what customers actually did in a log."""

from models.evaluation.report import EvaluationReport, evaluate

__all__ = ["EvaluationReport", "evaluate"]
