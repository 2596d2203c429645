"""The bottom layer: the one data type (``Instances``), masks, settings, errors, signals.

Nothing here imports torch, and nothing here imports another segcli package.
"""
