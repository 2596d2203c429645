"""Evaluation: box and mask AP of a model on the user's own COCO labels (``segcli eval``)."""
