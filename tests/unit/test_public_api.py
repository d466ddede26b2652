"""The public API is exactly this: adding or removing a name is a decision, made here."""

import perdure

EXPECTED = {
    "Batch",
    "CancelOn",
    "Client",
    "RemoteError",
    "UnauthorizedError",
    "Concurrency",
    "Debounce",
    "Priority",
    "RateLimit",
    "Singleton",
    "Throttle",
    "Timeouts",
    "App",
    "Clock",
    "Context",
    "CronTrigger",
    "Event",
    "EventTrigger",
    "ForbiddenError",
    "FunctionNotFoundError",
    "InvalidInputError",
    "KeyNotFoundError",
    "Limits",
    "NonDeterminismError",
    "NonRetriableError",
    "PayloadTooLargeError",
    "PerdureError",
    "RetryAfterError",
    "RetryPolicy",
    "RunCancelledError",
    "RunFailedError",
    "RunHandle",
    "RunInfo",
    "RunNotEndedError",
    "RunNotFoundError",
    "RunStatus",
    "ScheduleExistsError",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "ScheduleTick",
    "Schedules",
    "SentEvent",
    "Step",
    "StepError",
    "StepInfo",
    "StoreUnavailableError",
    "SyncContext",
    "SyncStep",
    "SystemClock",
    "Worker",
    "__version__",
    "cron",
    "event",
}


def test_public_names_are_pinned() -> None:
    assert set(perdure.__all__) == EXPECTED
    for name in perdure.__all__:
        assert hasattr(perdure, name), name


def test_errors_share_one_base_with_stable_codes() -> None:
    errors = [getattr(perdure, n) for n in perdure.__all__ if n.endswith("Error")]
    codes = set()
    for err in errors:
        assert issubclass(err, perdure.PerdureError)
        codes.add(err.code)
    assert len(codes) == len(errors)
