"""PMT and GEM waveform analyzer plugin (``pmt``)."""

from .analyzer import PmtAnalyzer

ANALYZERS = [PmtAnalyzer]
