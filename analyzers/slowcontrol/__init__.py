"""Slow-control analyzer plugin (``slowcontrol``)."""

from .analyzer import SlowControlAnalyzer

ANALYZERS = [SlowControlAnalyzer]
