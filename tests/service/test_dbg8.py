from tests.service.test_client import *  # noqa

def test_dbg(ws, finished_job):
    job_id = finished_job["id"]
    c = ws.checkpoints(job_id)
    ws.checkpoint(c[-1]["id"])
    print("before events ok")
    list(ws.events(job_id))
    ws.checkpoint(c[-1]["id"])
    print("after events ok")
