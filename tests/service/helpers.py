"""Request builders and assertions shared by the service tests."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from flask.testing import FlaskClient

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with `status`; returns its body."""
    assert response.status_code == status, response.data[:800]
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def blobs(n: int = 60, features: int = 4, classes: int = 3, seed: int = 0) -> tuple[Any, Any]:
    """Separable blobs: class c centred at 3*c on every feature."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, features)) * 0.3 + 3.0 * y[:, None]
    return X, y


def csv_bytes(X: Any, y: Any, target: str = "label") -> bytes:
    header = ",".join([*(f"f{i}" for i in range(X.shape[1])), target])
    rows = [",".join([*(repr(float(v)) for v in x), str(int(t))])
            for x, t in zip(X, y, strict=True)]
    return ("\n".join([header, *rows]) + "\n").encode()


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def json_bytes(X: Any, y: Any) -> bytes:
    return json.dumps({"X": np.asarray(X).tolist(), "y": np.asarray(y).tolist()}).encode()


def upload_csv(client: FlaskClient, auth: dict[str, str], n: int = 60, features: int = 4,
               classes: int = 3, name: str = "blobs", seed: int = 0) -> dict[str, Any]:
    """Upload blobs as CSV; the same arguments upload the same bytes (the stored dataset
    comes back: 200), so distinct datasets need another `seed`."""
    X, y = blobs(n, features, classes, seed)
    response = client.post(f"/v1/datasets?name={name}&target=label", data=csv_bytes(X, y),
                           headers={**auth, "Content-Type": "text/csv"})
    assert response.status_code in (200, 201), response.data
    body: dict[str, Any] = response.get_json()
    return body


def mlp_spec(dataset: str, hidden: int = 8, outputs: int = 3, epochs: int = 2,
             **training: Any) -> dict[str, Any]:
    return {
        "name": "mlp",
        "dataset": dataset,
        "model": {"layers": [
            {"type": "dense", "units": hidden, "activation": "relu"},
            {"type": "dense", "units": outputs},
        ]},
        "training": {"epochs": epochs, "batch_size": 16, **training},
    }
