"""The OpenAPI contract (services/frontdoor/openapi.py): generated from the route table and
the models, up to date in the file the doors serve, and served with its reference page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from services.agents.registry import agents
from services.frontdoor import openapi, public
from services.frontdoor.routes import ROUTES, RouteSpec
from services.tools import registry

ROOT = Path(__file__).resolve().parents[2]
DOC = openapi.build()


def test_the_served_file_is_what_the_code_describes() -> None:
    assert openapi.main(["--check"]) == 0, "run `make openapi` and commit openapi.json"
    assert json.loads(openapi.OPENAPI_JSON.read_text()) == DOC


def test_the_check_catches_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text(openapi.render().replace('"Start a run"', '"Start a walk"'))
    monkeypatch.setattr(openapi, "OPENAPI_JSON", stale)
    assert openapi.main(["--check"]) == 1


def test_it_is_a_valid_openapi_3_1_document() -> None:
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_of_the_table_is_described(route: RouteSpec) -> None:
    operation = DOC["paths"][route.path][route.method.lower()]
    assert operation["summary"] == route.summary
    in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
    assert in_path == set(route.params)
    statuses = set(operation["responses"])
    assert statuses & {"200", "307"}
    assert "500" in statuses
    if route.public:
        assert operation["security"] == [] and "401" not in statuses
    elif route.admin:
        assert operation["security"] == [{"AdminKey": []}] and {"401", "403"} <= statuses
    else:
        assert {"ApiKey": []} in operation["security"] and "401" in statuses
    if route.streams:
        assert "text/event-stream" in operation["responses"]["200"]["content"]
    if route.params:
        assert "404" in statuses


def test_there_is_no_operation_the_table_does_not_have() -> None:
    table = {(r.method.lower(), r.path) for r in ROUTES}
    tools = {("post", f"/v1/tools/{name}") for name in registry.tools()}
    described = {(m, p) for p, item in DOC["paths"].items() for m in item}
    assert described == table | tools


def test_errors_have_the_envelope_of_their_route() -> None:
    for path, item in DOC["paths"].items():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if int(status) < 400:
                    continue
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                expected = "AnthropicError" if path == "/v1/messages" else "Error"
                assert ref.endswith(f"/{expected}"), (path, status)
    error = DOC["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"message", "type", "param", "code"}


def test_each_tool_has_its_own_input_and_output() -> None:
    schemas = DOC["components"]["schemas"]
    for name, tool in registry.tools().items():
        body = DOC["paths"][f"/v1/tools/{name}"]["post"]["requestBody"]["content"]
        call = schemas[body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
        assert call["properties"]["input"]["$ref"].endswith(f"/{tool.Input.__name__}")
        assert ("model" in call["properties"]) is tool.uses_model
        assert call["additionalProperties"] is False


def test_a_run_names_every_agent_with_its_input() -> None:
    schemas = DOC["components"]["schemas"]
    mapping = schemas["AgentRun"]["properties"]["input"]["discriminator"]["mapping"]
    assert set(mapping) == set(agents())
    for name, agent in agents().items():
        run = schemas[f"AgentRun_{name}"]["properties"]
        assert run["input"]["$ref"].endswith(f"/{agent.Input.__name__}")
        assert run["max_steps"]["anyOf"][0]["maximum"] == agent.max_steps


def test_what_the_code_refuses_after_the_model_is_in_the_contract() -> None:
    chat = DOC["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert chat["n"]["enum"] == [1, None] and chat["logprobs"]["enum"] == [False, None]
    assert DOC["components"]["schemas"]["MessagesRequest"]["properties"]["top_k"]["type"] == "null"


# -- what the doors serve (services/frontdoor/public.py) -----------------------------------------


def test_the_doors_serve_the_file_the_generator_wrote() -> None:
    served = public.answer("/v1/openapi.json")
    assert served is not None and json.loads(served.body) == DOC


def test_the_reference_page_loads_nothing_from_elsewhere() -> None:
    page = public.answer("/docs")
    assert page is not None and page.content_type.startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for name in ("index.html", "reference.js"):
        text = (public.REFERENCE / name).read_text()
        assert not re.search(r"(https?:)?//", text.replace("// ", "")), name
    script = (public.REFERENCE / "reference.js").read_text()
    assert "validatorUrl: null" in script  # the default badge calls a public service
    for src in re.findall(r'(?:src|href)="docs/([^"?]+)', page.body):
        assert public.answer(f"/docs/{src}") is not None, src


@pytest.mark.parametrize("path", ["/docs/index.html", "/docs/../openapi.py", "/docs/", "/v1/x"])
def test_only_the_listed_files_are_served(path: str) -> None:
    assert public.answer(path) is None


def test_the_vendored_swagger_ui_is_the_pinned_version() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["swagger-ui-dist"]
    bundle = (public.REFERENCE / "swagger-ui-bundle.js").read_text()
    assert f'PACKAGE_VERSION:"{pinned}"' in bundle
    assert f"?v={pinned}" in (public.REFERENCE / "index.html").read_text()
    assert (public.REFERENCE / "LICENSE").is_file() and (public.REFERENCE / "NOTICE").is_file()
