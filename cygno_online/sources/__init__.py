"""Where events come from: live MIDAS, MIDAS files (replay) or the simulator.

Every source runs on its own thread and talks to the pipeline through the
:class:`~cygno_online.sources.base.SourceSink` methods only.
"""
