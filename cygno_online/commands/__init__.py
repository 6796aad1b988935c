"""Subcommands of ``cygno-online``: one module each (see :mod:`cygno_online.cli`)."""
