"""Interactive documentation at /docs: Swagger UI over /openapi.json, served entirely by this
service (the files come from the pinned flask-swagger-ui package), so it works with no internet.

Not part of the OpenAPI document: it is a page for people, not an API.
"""

from importlib.metadata import version
from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory, url_for
from markupsafe import escape
from werkzeug.exceptions import NotFound

SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).parent / "dist"
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})

blp = Blueprint("docs", __name__)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dataservice API</title>
  <meta name="swagger-ui-version" content="{version}">
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec}"></div>
  <script src="{bundle}"></script>
  <script src="{init}"></script>
</body>
</html>
"""

# A file of its own rather than an inline script, so a strict Content-Security-Policy can apply.
# validatorUrl null: Swagger UI would otherwise send the spec to an outside validator.
_INIT = """window.onload = function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.dataset.specUrl,
    domNode: node,
    deepLinking: true,
    validatorUrl: null
  });
};
"""


@blp.route("/docs", methods=["GET"])
def page():
    html = _PAGE.format(
        version=escape(version("flask-swagger-ui")),
        css=url_for("docs.asset", name="swagger-ui.css"),
        icon=url_for("docs.asset", name="favicon-32x32.png"),
        spec=url_for("api-docs.openapi_json"),
        bundle=url_for("docs.asset", name="swagger-ui-bundle.js"),
        init=url_for("docs.init_script"),
    )
    return Response(html, mimetype="text/html")


@blp.route("/docs/init.js", methods=["GET"])
def init_script():
    return Response(_INIT, mimetype="text/javascript")


@blp.route("/docs/assets/<name>", methods=["GET"])
def asset(name):
    if name not in ASSETS:
        raise NotFound()
    return send_from_directory(SWAGGER_UI_DIR, name, max_age=86400)
