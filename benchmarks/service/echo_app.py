"""The peer of bench_predict.py: the least a Flask JSON endpoint can do.

``POST /echo`` parses the JSON body and sends it back with ``jsonify``: Werkzeug's request and
response handling, Flask's routing and JSON on both sides, nothing else. bench_predict.py
runs it under exactly the gunicorn command line of ``weightsmith api`` (the asyncio worker,
the same front (service/front.py), workers, threads and logging), so the ratio of the two
request rates is the cost of auth, rate limiting, validation, the model and the problem+json
machinery per request.
"""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify, request

from service.front import AsgiFront

app = Flask(__name__)
# What gunicorn serves: the same front as service/asgi.py, with its threads and limit.
asgi = AsgiFront(app, threads=int(os.environ.get("WEIGHTSMITH_API_THREADS", "8")),
                 max_body_bytes=64 * 1024 * 1024, body_timeout_s=60)


@app.post("/echo")
def echo() -> Response:
    return jsonify(request.get_json())
