"""The peer of bench_predict.py: the least a Flask JSON endpoint can do.

``POST /echo`` parses the JSON body and sends it back with ``jsonify``: Werkzeug's request and
response handling, Flask's routing and JSON on both sides, nothing else. bench_predict.py runs
it under exactly the gunicorn command line of ``weightsmith api`` (gthread, same workers,
threads and logging), so the ratio of the two request rates is the cost of auth, rate limiting,
validation, the model and the problem+json machinery per request.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo() -> Response:
    return jsonify(request.get_json())
