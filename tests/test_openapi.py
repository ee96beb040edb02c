"""The API description: a valid OpenAPI document covering every route, every error a problem, real
responses that match it, docs that work offline, and a generated client that works."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from .support import TOKEN, new_user

METHODS = {"get", "put", "post", "patch", "delete"}
NOT_IN_SPEC = {"api-docs.openapi_json", "docs.page", "docs.init_script", "docs.asset"}


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, item, operation


def response_doc(spec, response):
    """A response object, following a $ref to components/responses."""
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def test_the_document_is_valid_openapi(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")


def test_every_route_is_in_the_document_with_its_methods(app, spec):
    documented = {
        (path, method.upper()) for path, method, _, _ in operations(spec)
    }  # e.g. ("/api/v1/users/{user_id}", "GET")
    expected = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_IN_SPEC:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        expected |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert expected
    assert expected == documented


def test_operation_ids_are_unique_names(spec):
    ids = [operation["operationId"] for _, _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids))
    assert "create_user" in ids and "get_user" in ids


def test_every_error_a_client_can_get_is_documented_as_a_problem(spec):
    assert "Error" not in spec["components"]["schemas"]  # flask-smorest's own error shape
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, method, item, operation in operations(spec):
        where = f"{method.upper()} {path}"
        codes = set(operation["responses"])
        assert {"default", "500"} <= codes, where
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= codes, where
        has_path_parameters = any(p["in"] == "path" for p in item.get("parameters", []))
        assert has_path_parameters == ("{" in path), where
        if has_path_parameters:
            assert "404" in codes, where
        if path not in ("/health", "/metrics"):
            assert "503" in codes, where
            assert "Retry-After" in response_doc(spec, operation["responses"]["503"])["headers"]
        for code, response in operation["responses"].items():
            if code == "default" or int(code) >= 400:
                content = response_doc(spec, response)["content"]
                assert content == {"application/problem+json": {"schema": problem_ref}}, where


def test_a_new_endpoint_gets_its_problem_responses_without_declaring_them():
    from marshmallow import Schema, fields

    from dataservice.api.parsing import Blueprint
    from dataservice.app import create_app
    from dataservice.openapi import ServiceApi, touches_no_database

    class Note(Schema):
        text = fields.String(required=True)

    blp = Blueprint("notes", __name__, url_prefix="/notes")

    @blp.route("/<int:note_id>", methods=["PUT"])
    @blp.arguments(Note)
    @blp.response(200, Note)
    def put_note(data, note_id):
        return data

    @blp.route("/count", methods=["GET"])
    @touches_no_database
    @blp.response(200, Note)
    def count_notes():
        return {"text": "0"}

    app = create_app({"DATABASE_URL": "postgresql://unused@127.0.0.1/unused"})
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    assert isinstance(api, ServiceApi)
    api.register_blueprint(blp)
    paths = api.spec.to_dict()["paths"]
    put = paths["/notes/{note_id}"]["put"]
    assert put["operationId"] == "put_note"
    assert set(put["responses"]) == {
        "200", "400", "404", "412", "413", "415", "422", "500", "503", "default"
    }  # fmt: skip
    assert [p["name"] for p in put["parameters"] if p["in"] == "header"] == ["If-Match"]
    assert set(paths["/notes/count"]["get"]["responses"]) == {"200", "500", "default"}
    assert "x-touches-no-database" not in paths["/notes/count"]["get"]


def schema_validator(spec, ref):
    # The components ride along so that the schema's $refs resolve within it.
    return OAS30Validator({"$ref": ref, "components": spec["components"]})


def test_real_responses_match_the_documented_schemas(client, spec):
    def check(response, path, method, status):
        documented = spec["paths"][path][method]["responses"][str(status)]
        content = response_doc(spec, documented)["content"]
        [(media_type, body_doc)] = content.items()
        assert response.status_code == status
        assert response.mimetype == media_type
        schema_validator(spec, body_doc["schema"]["$ref"]).validate(response.get_json())

    created = client.post("/api/v1/users", json=new_user())
    check(created, "/api/v1/users", "post", 201)
    check(client.post("/api/v1/users", json=new_user()), "/api/v1/users", "post", 409)
    check(client.post("/api/v1/users", json={"email": 1}), "/api/v1/users", "post", 422)
    malformed = client.post("/api/v1/users", data=b"{", content_type="application/json")
    check(malformed, "/api/v1/users", "post", 400)
    user_path = "/api/v1/users/{user_id}"
    check(client.get(f"/api/v1/users/{created.get_json()['id']}"), user_path, "get", 200)
    check(client.get("/api/v1/users/999999"), user_path, "get", 404)


def test_docs_work_with_no_internet(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"https?://", html), "the page names an outside URL"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 4 and all(url.startswith("/") for url in assets)
    fetched = {}
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        fetched[url] = response.get_data()
        response.close()
    scripts = b"".join(data for url, data in fetched.items() if url.endswith(".js")).decode()
    css = b"".join(data for url, data in fetched.items() if url.endswith(".css")).decode()
    assert "SwaggerUIBundle" in scripts
    # The stylesheet loads nothing from elsewhere (fonts, images, imports).
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", css)
    # The bundle holds URLs as text (namespaces, links in the UI) but fetches from no CDN; the one
    # outside call it makes by default, the validator badge, is turned off by our settings.
    assert not re.search(r"unpkg\.com|jsdelivr\.net|cdnjs|googleapis\.com|gstatic\.com", scripts)
    assert b"validatorUrl: null" in fetched[next(u for u in assets if u.endswith("init.js"))]
    assert client.get("/docs/assets/../../setup.cfg").status_code == 404


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory):
    """A Python client generated from the document by openapi-python-client (offline: it only
    reads the file), importable as `dataservice_client`."""
    from dataservice.app import create_app

    app = create_app({"DATABASE_URL": "postgresql://unused@127.0.0.1/unused"})
    out = tmp_path_factory.mktemp("generated")
    (out / "openapi.json").write_bytes(app.test_client().get("/openapi.json").get_data())
    (out / "config.yaml").write_text("post_hooks: []\n")  # skip formatting: saves time
    result = subprocess.run(
        [
            Path(sys.executable).parent / "openapi-python-client",
            "generate",
            "--path",
            out / "openapi.json",
            "--config",
            out / "config.yaml",
            "--meta",
            "none",
            "--output-path",
            out / "dataservice_client",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        import dataservice_client

        yield dataservice_client
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.split(".")[0] == "dataservice_client"]:
            del sys.modules[name]


def test_a_generated_client_creates_and_fetches_a_user(generated_client, app, serve):
    from dataservice_client.api.users import create_user, get_user, get_user_by_username
    from dataservice_client.models import Problem, UserCreate, UserOut

    api = generated_client.AuthenticatedClient(
        base_url=serve(app), token=TOKEN, raise_on_unexpected_status=True
    )
    body = UserCreate(email="gen@example.com", username="generated", password="long enough")
    created = create_user.sync_detailed(client=api, body=body)
    assert created.status_code == 201
    assert isinstance(created.parsed, UserOut) and created.parsed.username == "generated"
    assert created.headers["Location"].endswith(f"/api/v1/users/{created.parsed.id}")

    fetched = get_user.sync(client=api, user_id=created.parsed.id)
    assert fetched == created.parsed
    by_name = get_user_by_username.sync(client=api, username="GENERATED")
    assert by_name.id == created.parsed.id

    missing = get_user.sync_detailed(client=api, user_id=created.parsed.id + 1)
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
    assert missing.parsed.type_ == "urn:dataservice:problem:not-found"
    assert missing.parsed.request_id == missing.headers["X-Request-ID"]
    taken = create_user.sync_detailed(client=api, body=body)
    assert taken.status_code == 409
    assert taken.parsed.errors.additional_properties == {
        "email": ["Already taken (case-insensitive)."]
    }


def test_conditional_requests_are_documented_where_they_are_honoured(spec):
    for path, method, _, operation in operations(spec):
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        ok = operation["responses"].get("200", {})
        if method == "get" and "ETag" in ok.get("headers", {}):
            assert "304" in operation["responses"] and headers == ["If-None-Match"], path
        elif method in ("put", "patch", "delete") and "{" in path:
            assert "412" in operation["responses"] and headers == ["If-Match"], path
        else:
            assert not {"304", "412"} & set(operation["responses"]), (method, path)
    user = spec["paths"]["/api/v1/users/{user_id}"]
    assert "304" in user["get"]["responses"] and "412" in user["delete"]["responses"]


REQUEST_LINE_LIMIT = 4094  # gunicorn.conf.py's limit_request_line


def free_text_parameters(spec):
    """(operation path, parameter) of every string parameter in the query or path that is not
    an enum or a format (a date-time): text a client chooses."""
    for path, method, item, operation in operations(spec):
        for parameter in item.get("parameters", []) + operation.get("parameters", []):
            schema = parameter.get("schema", {})
            text = schema.get("type") == "string" and not {"enum", "format"} & set(schema)
            if text and parameter["in"] in ("query", "path"):
                yield path, method, parameter


def test_every_free_text_parameter_has_a_max_length_within_the_request_line(spec):
    names = set()
    for path, method, parameter in free_text_parameters(spec):
        max_length = parameter["schema"].get("maxLength")
        assert max_length, (method, path, parameter["name"])
        # The longest value, percent-encoded at worst, fits a request line with the path: a
        # client at the limit gets this service's answer, not a 414. A character is at most 12
        # bytes (4 of UTF-8), or 3 where the pattern admits only listed ASCII characters.
        pattern = parameter["schema"].get("pattern", "[^")
        worst = (12 if "[^" in pattern else 3) * max_length
        assert len(path) + len(parameter["name"]) + worst < REQUEST_LINE_LIMIT - 100, path
        names.add(parameter["name"])
    assert {"cursor", "after", "slug_prefix", "username", "email", "slug", "types"} <= names


def test_the_server_refuses_a_free_text_parameter_past_its_max_length(client, spec):
    for path, method, parameter in free_text_parameters(spec):
        too_long = "a" * (parameter["schema"]["maxLength"] + 1)
        if parameter["in"] == "path":
            url = path.replace("{" + parameter["name"] + "}", too_long)
            url = re.sub(r"\{[^}]+\}", "1", url)
        else:
            url = re.sub(r"\{[^}]+\}", "1", path) + f"?{parameter['name']}={too_long}"
        response = client.open(url, method=method.upper())
        assert response.status_code in (400, 404, 422), (url[:80], response.status_code)
        assert response.mimetype == "application/problem+json"
