"""The driver-agnostic runtime: claim loop, leases and heartbeats, fencing, the group
committer, the crash cap and the scheduler. It executes runs through drivers
(:mod:`perdure.runtime.driver`) and depends on a small :class:`Runtime` object, never on the
App."""

from perdure.runtime.attempt import Attempt
from perdure.runtime.driver import ClientOps, Driver, HostedFunction
from perdure.runtime.hub import RunHub
from perdure.runtime.runtime import Runtime
from perdure.runtime.worker import Worker

__all__ = ["Attempt", "ClientOps", "Driver", "HostedFunction", "RunHub", "Runtime", "Worker"]
