"""Datasets: labels read from disk (COCO ground truth loading and matching)."""
