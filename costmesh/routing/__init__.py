"""The learned router: features, training, the versioned artifact, calibration and metrics."""
