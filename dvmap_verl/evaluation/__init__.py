"""Evaluation and analysis: backends, resumable runs, metrics, baselines, reports, comparisons."""
