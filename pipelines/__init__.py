"""Wiring: the evaluation matrix, the Dagster definitions and the `yardstick` command."""
