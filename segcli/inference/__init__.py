"""Inference: ``Segmenter`` (a plain callable over a batch of images) and the staged forward."""
