"""The web console's files and how the front doors serve them (console/__init__.py)."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from console import PREFIX, SECURITY_HEADERS, STATIC, files, serve
from devstack.apigw import EmulatorSettings
from devstack.apigw import create_app as emulator
from lambdas.stream.app import create_app as stream_app
from lambdas.stream.settings import StreamSettings

TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def test_the_page_and_each_file_is_served_with_its_type_and_cache_headers() -> None:
    served = sorted(p.name for p in STATIC.iterdir())
    assert "index.html" in served and "app.js" in served and served == sorted(files())
    index = serve("/console/")
    assert index.status == 200 and index.body == (STATIC / "index.html").read_bytes()
    for name in served:
        answer = serve(f"{PREFIX}/{name}")
        assert answer.status == 200 and answer.body == (STATIC / name).read_bytes()
        assert answer.content_type.split(";")[0] == TYPES[Path(name).suffix], name
        assert answer.headers["cache-control"] == "no-cache"
        assert re.fullmatch(r'"[0-9a-f]{32}"', answer.headers["etag"])
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers[header] == value
        answer.body.decode()  # text: a Lambda proxy response carries it without base64


def test_an_unchanged_file_is_a_304_and_a_changed_one_is_sent() -> None:
    etag = serve("/console/app.js").headers["etag"]
    unchanged = serve("/console/app.js", if_none_match=f'"old", {etag}')
    assert unchanged.status == 304 and unchanged.body == b""
    assert unchanged.headers["etag"] == etag
    assert serve("/console/app.js", if_none_match='"old"').status == 200


def test_the_bare_prefix_redirects_relatively_so_a_stage_prefix_stays() -> None:
    answer = serve("/console")
    assert answer.status == 308 and answer.headers["location"] == "console/"
    assert urllib.parse.urljoin("https://x.example/api/console", "console/") == (
        "https://x.example/api/console/"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/console/../README.md",
        "/console/%2e%2e/README.md",
        "/console/..%2fREADME.md",
        "/console/../console/__init__.py",
        "/console/__init__.py",
        "/console/static/index.html",
        "/console/./index.html",
        "/console//index.html",
        "/console/index.html/",
        "/console/index.html\x00.js",
        "/console/..\\__init__.py",
        "/console/INDEX.HTML",
        "/console/" + "a" * 5000,
        "/consoleindex.html",
        "/v1/models",
    ],
)
def test_nothing_outside_the_console_files_is_served(path: str) -> None:
    answer = serve(path)
    assert answer.status == 404
    assert answer.content_type == "application/json"
    error = json.loads(answer.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "not_found_error"


def test_other_methods_are_405_with_allow() -> None:
    answer = serve("/console/", "POST")
    assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD"
    assert json.loads(answer.body)["error"]["code"] == "method_not_allowed"
    assert serve("/console/", "HEAD").status == 200


def test_every_module_the_page_imports_is_one_of_its_files() -> None:
    """No build step: each `import ... from "./x.js"` must name a file that is served."""
    names = set(files())
    html = (STATIC / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="([^"#:]+)"', html))
    for name in names:
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([^"]+)"', (STATIC / name).read_text()))
    assert wanted and wanted <= names, wanted - names


def test_nothing_is_fetched_from_another_origin() -> None:
    """No CDN, no fonts, no analytics: the only absolute URL is SVG's namespace name."""
    for name in files():
        text = (STATIC / name).read_text()
        found = set(re.findall(r"https?://[^\s\"'`)]+", text))
        found |= set(re.findall(r"[\"'(]//[A-Za-z0-9.-]+", text))  # protocol-relative
        found -= {"http://www.w3.org/2000/svg"}
        assert not found, (name, found)
    csp = SECURITY_HEADERS["content-security-policy"]
    assert (
        "connect-src 'self'" in csp and "script-src 'self'" in csp and "default-src 'self'" in csp
    )


def test_the_gateway_serves_the_console_behind_the_api_gateway_stage() -> None:
    # The gateway handler runs in the emulator's own execution environment (a process).
    settings = EmulatorSettings(
        integration_timeout_seconds=20,
        lambda_timeout_seconds=20,
        lambda_concurrency=1,
        stage="api",
        handler="lambdas.gateway.handler.handler",
    )
    with TestClient(emulator(settings)) as client:  # one loop for the pool's processes
        page = client.get("/api/console/", headers={"accept": "text/html"})
        assert page.status_code == 200 and page.text == (STATIC / "index.html").read_text()
        assert page.headers["content-type"].startswith("text/html")
        assert (
            page.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
        )
        script = client.get("/console/runs.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith(
            "text/javascript"
        )
        again = client.get("/console/runs.js", headers={"if-none-match": script.headers["etag"]})
        assert again.status_code == 304
        bare = client.get("/api/console", follow_redirects=False)
        assert bare.status_code == 308 and bare.headers["location"] == "console/"
        missing = client.get("/console/secrets.py")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_the_stream_door_serves_the_console() -> None:
    app = stream_app(StreamSettings(table="t", upstream_url="http://127.0.0.1:9"))
    with TestClient(app) as client:
        page = client.get("/console/")
        assert page.status_code == 200 and page.text == (STATIC / "index.html").read_text()
        assert page.headers["cache-control"] == "no-cache"
        bare = client.get("/console", follow_redirects=False)
        assert bare.status_code == 308 and bare.headers["location"] == "console/"
        assert client.get("/console/%2e%2e/README.md").status_code == 404
        assert client.head("/console/style.css").status_code == 200
