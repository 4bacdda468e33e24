"""Failing soft: admission control, the circuit breaker, and the watchdog that interrupts cancelled or overdue work."""
