"""The ``q2l`` application: training, evaluation, prediction, visualisation and export.

Each command is also a function: :func:`q2l.app.train.train`, :func:`q2l.app.commands.evaluate`,
:func:`~q2l.app.commands.predict`, :func:`~q2l.app.commands.visualize`,
:func:`~q2l.app.commands.export`.
"""

from .config import DEMO, PAPER, TrainConfig, resolve

__all__ = ["DEMO", "PAPER", "TrainConfig", "resolve"]
