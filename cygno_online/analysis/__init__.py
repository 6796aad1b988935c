"""The analyzer plugin framework and the chain that runs decoders and analyzers."""
