"""`keras-vae serve` under faults, over real HTTP on 127.0.0.1: versions that change on disk, hostile JSON, big batches.

Expectations come from TF Serving's source: core/aspired_versions_manager.cc and availability_preserving_policy.cc
(which versions load and unload), sources/storage_path/file_system_storage_path_source.cc (which folders are
versions), core/servable_state_monitor.cc and model_servers/get_model_status_impl.cc (what status reports),
session_bundle/oss/session_bundle_util.cc (load errors), util/json_tensor.cc (rapidjson with
kParseIterativeFlag: no nesting limit) and the batch scheduler ("Task size N is larger than maximum input batch
size M", InvalidArgument).
"""

import json
import os
import random
import shutil
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.export import rest_json
from keras_vae.export.rest_json import ServingError, loads
from tests.export.test_rest_parity import call, serving
from tests.export.test_server import assert_still_serving, wait_for

ZERO = [0.0, 0.0, 0.0, 0.0]
FAST = {"poll_seconds": 0.1, "max_load_retries": 0}


def states(server):
    """``{version: (state, error_code)}`` from the status route."""
    answer = call(server, "GET", "/v1/models/vae")[1]
    return {int(s["version"]): (s["state"], s["status"]["error_code"]) for s in answer["model_version_status"]}


def add_version(model_dir, version, source=1):
    """A copy of version ``source`` as ``version``, moved into place in one rename (as an export writes it)."""
    staging = model_dir / f".tmp-copy-{version}"
    shutil.copytree(model_dir / str(source), staging)
    os.rename(staging, model_dir / str(version))


def add_broken_version(model_dir, version):
    staging = model_dir / f".tmp-broken-{version}"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"not a protocol buffer")
    os.rename(staging, model_dir / str(version))


def predict(server, path="/v1/models/vae:predict", z=ZERO):
    return call(server, "POST", path, {"instances": [z]})


@pytest.fixture(scope="module")
def decode(exported):
    return tf.saved_model.load(exported.saved_model_dir).signatures["serving_default"]


# ----------------------------------------------------------------------------- model status and version changes
def test_deleting_the_served_version_under_a_broken_higher_one_follows_tf_serving(model_copy, decode):
    """Latest-1 policy. The broken version 2 is the one aspired; the availability-preserving policy keeps
    version 1 loaded (it unloads an unaspired version only once an aspired one is ready), so deleting 1's folder
    changes neither the aspired set nor what is loaded: 1 stays AVAILABLE and answers from memory."""
    z = [0.5, -1.0, 0.25, 2.0]
    expected = decode(z=tf.constant([z]))["images"].numpy()
    spare = shutil.copytree(model_copy / "1", model_copy.parent / "spare")
    with serving(model_copy, **FAST) as server:
        add_broken_version(model_copy, 2)
        wait_for(lambda: states(server).get(2) == ("END", "DATA_LOSS"))
        status = call(server, "GET", "/v1/models/vae/versions/2")[1]["model_version_status"][0]["status"]
        assert status["error_message"] == f"Can't parse {model_copy / '2' / 'saved_model.pb'} as binary proto"
        assert states(server) == {2: ("END", "DATA_LOSS"), 1: ("AVAILABLE", "OK")}

        shutil.rmtree(model_copy / "1")
        time.sleep(0.5)  # several polls
        assert states(server) == {2: ("END", "DATA_LOSS"), 1: ("AVAILABLE", "OK")}
        for path in ("/v1/models/vae:predict", "/v1/models/vae/versions/1:predict"):
            status, answer = predict(server, path, z)
            assert status == 200
            np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=1e-6)
        assert predict(server, "/v1/models/vae/versions/2:predict")[0] == 404

        # Removing the broken version leaves no version on disk: nothing is aspired, version 1 is unloaded.
        shutil.rmtree(model_copy / "2")
        wait_for(lambda: states(server) == {2: ("END", "DATA_LOSS"), 1: ("END", "OK")})
        assert predict(server) == (404, {"error": "Servable not found for request: Latest(vae)"})

        # A good version put back as 2 (the broken one fixed: removed, then replaced) loads afresh.
        os.rename(spare, model_copy / "2")
        wait_for(lambda: states(server) == {2: ("AVAILABLE", "OK"), 1: ("END", "OK")})
        assert predict(server)[0] == 200


def test_policy_all_unloads_a_deleted_version_while_another_serves(model_copy):
    """All-versions policy: the deleted version is no longer aspired and another aspired version is ready."""
    add_version(model_copy, 2)
    with serving(model_copy, version_policy="all", **FAST) as server:
        assert states(server) == {2: ("AVAILABLE", "OK"), 1: ("AVAILABLE", "OK")}
        add_broken_version(model_copy, 3)
        wait_for(lambda: states(server).get(3) == ("END", "DATA_LOSS"))
        shutil.rmtree(model_copy / "2")
        wait_for(lambda: states(server) == {3: ("END", "DATA_LOSS"), 2: ("END", "OK"), 1: ("AVAILABLE", "OK")})
        assert predict(server, "/v1/models/vae/versions/2:predict")[0] == 404
        assert predict(server, "/v1/models/vae/versions/1:predict")[0] == 200
        assert predict(server)[0] == 200  # Latest: the highest available version, 1


def test_specific_policy_loads_only_named_versions_as_they_appear(model_copy):
    with serving(model_copy, version_policy=[1, 3], **FAST) as server:
        add_version(model_copy, 2)
        time.sleep(0.5)
        assert states(server) == {1: ("AVAILABLE", "OK")}  # 2 is not named
        add_version(model_copy, 3)
        wait_for(lambda: states(server) == {3: ("AVAILABLE", "OK"), 1: ("AVAILABLE", "OK")})
        shutil.rmtree(model_copy / "1")
        wait_for(lambda: states(server) == {3: ("AVAILABLE", "OK"), 1: ("END", "OK")})


def test_load_errors_carry_tf_servings_codes_and_other_names_count_as_versions(model_copy):
    with serving(model_copy, **FAST) as server:
        (model_copy / "2").mkdir()  # no saved_model.pb (a copy that never finished)
        wait_for(lambda: states(server).get(2) == ("END", "NOT_FOUND"))
        message = call(server, "GET", "/v1/models/vae/versions/2")[1]["model_version_status"][0]["status"]["error_message"]
        assert message == (
            "Specified file path does not appear to contain a SavedModel bundle (should have a file called "
            f"`saved_model.pb`)\nSpecified file path: {model_copy / '2'}"
        )
        # The file-system source reads any child whose name is an int64 (absl::SimpleAtoi): "003" is version 3.
        add_version(model_copy, "003")
        wait_for(lambda: states(server).get(3) == ("AVAILABLE", "OK"))
        assert predict(server, "/v1/models/vae/versions/3:predict")[0] == 200
        assert states(server)[1] == ("END", "OK")
        # A file named as a version is a version TF Serving fails to load; the one serving keeps serving.
        (model_copy / "4").write_text("not a model")
        wait_for(lambda: states(server).get(4) == ("END", "NOT_FOUND"))
        assert states(server)[3] == ("AVAILABLE", "OK")
        assert_still_serving(server)


def test_a_vanished_base_path_keeps_what_is_loaded(model_copy):
    """TF Serving's source fails the poll ("Could not find base path") and changes nothing until it returns."""
    with serving(model_copy, **FAST) as server:
        away = model_copy.parent / "away"
        os.rename(model_copy, away)
        time.sleep(0.5)
        assert states(server) == {1: ("AVAILABLE", "OK")}
        assert_still_serving(server)
        os.rename(away, model_copy)
        add_version(model_copy, 2)
        wait_for(lambda: states(server) == {2: ("AVAILABLE", "OK"), 1: ("END", "OK")})


def test_requests_running_while_versions_come_and_go_are_all_answered(model_copy, decode):
    z = np.random.default_rng(7).standard_normal((1, 4)).astype(np.float32)
    expected = decode(z=tf.constant(z))["images"].numpy()
    answers, stop = [], threading.Event()

    def client(server):
        while not stop.is_set():
            answers.append(predict(server, z=z[0].tolist()))
            time.sleep(0.01)

    with serving(model_copy, **FAST) as server:
        threads = [threading.Thread(target=client, args=(server,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            add_version(model_copy, 2)
            wait_for(lambda: states(server).get(2) == ("AVAILABLE", "OK"))
            add_broken_version(model_copy, 3)
            wait_for(lambda: states(server).get(3) == ("END", "DATA_LOSS"))
            shutil.rmtree(model_copy / "3")
            add_version(model_copy, 4, source=2)
            wait_for(lambda: states(server).get(4) == ("AVAILABLE", "OK") and states(server)[2][0] == "END")
            shutil.rmtree(model_copy / "4")
            wait_for(lambda: states(server).get(2) == ("AVAILABLE", "OK"))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
    assert len(answers) > 10
    for status, answer in answers:
        assert status == 200, answer
        np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=1e-6)


# ----------------------------------------------------------------------------- JSON nesting
DEEP = 100_000


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a": ', b"}"), (b'[{"k": ', b"}]"), (b"[ ", b" ]")])
def test_deep_nesting_under_an_ignored_key_is_answered_200(rest_server, decode, opener, closer):
    z = [[0.1, 0.2, -0.3, 0.4]]
    body = b'{"ignored": ' + opener * DEEP + b"1" + closer * DEEP + b', "instances": ' + json.dumps(z).encode() + b"}"
    started = time.monotonic()
    status, answer = call(rest_server, "POST", "/v1/models/vae:predict", body)
    assert status == 200, answer
    assert time.monotonic() - started < 30
    np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), decode(z=tf.constant(z))["images"].numpy(),
                               atol=1e-6)


DEEP_BODIES = [
    (b'{"instances": ' + b"[" * DEEP + b"0" + b"]" * DEEP + b"}", "tensor parsing error: z"),
    (b'{"inputs": {"z": ' + b"[" * DEEP + b"0" + b"]" * DEEP + b"}}", "tensor parsing error: z"),
    (b'{"instances": [[0, 0, 0, ' + b"[" * 300 + b"0" + b"]" * 300 + b"]]}", "list at unexpected level: 1 expected < 1"),
    (b'{"instances": ' + b"[" * 100 + b"0" + b"]" * 100 + b"}", "has 100 dimensions"),
    (b'{"signature_name": ' + b"[" * DEEP + b"]" * DEEP + b"}", "'signature_name' key must be a string value."),
    (b"[" * DEEP + b"]" * DEEP, "Is not object"),
    (b'{"a": ' + b"[" * DEEP + b"]" * (DEEP - 1) + b"}", "JSON Parse error: Missing a comma or ']' after an array element."),
    (b'{"a": ' + b"[" * DEEP, f"JSON Parse error: Invalid value. at offset: {6 + DEEP}"),
    (b'{"a": ' + b"1" * 5000 + b"}", "JSON Parse error: Number too big to be stored in double. at offset: 6"),
]


@pytest.mark.parametrize("body, message", DEEP_BODIES, ids=[m[:40] for _, m in DEEP_BODIES])
def test_deep_or_huge_values_that_are_used_get_a_400_not_a_crash(rest_server, body, message):
    status, answer = call(rest_server, "POST", "/v1/models/vae:predict", body)
    assert status == 400 and message in answer["error"], answer
    assert len(answer["error"]) < 2000
    assert_still_serving(rest_server)


def _cut(value, depth, limit):
    """``value`` with containers ``limit`` levels deep replaced as the parser replaces them."""
    if isinstance(value, (list, dict)) and depth >= limit:
        return rest_json.DEEP_ARRAY if isinstance(value, list) else rest_json.DEEP_OBJECT
    if isinstance(value, list):
        return [_cut(item, depth + 1, limit) for item in value]
    if isinstance(value, dict):
        return {key: _cut(item, depth + 1, limit) for key, item in value.items()}
    return value


def _outcome(parse, text):
    try:
        return "ok", parse(text)
    except ServingError as err:
        return "error", err.message


def _iterative(text):
    try:
        return rest_json._iterative_decode(text, rest_json._WHITESPACE.match(text).end())
    except json.JSONDecodeError as err:
        raise rest_json._parse_error(text, err) from None


@pytest.mark.parametrize("limit", [0, 1, 2, 64])
def test_the_iterative_parser_agrees_with_the_recursive_one(monkeypatch, limit):
    """Random and mutated documents: same values (deep containers stubbed) and the same rapidjson errors."""
    monkeypatch.setattr(rest_json, "MAX_BUILT_DEPTH", limit)
    rng = random.Random(limit)

    def document(depth=0):
        roll = rng.random()
        if depth > 5 or roll < 0.3:
            return rng.choice([0, -1.5, 2e300, "a\"b", "é", None, True, False, 12345678901234567890])
        if roll < 0.65:
            return [document(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["a", "b", "c[", 'd"', ""]): document(depth + 1) for _ in range(rng.randint(0, 3))}

    compared = 0
    for _ in range(1500):
        text = json.dumps(document(), indent=rng.choice([None, 1]))
        if rng.random() < 0.5:
            chars = list(text)
            for _ in range(rng.randint(1, 2)):
                chars.insert(rng.randrange(len(chars) + 1), rng.choice('[]{},:" 0-eN'))
            text = "".join(chars)
        if not text.strip():
            continue
        expected, got = _outcome(loads, text), _outcome(_iterative, text)
        if expected[0] == "ok":
            expected = ("ok", _cut(expected[1], 0, limit))
        assert repr(got) == repr(expected), text
        compared += 1
    assert compared > 1000


# ----------------------------------------------------------------------------- batch bounds
def test_a_batch_past_the_server_maximum_gets_tf_servings_invalid_argument(rest_server):
    status, answer = call(rest_server, "POST", "/v1/models/vae:predict", {"instances": [ZERO] * 65})
    assert status == 400
    assert answer["error"].startswith("Task size 65 is larger than maximum input batch size 64.")
    assert "--max-batch-size" in answer["error"]
    assert call(rest_server, "POST", "/v1/models/vae:predict", {"instances": [ZERO] * 64})[0] == 200


@pytest.mark.parametrize("num_samples, message", [
    (10**9, "num_samples must be <= 1024 (the maximum per request)"),
    (2**31, "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
])
def test_a_huge_num_samples_is_refused_up_front(rest_server, num_samples, message):
    body = {"signature_name": "sample", "inputs": {"num_samples": num_samples, "temperature": 1.0, "seed": 1}}
    started = time.monotonic()
    status, answer = call(rest_server, "POST", "/v1/models/vae:predict", body)
    assert status == 400 and message in answer["error"], answer
    assert time.monotonic() - started < 10
    assert_still_serving(rest_server)
