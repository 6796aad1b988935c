"""Camera analysis plugin (see README "Camera analysis" and sample.yaml)."""
