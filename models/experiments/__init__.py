"""Experiments: which arm a customer is in, what became of each offer (attribution), and the report of each arm's
conversion and revenue against the holdout with intervals. No I/O here."""
