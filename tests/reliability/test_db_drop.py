"""Fault 4: PostgreSQL drops the worker's connections in the middle of a job.

The worker's processes connect with `application_name=ws-fault-worker`, so an admin connection
can find exactly their backends in pg_stat_activity and `pg_terminate_backend` them, several
times while the job trains (what a database failover or an idle-connection reaper does).

A connection killed while idle in the pool is replaced on checkout (`pool_pre_ping`); one killed
inside a transaction fails that transaction, which rolls back whole (an epoch's metrics, event
and checkpoint land together or not at all), and the task releases the job for a retry that
resumes from the latest checkpoint. Either way the job must end `succeeded` with the same
metrics and the same final weights, bit for bit, as an uninterrupted run.

Where the rounds land is luck, so a second test makes the worst case certain: a trigger holds
a checkpoint INSERT in pg_sleep and the test kills the connection right there, in mid-write.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from store import leases as store_leases
from store.statuses import TERMINAL_STATUSES
from tests.reliability.compare import (
    assert_bit_identical,
    assert_checkpoints_sound,
    assert_metrics_match,
    final_checkpoint_blob,
    reference_checkpoint,
)
from tests.reliability.conftest import BackendFactory
from tests.reliability.test_worker_crash import crash_spec
from tests.worker.conftest import create_job, job_row, wait_for

APP_NAME = "ws-fault-worker"
DROPS = 4
EPOCHS = 60  # long enough for DROPS rounds of kills and their retries


def terminate_worker_backends(admin: sa.Engine, database: str) -> int:
    """pg_terminate_backend every connection of the worker to `database`; how many."""
    with admin.connect() as conn:
        killed = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND application_name = :app AND pid <> pg_backend_pid()"),
            {"db": database, "app": APP_NAME}).scalar_one()
    return int(killed)


def test_a_job_survives_its_database_connections_being_killed(
        production: BackendFactory, postgres_server_url: str, postgres_url: str) -> None:
    # Every kill inside a transaction costs an attempt: allow more than the drops.
    b = production(database_query=f"application_name={APP_NAME}", max_attempts="10")
    spec = crash_spec(epochs=EPOCHS)
    reference = reference_checkpoint(spec)
    b.start_worker("w1")
    b.start_beat()
    job_id = create_job(b, spec)
    b.send(job_id)

    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    database = sa.engine.make_url(postgres_url).database
    assert database is not None
    killed: list[int] = []
    try:
        wait_for(b, job_id, lambda j: j.epoch_done >= 1, timeout=120, what="the first epoch")
        # Rounds until DROPS of them found a connection (between a kill and the reconnect,
        # or during a retry's back-off, the worker may hold none).
        while (len([k for k in killed if k]) < DROPS
               and job_row(b, job_id).status in ("queued", "running")):
            killed.append(terminate_worker_backends(admin, database))
            time.sleep(0.3)
    finally:
        admin.dispose()
    assert len([k for k in killed if k]) == DROPS, killed

    job = wait_for(b, job_id, lambda j: j.status in TERMINAL_STATUSES,
                   timeout=180, what="the job to end")
    with b.sessions() as s:
        held = [h.outcome for h in store_leases.history(s, job_id)]
        assert store_leases.overlaps(s, job_id) == []
    print(f"terminated backends per round: {killed}; leases: {held}; "
          f"attempts: {job.attempts}")
    assert (job.status, job.stop_reason, job.epoch_done) == ("succeeded", "epochs_done", EPOCHS)
    # Retries, if a kill hit a transaction, are released leases; never two at once.
    assert held[-1] == "succeeded" and set(held[:-1]) <= {"released", "lost"}
    assert job.attempts == len(held)
    assert assert_metrics_match(b, job_id, reference) == EPOCHS * 6
    assert assert_bit_identical(final_checkpoint_blob(b, job_id), reference) == 9
    assert ("final", EPOCHS) in assert_checkpoints_sound(b, job_id)
    assert job_row(b, job_id).failure_reason is None


# Holds the first checkpoint INSERT after one was committed (see test_checkpoint_write_failure
# for the xmin test) in pg_sleep, so the test can kill the connection in mid-write for sure.
SLOW_WRITE = """
CREATE SEQUENCE slow_ckpt_seq;
CREATE FUNCTION slow_ckpt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM checkpoints c WHERE c.job_id = NEW.job_id
             AND c.xmin::text <> mod(txid_current(), 4294967296)::text)
     AND nextval('slow_ckpt_seq') = 1 THEN
    PERFORM pg_sleep(30);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER slow_ckpt BEFORE INSERT ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION slow_ckpt();
"""


def test_a_connection_killed_in_the_middle_of_a_checkpoint_write(
        production: BackendFactory, postgres_server_url: str, postgres_url: str) -> None:
    b = production(database_query=f"application_name={APP_NAME}")
    with b.sessions.begin() as s:
        s.connection().exec_driver_sql(SLOW_WRITE)
    spec = crash_spec(epochs=EPOCHS // 2)
    reference = reference_checkpoint(spec)
    b.start_worker("w1")
    b.start_beat()
    job_id = create_job(b, spec)
    b.send(job_id)

    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 120
    try:
        while True:  # the worker's backend sleeping inside INSERT INTO checkpoints
            with admin.connect() as conn:
                killed = conn.execute(sa.text(
                    "SELECT pid, query, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND application_name = :app "
                    "AND wait_event = 'PgSleep'"),
                    {"db": sa.engine.make_url(postgres_url).database, "app": APP_NAME}).all()
            if killed:
                break
            assert time.monotonic() < deadline, "the checkpoint write never started"
            time.sleep(0.05)
    finally:
        admin.dispose()
    assert [r.query.lstrip().upper().startswith("INSERT INTO CHECKPOINTS") for r in killed] == [
        True]
    done_at_kill = job_row(b, job_id).epoch_done

    job = wait_for(b, job_id, lambda j: j.status in TERMINAL_STATUSES,
                   timeout=180, what="the job to end")
    with b.sessions() as s:
        held = [h.outcome for h in store_leases.history(s, job_id)]
    print(f"killed mid-write after epoch {done_at_kill}; leases: {held}")
    assert (job.status, job.epoch_done, job.attempts) == ("succeeded", EPOCHS // 2, 2)
    assert held == ["released", "succeeded"]
    assert assert_metrics_match(b, job_id, reference) == EPOCHS // 2 * 6
    assert assert_bit_identical(final_checkpoint_blob(b, job_id), reference) == 9
    assert ("final", EPOCHS // 2) in assert_checkpoints_sound(b, job_id)
