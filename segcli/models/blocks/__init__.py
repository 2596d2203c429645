"""The bundled "blocks" model: its spec (:mod:`.spec`, data), network (:mod:`.arch`), the
synthetic toy-block world it was trained on (:mod:`.scenes`, :mod:`.motion`); its training is
``segcli train scenes:blocks`` (docs/blocks-model.md).

Import the submodules; this package itself imports nothing (``segcli --help`` stays light).
"""
