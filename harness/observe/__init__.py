"""Server-side probes read from Prometheus."""
