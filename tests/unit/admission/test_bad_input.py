"""Issue 12, item 6: bad input is a 400 naming the problem — never an exception the gate would
answer "allowed unchecked", never a 500. Depth and number size are bounded before and while
parsing; every field the gate reads is type-checked, with values the history cannot store refused."""

from __future__ import annotations

import copy
import json

import pytest

from tests import reviews
from webhook.admission import objects
from webhook.admission.review import MAX_DEPTH, BadReview, parse_review


def refused(body: dict | bytes) -> BadReview:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadReview) as caught:
        parse_review(raw)
    return caught.value


def nested(depth: int) -> bytes:
    inner = b'{"a": ' * (depth - 1) + b"1" + b"}" * (depth - 1)
    review = reviews.scale(before=1, after=2)
    review["request"]["object"]["metadata"]["annotations"] = {}
    text = json.dumps(review).encode()
    return text.replace(b'"annotations": {}', b'"extra": ' + inner)


def test_nesting_is_bounded_before_parsing():
    assert parse_review(nested(MAX_DEPTH - 10)).request.uid
    assert "nested more than 100 levels" in str(refused(nested(MAX_DEPTH + 1)))
    assert "nested more than" in str(refused(nested(5000)))
    assert "nested more than" in str(refused(b"[" * 100_000))         # unbalanced, too
    assert "nested more than" in str(refused(b'{"a": ' * 3000))


def test_brackets_inside_strings_do_not_count():
    review = reviews.scale(before=1, after=2)
    review["request"]["object"]["metadata"]["annotations"] = {"note": "[{" * 500 + '\\"' + "]}" * 3}
    assert parse_review(json.dumps(review).encode()).request.uid


@pytest.mark.parametrize("literal, words", [
    (b"9" * 5000, "5000 digits"), (b"-" + b"1" * 70, "71 digits"), (b"1e309", "out of range"),
    (b"-1e400", "out of range"), (b"0." + b"1" * 100, "characters"), (b"NaN", "not a JSON value"),
    (b"Infinity", "not a JSON value"),
])
def test_number_literals_are_bounded_while_parsing(literal, words):
    body = json.dumps(reviews.scale(before=1, after=2)).encode().replace(b'"replicas": 2', b'"replicas": ' + literal)
    assert words in str(refused(body))


def deployment() -> dict:
    return reviews.memory_change("64Mi", "128Mi")


def container(body: dict) -> dict:
    return body["request"]["object"]["spec"]["template"]["spec"]["containers"][0]


def put(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


OBJ = "request.object"
TEMPLATE = f"{OBJ}.spec.template.spec"


@pytest.mark.parametrize("path, value, words", [
    (f"{OBJ}.spec", "x", "valid dictionary"),
    (f"{OBJ}.metadata.annotations", [1], "valid dictionary"),
    (f"{OBJ}.metadata.labels", {"app": 1}, "valid string"),
    (f"{TEMPLATE}.containers.0.resources", 1.5, "valid dictionary"),
    (f"{TEMPLATE}.containers.0.resources.limits", "64Mi", "valid dictionary"),
    (f"{TEMPLATE}.containers.0.resources.limits.memory", [1], "memory"),
    (f"{TEMPLATE}.containers.0.resources.limits.memory", "1e309", "out of range"),
    (f"{TEMPLATE}.containers.0.resources.limits.memory", "lots", "not a Kubernetes quantity"),
    (f"{TEMPLATE}.containers.0.image", "cart\x00:1", "NUL"),
    (f"{TEMPLATE}.containers.0.name", 7, "valid string"),
    (f"{TEMPLATE}.containers", {"name": "app"}, "valid list"),
    (f"{TEMPLATE}.containers.0", "app", "valid dictionary"),
    (f"{OBJ}.spec.replicas", 2**31, "less than or equal to 2147483647"),
    (f"{OBJ}.spec.replicas", -1, "greater than or equal to 0"),
    (f"{OBJ}.spec.replicas", "3", "valid integer"),
    (f"{OBJ}.spec.template", [], "valid dictionary"),
    ("request.name", "cart\x00", "NUL"),
    ("request.namespace", 5, "valid string"),
    ("request.userInfo.username", "system:serviceaccount:a:b\x00", "NUL"),
    ("request.userInfo.groups", ["a", 1], "valid string"),
    ("request.name", "cart\ud800", "unable to parse raw data as a unicode string"),
    ("request.name", "c" * 254, "at most 253 characters"),
    ("request.userInfo.username", "u" * 513, "at most 512 characters"),
    (f"{TEMPLATE}.containers.0.name", "\udfff", "unicode string"),
])
def test_every_field_the_gate_reads_is_type_checked(path, value, words):
    error = refused(put(deployment(), path, value))
    field = path.replace("request.object", "request.object") if "." in path else path
    assert error.field is not None and error.field.startswith(field.rsplit(".", 1)[0]), (error.field, path)
    assert words in str(error) and error.field in str(error)


@pytest.mark.parametrize("build, path, value", [
    (lambda: reviews.scale(before=1, after=2), f"{OBJ}.spec.replicas", True),
    (lambda: reviews.scale(before=1, after=2), "request.oldObject.spec.replicas", 2**40),
    (lambda: reviews.scale(before=1, after=2), f"{OBJ}.spec", 3),
    (lambda: reviews.pipelinerun(), f"{OBJ}.spec.params", {"name": "x"}),
    (lambda: reviews.pipelinerun(), f"{OBJ}.spec.params.0.name", None),
    (lambda: reviews.pipelinerun(), f"{OBJ}.spec.pipelineRef", "kubernaut-action"),
    (lambda: reviews.pipelinerun(), f"{OBJ}.metadata.labels", ["a"]),
])
def test_scale_and_pipelinerun_fields_are_type_checked(build, path, value):
    error = refused(put(build(), path, value))
    assert error.field is not None and error.field.startswith(path.rsplit(".", 1)[0])


def test_free_text_keeps_what_kubernetes_accepts():
    """Annotation values may hold any string: not refused (the API server accepts them), and the
    NUL bytes are stripped where the gate reads them (DESIGN §2 context)."""
    body = deployment()
    body["request"]["object"]["metadata"]["annotations"] = {reviews.PREFIX + "alert-name": "Oom\x00Kill"}
    assert parse_review(json.dumps(body).encode()).request.object["metadata"]["annotations"]


def test_fields_the_gate_does_not_read_are_not_checked():
    body = deployment()
    body["request"]["object"]["spec"]["strategy"] = [1, {"x": None}]
    body["request"]["object"]["status"] = "anything"
    container(body)["ports"] = "nonsense"
    assert parse_review(json.dumps(body).encode())
    other = reviews.review({"kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "resource": {"group": "", "version": "v1", "resource": "pods"},
                            "operation": "UPDATE", "object": {"spec": "x"}})
    assert parse_review(json.dumps(other).encode())   # not a kind the gate reads an object of


def test_containers_per_template_are_bounded():
    body = deployment()
    template = body["request"]["object"]["spec"]["template"]["spec"]
    template["containers"] = [dict(container(body), name=f"c{i}") for i in range(objects.MAX_CONTAINERS)]
    assert parse_review(json.dumps(body).encode())
    template["initContainers"] = [dict(container(body), name="init")]
    error = refused(body)
    assert f"at most {objects.MAX_CONTAINERS}" in str(error) and error.field == f"{TEMPLATE}"


def test_free_text_context_is_stored_in_a_form_postgresql_accepts():
    import datetime

    from webhook.admission.extract import MAX_TEXT, extract

    body = reviews.pipelinerun(alert="Oom\x00Kill\ud800" + "x" * 400, action_type="restart\x00pod",
                               target="shop/Deployment/" + "n" * 300)
    request = parse_review(json.dumps(body).encode()).request
    event = extract(request, now=datetime.datetime.now(datetime.timezone.utc)).event
    assert event.alert_name.startswith("OomKill?") and len(event.alert_name) == MAX_TEXT
    assert event.action_type == "restartpod"
    assert event.target is None          # no Kubernetes object has a 300-character name
    assert event.alert_name.encode("utf-8")
