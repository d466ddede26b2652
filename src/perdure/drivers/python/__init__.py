"""The Python SDK driver: functions registered with ``@app.function``, run in this process."""

from perdure.drivers.python.context import Context, Step, SyncContext, SyncStep
from perdure.drivers.python.driver import PythonDriver

__all__ = ["Context", "PythonDriver", "Step", "SyncContext", "SyncStep"]
