"""Drivers: what executes a run's code for the runtime (see :mod:`perdure.runtime.driver`)."""
