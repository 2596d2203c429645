"""The bundled "blocks" model: its spec (:mod:`.spec`, data), network (:mod:`.arch`), the
synthetic toy-block world it was trained on (:mod:`.scenes`, :mod:`.motion`) and its training.

Import the submodules; this package itself imports nothing (``segcli --help`` stays light).
"""
