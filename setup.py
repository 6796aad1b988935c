"""Package discovery that maps the top-level ``analyzers/`` plugin folder to
``cygno_online.analyzers`` (pyproject.toml alone cannot express the mapping of
discovered sub-packages)."""

from setuptools import find_packages, setup

packages = find_packages(include=["cygno_online", "cygno_online.*"])
packages += ["cygno_online.analyzers"] + [
    f"cygno_online.analyzers.{name}" for name in find_packages("analyzers")
]

setup(packages=packages)
