"""The job queue's state machine: every status a job can have and every change between them, in one table.

Pure Python (no SQL): `store/jobs.py` asks this module which statuses an event may start from and which status it
leads to, and writes only those changes.

```mermaid
stateDiagram-v2
    [*] --> queued: submit
    queued --> running: claim (all dependencies done, fits a GPU/CPU slot)
    queued --> cancelled: cancel / drop (no study wants it any more)
    queued --> blocked: block (a dependency failed or was cancelled)
    blocked --> queued: unblock (that dependency was queued again)
    blocked --> cancelled: cancel / drop
    running --> done: finish
    running --> queued: interrupt (checkpointed on SIGTERM) / retry_later (transient failure, attempts left)
    running --> failed: fail (attempts used up, or a failure retrying cannot heal)
    running --> cancelled: stop_cancelled (stopped after a cancel request)
    failed --> queued: retry (xaug retry, or the study submitted again)
    cancelled --> queued: retry
    done --> [*]
```

A cancel request on a running job only sets its `cancel_requested` flag: the job stops at its next stop check and
the worker then records `stop_cancelled`. A job that finishes before it reaches a check is done: its work is complete
and recorded.
"""

from __future__ import annotations

QUEUED, RUNNING, DONE, FAILED, CANCELLED, BLOCKED = "queued", "running", "done", "failed", "cancelled", "blocked"
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, BLOCKED)
FINISHED = (DONE, FAILED, CANCELLED)
"""Statuses a job leaves only when a user (or a new submission) queues it again."""
STOPS_DEPENDENTS = (FAILED, CANCELLED, BLOCKED)
"""A job in one of these statuses blocks the queued jobs that depend on it."""

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # event: (statuses it may start from, status it leads to)
    "claim": ((QUEUED,), RUNNING),
    "finish": ((RUNNING,), DONE),
    "interrupt": ((RUNNING,), QUEUED),
    "retry_later": ((RUNNING,), QUEUED),
    "fail": ((RUNNING,), FAILED),
    "stop_cancelled": ((RUNNING,), CANCELLED),
    "cancel": ((QUEUED, BLOCKED), CANCELLED),
    "drop": ((QUEUED, BLOCKED), CANCELLED),
    "block": ((QUEUED,), BLOCKED),
    "unblock": ((BLOCKED,), QUEUED),
    "retry": ((FAILED, CANCELLED), QUEUED),
}


class TransitionError(ValueError):
    """A status change the state machine does not allow (a bug in the caller, not a user error)."""


def sources(event: str) -> tuple[str, ...]:
    """The statuses from which `event` may move a job."""
    return TRANSITIONS[event][0]


def target(event: str) -> str:
    """The status `event` moves a job to."""
    return TRANSITIONS[event][1]


def transition(status: str, event: str) -> str:
    """The status after `event` happens to a job in `status`; TransitionError if the event is not allowed there."""
    if event not in TRANSITIONS:
        raise TransitionError(f"unknown queue event '{event}'; known: {', '.join(TRANSITIONS)}")
    if status not in sources(event):
        raise TransitionError(f"a {status} job cannot '{event}' (only a job that is {' or '.join(sources(event))})")
    return target(event)


def after_failure(*, cancel_requested: bool, attempts: int, max_attempts: int, retryable: bool) -> str:
    """The event after a running job's attempt failed (`attempts` counts this one).

    A cancel request wins; a failure that retrying cannot heal (bad data, missing weights, an invalid recipe) fails
    at once; a transient one (out of memory, a killed worker) is queued again while attempts are left.
    """
    if cancel_requested:
        return "stop_cancelled"
    if retryable and attempts < max_attempts:
        return "retry_later"
    return "fail"


def after_interrupt(*, cancel_requested: bool) -> str:
    """The event after a running job stopped at a stop check: cancelled if asked to, else queued to resume."""
    return "stop_cancelled" if cancel_requested else "interrupt"
