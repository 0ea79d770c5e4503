"""The distributed mode: a Celery app with one task, "migrate one target".

Celery does the distribution, the redelivery and the worker processes; shadowswap does not
schedule. Every setting below exists so that a worker killed mid-copy loses nothing:

- ``acks_late``: the message is acknowledged when the task returns, not when it starts, so a
  task whose worker vanished is still in the broker;
- ``reject_on_worker_lost``: a pool process killed under a live worker puts the message back at
  once (instead of recording a failure);
- a whole worker killed (machine lost): RabbitMQ redelivers when the connection drops; Redis
  redelivers an unacknowledged message after the ``visibility_timeout`` (``--visibility-timeout``);
- ``prefetch_multiplier=1``: a worker holds no more messages than it runs.

A redelivered task resumes the target from its state table (``runner.run_target``). If the first
delivery is in fact still running (a Redis visibility timeout shorter than the migration), the
second finds the target's migration lock taken and retries later instead of waiting in a slot;
when the first is done, the retry finds the target cut over and reports it done.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict
from typing import Any

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from shadowswap.errors import ConnectionFailed
from shadowswap.fleet.runner import FAILED, LOCKED, Job, Result, run_target

#: the queue the fleet's tasks travel on (a fleet per queue, if several share one broker)
QUEUE = os.environ.get("SHADOWSWAP_FLEET_QUEUE", "shadowswap-fleet")
#: seconds before a task that found its target locked by another delivery tries again
LOCKED_RETRY_SECONDS = 2.0

app = Celery("shadowswap.fleet")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=7 * 24 * 3600,
    task_track_started=True,
    broker_connection_retry_on_startup=True,
    # the migration's own log is structlog's; Celery's stays out of its way
    worker_hijack_root_logger=False,
)


def configure(
    broker: str, backend: str | None = None, visibility_timeout: float | None = None, queue: str | None = None
) -> Celery:
    """Point the app at a broker. Results go to Redis when the broker is Redis, else over
    RabbitMQ's reply queues (``rpc://``); the targets' state tables stay the source of truth."""
    if backend is None:
        backend = broker if broker.startswith(("redis://", "rediss://")) else "rpc://"
    transport: dict[str, Any] = {}
    if visibility_timeout is not None:
        transport = {
            "visibility_timeout": visibility_timeout,
            # how often a live worker looks for messages a dead one left unacknowledged
            "unacked_restore_interval": max(1.0, min(10.0, visibility_timeout / 4)),
            "unacked_restore_throttle": 1,
        }
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        broker_transport_options=transport,
        task_default_queue=queue or QUEUE,
    )
    return app


def masked(url: str) -> str:
    return str(maybe_sanitize_url(url))


def check_broker(broker: str) -> None:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2, interval_start=0.2, interval_step=0.5, timeout=5)
    except Exception as exc:  # kombu raises the transport's own errors; any of them means the same
        raise ConnectionFailed(
            f"cannot reach the broker {masked(broker)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="check the URL and that Redis or RabbitMQ is running (redis://host:6379/0, amqp://user@host//)",
        ) from None


# `celery -A shadowswap.fleet.tasks worker`: the broker from the environment
if os.environ.get("SHADOWSWAP_BROKER"):
    _vt = os.environ.get("SHADOWSWAP_VISIBILITY_TIMEOUT")
    configure(
        os.environ["SHADOWSWAP_BROKER"],
        os.environ.get("SHADOWSWAP_RESULT_BACKEND"),
        float(_vt) if _vt else None,
    )


@app.task(bind=True, name="shadowswap.fleet.migrate", acks_late=True, reject_on_worker_lost=True, max_retries=None)
def migrate(self: Any, job: dict[str, Any]) -> dict[str, Any]:
    result = run_target(Job.from_dict(job))
    if result.status == LOCKED:
        raise self.retry(countdown=LOCKED_RETRY_SECONDS)
    return asdict(result)


class CeleryBackend:
    """The dispatcher's backend for the distributed mode: one Celery task a target."""

    def __init__(
        self,
        broker: str,
        backend: str | None = None,
        visibility_timeout: float | None = None,
        queue: str | None = None,
    ) -> None:
        configure(broker, backend, visibility_timeout, queue)
        check_broker(broker)
        self.run_id = uuid.uuid4().hex[:10]

    def submit(self, job: Job) -> Any:
        task_id = f"shadowswap-{self.run_id}-{job.stage}-{job.target.id}"
        return job, migrate.apply_async(args=[job.to_dict()], task_id=task_id)

    def result(self, handle: Any) -> Result | None:
        job, async_result = handle
        if not async_result.ready():
            return None
        if async_result.successful():
            return Result.from_dict(async_result.result)
        exc = async_result.result
        return Result.for_target(
            job.target, FAILED, error=f"the task failed: {type(exc).__name__}: {exc}", stage=job.stage
        )

    def wait(self, seconds: float) -> None:
        # a task's end is only seen by asking the result backend: each in-flight task's state once
        # a poll; a tenth of a second is far below any real migration's length
        time.sleep(min(seconds, 0.1))

    def close(self) -> None:
        pass


def run_worker(
    broker: str,
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    backend: str | None = None,
    visibility_timeout: float | None = None,
    name: str | None = None,
    loglevel: str = "INFO",
    queue: str | None = None,
) -> None:
    configure(broker, backend, visibility_timeout, queue)
    check_broker(broker)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        f"--queues={queue or QUEUE}",
    ]
    if name:
        argv.append(f"--hostname={name}")
    app.worker_main(argv=argv)
