"""Durable runs: AI work that may outlive one HTTP request.

A run is a record in DynamoDB (status, owner, checkpoint, result), a message on the run
queue (SQS) and a numbered sequence of events.

What a run promises:
- Once accepted (a run id was returned), its result is stored, or its failure with a reason:
  it is never lost to a timeout, a dropped client or a dead worker.
- Events are numbered from 1 without gaps. A client that resumes after event N (with
  `Last-Event-ID: N` or `?after=N`) receives exactly the events after N; a finished run
  replays whole.
- A worker that dies stops renewing its lease; within the lease plus the watchdog interval
  another worker takes the run over from its last checkpoint. A multi-step run continues
  at the first unfinished step (finished steps are not run again); a single chat completion
  restarts. After `max_attempts` takeovers the run fails with its reason and its message is
  moved to the dead-letter queue.
- The same `Idempotency-Key` (per tenant, for 24 hours) returns the same run.

What it does not promise: a step that was cut off mid-way by a crash runs again from its
start, so a step's side effects must be safe to repeat; events a dead worker had not yet
persisted were never sent to anyone (events are persisted before they are published), and
the new owner's events follow the last persisted one.
"""
