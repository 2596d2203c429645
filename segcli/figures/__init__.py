"""Figures for people: ``compare`` (semantic vs instance, proposals) and ``explain``."""
