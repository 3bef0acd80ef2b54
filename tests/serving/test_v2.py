"""The Open Inference Protocol (KServe v2) over real HTTP, spoken by Triton's own client."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from skillmaker.evaluation.launch import RunningServer
from skillmaker.serving.v2 import INPUT_FILES, INPUT_PIXELS, OUTPUT
from tests.serving import bundles
from tests.serving.test_app import in_process_probabilities

SIZE = (8, 8, 1)


@pytest.fixture
def client(served: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=served.url.removeprefix("http://"))
    yield client
    client.close()


def digit_images() -> np.ndarray:
    data = bundles.digits()
    images: np.ndarray = data.images[data.test[:5]]
    return images


def pixels_input(images: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(INPUT_PIXELS, list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images, binary_data=binary)
    return tensor


def files_input(files: list[bytes]) -> triton.InferInput:
    tensor = triton.InferInput(INPUT_FILES, [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=np.object_))
    return tensor


def test_health_readiness_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "3")
    assert not client.is_model_ready("digits", "4")  # only the served version is ready
    assert not client.is_model_ready("cats")
    server = client.get_server_metadata()
    assert server["name"] == "skillmaker"
    assert "binary_tensor_data" in server["extensions"]


def test_model_metadata_lists_inputs_outputs_labels_and_the_stamp(
    client: triton.InferenceServerClient,
) -> None:
    for version in ("", "3"):
        metadata = client.get_model_metadata("digits", version)
        assert metadata["name"] == "digits"
        assert metadata["versions"] == ["3"]
        assert metadata["inputs"] == [
            {"name": INPUT_PIXELS, "datatype": "UINT8", "shape": [-1, *SIZE]},
            {"name": INPUT_FILES, "datatype": "BYTES", "shape": [-1]},
        ]
        assert metadata["outputs"] == [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 10]}]
        assert metadata["parameters"]["labels"] == bundles.DIGIT_LABELS
        assert metadata["parameters"]["code_version"] == "abc123"


def test_pixel_tensor_and_encoded_images_give_the_models_probabilities(
    client: triton.InferenceServerClient, digits_bundle: Path
) -> None:
    images = digit_images()
    expected = in_process_probabilities(digits_bundle, images)
    files = [bundles.png_bytes(image) for image in images]
    answers = {
        "binary pixels": client.infer("digits", [pixels_input(images)]),
        "json pixels": client.infer(
            "digits",
            [pixels_input(images, binary=False)],
            outputs=[triton.InferRequestedOutput(OUTPUT, binary_data=False)],
        ),
        "encoded files": client.infer("digits", [files_input(files)], model_version="3"),
    }
    for kind, result in answers.items():
        probabilities = result.as_numpy(OUTPUT)
        assert probabilities is not None, kind
        assert probabilities.dtype == np.float32, kind
        assert probabilities.shape == (5, 10), kind
        np.testing.assert_allclose(probabilities, expected, atol=1e-5, err_msg=kind)
        response = result.get_response()
        assert response["model_name"] == "digits"
        assert response["model_version"] == "3"
        assert response["parameters"]["code_version"] == "abc123"


@pytest.mark.parametrize(
    ("make_input", "status", "words"),
    [
        (lambda: pixels_input(np.zeros((1, 9, 9, 1), np.uint8)), "400", "shape [1, 9, 9, 1]"),
        (lambda: pixels_input(np.zeros((2, 8, 8, 3), np.uint8)), "400", "must be [-1, 8, 8, 1]"),
        (lambda: files_input([b"not an image"]), "400", "not an image"),
        (lambda: pixels_input(np.zeros((9, 8, 8, 1), np.uint8)), "413", "over the limit of 8"),
    ],
    ids=["wrong size", "wrong channels", "not an image", "batch over the limit"],
)
def test_bad_requests_get_the_protocols_error(
    client: triton.InferenceServerClient, make_input: object, status: str, words: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("digits", [make_input()])  # type: ignore[operator]
    assert caught.value.status() == status
    assert words in caught.value.message()
    assert client.infer("digits", [pixels_input(digit_images())]).as_numpy(OUTPUT) is not None


def test_an_unknown_model_or_version_is_404(client: triton.InferenceServerClient) -> None:
    for name, version in (("cats", ""), ("digits", "2")):
        with pytest.raises(InferenceServerException) as caught:
            client.infer(name, [pixels_input(digit_images())], model_version=version)
        assert caught.value.status() == "404"
        assert "not served" in caught.value.message()


def test_v2_answers_carry_the_stamp_headers_and_json_bytes_are_base64(
    served: RunningServer,
) -> None:
    png = bundles.png_bytes(digit_images()[0])
    request = {
        "id": "req-1",
        "inputs": [
            {
                "name": INPUT_FILES,
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(png).decode()],
            }
        ],
    }
    with httpx.Client(base_url=served.url, timeout=30) as http:
        answer = http.post("/v2/models/digits/versions/3/infer", json=request)
        broken = http.post("/v2/models/digits/infer", content=b"{not json")
        live = http.get("/v2/health/live")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-skill-version"] == "3"
    assert answer.headers["x-code-version"] == "abc123"
    body = answer.json()
    assert body["id"] == "req-1"
    assert body["outputs"][0]["shape"] == [1, 10]
    assert sum(body["outputs"][0]["data"]) == pytest.approx(1.0, abs=1e-5)
    assert broken.status_code == 400
    assert set(broken.json()) == {"error"}
    assert live.status_code == 200
    assert live.headers["x-code-version"] == "abc123"
