"""Bank decoders: MIDAS banks -> typed items (:mod:`cygno_online.decode.items`)."""
