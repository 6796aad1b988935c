"""cygno-online: the online monitor of the CYGNO experiment."""

__version__ = "0.1.0"
