"""Test helpers shipped with the package (the MIDAS stand-in)."""
