"""MIDAS event, bank, ODB and file formats: the project's own implementation
(no MIDAS installation needed)."""
