"""Grouping log records into key sequences: sessions by id, sliding time windows, dataset readers."""
