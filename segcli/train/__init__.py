"""``segcli train``: fine-tune a Mask R-CNN on labels in the formats segcli writes.

>>> from segcli.train import TrainOptions, run_train                       # doctest: +SKIP
>>> result = run_train(TrainOptions("labels.json", Path("runs/parts"), images=Path("photos")))
>>> result.best                                                            # runs/parts/best.pt

Modules: :mod:`~segcli.train.data` (readers and checks), :mod:`~segcli.train.augment` (one
example), :mod:`~segcli.train.model` (start weights, new head, frozen layers),
:mod:`~segcli.train.schedule`, :mod:`~segcli.train.validate` (AP by ``segcli eval``'s code),
:mod:`~segcli.train.loop` (:func:`run_train`), :mod:`~segcli.train.curves`.
"""

from segcli.train.data import DataError, Dataset, read_dataset
from segcli.train.loop import TrainEvents, TrainOptions, TrainResult, run_train

__all__ = ["DataError", "Dataset", "TrainEvents", "TrainOptions", "TrainResult", "read_dataset", "run_train"]
