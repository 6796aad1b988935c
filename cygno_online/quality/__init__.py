"""Data-quality monitoring: this run's histograms against a reference run.

``book`` fills the configured histograms from the analysis outputs, ``stats``
has the two-sample tests, ``checks`` turns a configured check into
good/warning/bad with a reason, ``monitor`` runs them live and at end of run
for the daemon and for ``cygno-online summary`` alike.
"""
