"""Prometheus metrics of the ingress and the replica gauges it scrapes (``GET /metrics``)."""
