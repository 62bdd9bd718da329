"""Metrics that belong to the one step they were measured at.

Lightning keeps the last value a callback logged (``trainer.callback_metrics``) until it is logged again, and a
``ModelCheckpoint`` monitoring it at a later step would name and rank that step's checkpoint by the old value. A
measurement that did not happen (no face found, no validation at this step) must leave the metric absent: then a
checkpoint callback monitoring it writes nothing at that step.
"""
from __future__ import annotations

from typing import Iterable


def forget_metrics(trainer, names: Iterable[str]) -> None:
    """Drop ``names`` from what checkpoint callbacks read now (``trainer.callback_metrics``) and from the values
    Lightning keeps for the running loop, so that no earlier value stands in for this step's."""
    names = set(names)
    results = getattr(trainer, "_results", None)  # the running loop's logged values (Lightning's result collection)
    for item in list(results.values()) if results else []:
        if getattr(getattr(item, "meta", None), "name", None) in names:
            item.reset()  # excluded from the metrics Lightning hands on until logged again
    metrics = trainer.callback_metrics
    for key in [k for k in metrics if k in names or k.rsplit("_", 1)[0] in names]:  # also the "_step" forms
        del metrics[key]
