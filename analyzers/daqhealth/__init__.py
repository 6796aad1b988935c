"""DAQ-health analyzer plugin (``daqhealth``)."""

from .analyzer import DaqHealthAnalyzer

ANALYZERS = [DaqHealthAnalyzer]
