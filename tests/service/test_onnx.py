"""`GET /v1/checkpoints/{id}/model.onnx`: the example models, trained small in this process,
run in onnxruntime exactly as the service predicts; opsets; the 422s; tenant isolation; the
client method and the `weightsmith export` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from flask.testing import FlaskClient

from core.datasets import load_builtin, parse_dataset
from core.datasets.dataset import Dataset
from core.training import train
from export.onnx import layers as onnx_layers
from service.cli import main
from service.client import WeightsmithAPIError, WeightsmithClient
from tests.export.helpers import ATOL, BATCH_SIZES, RTOL, run_onnx
from tests.service.helpers import assert_problem
from tests.service.test_cli_client import env  # noqa: F401 (fixtures)
from tests.service.test_client import ws  # noqa: F401 (fixture)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# example -> (data set, epochs of the small version)
SMALL: dict[str, tuple[str, int]] = {
    "digits_mlp": ("builtin:digits", 2),
    "digits_cnn": ("builtin:digits_images", 1),
    "regression": ("regression.csv", 5),  # its warm-up is 3 epochs
    "xor": ("builtin:xor", 20),
}


def example_data(name: str) -> Dataset:
    if name.startswith("builtin:"):
        return load_builtin(name.removeprefix("builtin:"))
    return parse_dataset((EXAMPLES / name).read_bytes(), "csv")


def import_trained(client: FlaskClient, auth: dict[str, str], example: str) -> tuple[str, Any]:
    """Train a small version of examples/<example>.json here; import its weights.npz."""
    spec = json.loads((EXAMPLES / f"{example}.json").read_text())
    data_name, epochs = SMALL[example]
    spec["training"]["epochs"] = epochs
    data = example_data(data_name)
    result = train(spec, data.X, data.y)
    response = client.post(f"/v1/checkpoints?loss={spec['loss']['type']}",
                           data=result.weights_npz(),
                           headers={**auth, "Content-Type": "application/x-npz"})
    assert response.status_code == 201, response.data
    return response.get_json()["id"], data


def get_onnx(client: FlaskClient, auth: dict[str, str], ident: str, query: str = "") -> Any:
    return client.get(f"/v1/checkpoints/{ident}/model.onnx{query}", headers=auth)


@pytest.mark.parametrize("example", sorted(SMALL))
def test_example_model_answers_as_the_service_predicts(client: FlaskClient,
                                                       auth: dict[str, str],
                                                       example: str) -> None:
    ident, data = import_trained(client, auth, example)
    response = get_onnx(client, auth, ident)
    assert response.status_code == 200, response.data
    model = onnx.load_from_string(response.data)
    onnx.checker.check_model(model, full_check=True)
    rows = np.random.default_rng(0).permutation(len(data.X))
    for n in BATCH_SIZES:
        X = data.X[rows[:n]]
        predicted = client.post(f"/v1/checkpoints/{ident}/predict",
                                json={"inputs": X.tolist()}, headers=auth).get_json()
        got = run_onnx(response.data, X)
        np.testing.assert_allclose(got, predicted["outputs"], rtol=RTOL, atol=ATOL,
                                   err_msg=f"batch {n}")
        if predicted["classes"] is not None:  # the classifiers: softmax outputs
            assert got.argmax(axis=1).tolist() == predicted["classes"]
    link = {p.key: p.value for p in model.metadata_props}["weightsmith.output_activation"]
    assert link == ("identity" if example == "regression" else "softmax")


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_the_opset_asked_for(client: FlaskClient, auth: dict[str, str], opset: int) -> None:
    ident, _ = import_trained(client, auth, "xor")
    response = get_onnx(client, auth, ident, f"?opset={opset}")
    assert response.status_code == 200, response.data
    model = onnx.load_from_string(response.data)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    default = onnx.load_from_string(get_onnx(client, auth, ident).data)
    assert default.opset_import[0].version == 17


@pytest.mark.parametrize("value", ["12", "22", "0", "x", "17.5", ""])
def test_an_opset_not_offered_is_a_422_naming_it(client: FlaskClient, auth: dict[str, str],
                                                 value: str) -> None:
    ident, _ = import_trained(client, auth, "xor")
    body = assert_problem(get_onnx(client, auth, ident, f"?opset={value}"), 422)
    assert [e["field"] for e in body["errors"]] == ["opset"]


def test_a_layer_without_an_onnx_form_is_a_422_naming_it(
    client: FlaskClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every layer type maps today (tests/export checks it); a type added to core without an
    # exporter is what removing one stands for.
    ident, _ = import_trained(client, auth, "digits_mlp")
    monkeypatch.delitem(onnx_layers.LAYER_EXPORTERS, "dropout")
    body = assert_problem(get_onnx(client, auth, ident), 422)
    assert body["type"] == "urn:weightsmith:problem:not-exportable"
    assert body["errors"][0]["field"] == "model.layers[1]"
    assert "'dropout' has no ONNX form" in body["errors"][0]["message"]


def test_a_trained_jobs_checkpoint_is_the_owners_only(client: FlaskClient, seeded: dict[str, str],
                                                      auth: dict[str, str]) -> None:
    owner = {"Authorization": f"Bearer {seeded['api_key']}"}
    ident = seeded["checkpoint_id"]
    response = get_onnx(client, owner, ident)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{ident}.onnx"'
    X = np.random.default_rng(1).normal(size=(7, 4)) * 3
    predicted = client.post(f"/v1/jobs/{seeded['job_id']}/predict",
                            json={"inputs": X.tolist(), "checkpoint": ident},
                            headers=owner).get_json()
    np.testing.assert_allclose(run_onnx(response.data, X), predicted["outputs"], rtol=RTOL,
                               atol=ATOL)
    assert_problem(get_onnx(client, auth, ident), 404)  # another tenant's
    assert_problem(get_onnx(client, owner, "ckpt_missing"), 404)
    assert_problem(client.get(f"/v1/checkpoints/{ident}/model.onnx"), 401)


def register(client: FlaskClient, auth: dict[str, str], name: str, checkpoint_id: str) -> int:
    """A model `name` with `checkpoint_id` as its next version; returns the version number."""
    client.post("/v1/models", json={"name": name}, headers=auth)
    response = client.post(f"/v1/models/{name}/versions", json={"checkpoint_id": checkpoint_id},
                           headers=auth)
    assert response.status_code == 201, response.data
    version: int = response.get_json()["version"]
    return version


def test_a_model_version_exports_its_checkpoint(client: FlaskClient, auth: dict[str, str],
                                                other_auth: dict[str, str]) -> None:
    ident, _ = import_trained(client, auth, "xor")
    version = register(client, auth, "xor-net", ident)
    response = client.get(f"/v1/models/xor-net/versions/{version}/model.onnx?opset=13",
                          headers=auth)
    assert response.status_code == 200, response.data
    assert response.data == get_onnx(client, auth, ident, "?opset=13").data
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="xor-net-v{version}.onnx"'
    for path in (f"xor-net/versions/{version + 1}", f"no-such-model/versions/{version}"):
        assert_problem(client.get(f"/v1/models/{path}/model.onnx", headers=auth), 404)
    assert_problem(client.get(f"/v1/models/xor-net/versions/{version}/model.onnx",
                              headers=other_auth), 404)
    body = assert_problem(client.get(f"/v1/models/xor-net/versions/{version}/model.onnx"
                                     "?opset=9", headers=auth), 422)
    assert body["errors"][0]["field"] == "opset"


def test_client_export_onnx(ws: WeightsmithClient, client: FlaskClient,  # noqa: F811
                            auth: dict[str, str], tmp_path: Path) -> None:
    ident, _ = import_trained(client, auth, "xor")
    target = tmp_path / "xor.onnx"
    data = ws.export_onnx(ident, target, opset=13)
    assert target.read_bytes() == data
    assert onnx.load_from_string(data).opset_import[0].version == 13
    with pytest.raises(WeightsmithAPIError) as refused:
        ws.export_onnx(ident, opset=99)
    assert refused.value.status == 422 and refused.value.errors[0]["field"] == "opset"
    version = register(client, auth, "xor-net", ident)
    assert ws.export_onnx("xor-net", version=version) == ws.export_onnx(ident)


def test_weightsmith_export_command(env: str, client: FlaskClient,  # noqa: F811
                                    auth: dict[str, str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    ident, data = import_trained(client, auth, "digits_mlp")
    target = tmp_path / "model.onnx"
    code = main(["export", ident, "--format", "onnx", "--opset", "19", "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote {target}" in out and "onnx" in out
    assert onnx.load(str(target)).opset_import[0].version == 19
    assert run_onnx(target.read_bytes(), data.X[:3]).shape == (3, 10)

    code = main(["export", ident, "-o", str(tmp_path / "default.onnx"), "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert code == 0 and report["format"] == "onnx"
    assert report["size_bytes"] == (tmp_path / "default.onnx").stat().st_size

    version = register(client, auth, "digits", ident)
    code = main(["export", "digits", "--version", str(version), "-o", str(tmp_path / "v.onnx")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "v.onnx").read_bytes() == (tmp_path / "default.onnx").read_bytes()
    capsys.readouterr()

    code = main(["export", ident, "--opset", "30", "-o", str(tmp_path / "no.onnx")])
    _, err = capsys.readouterr()
    assert code == 3 and "422" in err and "opset" in err
    assert not (tmp_path / "no.onnx").exists()
