"""Seeing inside a running server: statistics, Prometheus metrics, the HTTP health port."""
