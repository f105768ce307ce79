"""The route table: one row per public route, and every door serving what the table says."""

from __future__ import annotations

import pytest

from services.frontdoor import routes
from services.frontdoor.routes import ROUTES, Body, Owner, match


def test_each_method_and_path_is_declared_once() -> None:
    keys = [(r.method, r.path) for r in ROUTES]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_row_matches_its_own_path(route: routes.RouteSpec) -> None:
    concrete = route.path
    for name in route.params:
        concrete = concrete.replace("{" + name + "}", f"x_{name}")
    found = match(route.method, concrete)
    assert found.route == route
    assert found.params == {name: f"x_{name}" for name in route.params}
    assert route.method in found.allowed


def test_a_known_path_with_another_method_names_the_allowed_ones() -> None:
    found = match("PUT", "/v1/conversations/conv_1")
    assert found.route is None
    assert found.allowed == ("GET", "PATCH", "DELETE")
    assert routes.allowed_text(found.allowed) == "GET or PATCH or DELETE"


def test_literal_segments_win_over_parameters() -> None:
    uploads = match("POST", "/v1/documents/uploads").route
    assert uploads is not None and uploads.path == "/v1/documents/uploads"
    assert match("GET", "/v1/documents/doc_1").params == {"document_id": "doc_1"}


@pytest.mark.parametrize(
    "path", ["/v1/runs/a/b", "/v1/unknown", "/v1/runs/", "/v1//runs", "/v2/models", ""]
)
def test_unknown_paths_match_nothing(path: str) -> None:
    found = match("GET", path)
    assert found.route is None and found.allowed == ()


def test_the_control_plane_is_short_dynamodb_work() -> None:
    control = {(r.method, r.path) for r in routes.routes_of(Owner.CONTROL)}
    # Nothing that calls a model, a tool or the worker's run ownership is control plane.
    for method, path in control:
        assert not path.startswith(("/v1/chat", "/v1/messages", "/v1/embeddings", "/v1/tools"))
        assert (method, path) not in {("POST", "/v1/runs"), ("GET", "/v1/runs/{run_id}/events")}
    assert all(not r.streams and not r.sync for r in routes.routes_of(Owner.CONTROL))
    assert all(r.owner is Owner.CONTROL for r in ROUTES if r.admin)


def test_documents_take_the_document_body_limit() -> None:
    upload = match("POST", "/v1/documents").route
    assert upload is not None and upload.body is Body.DOCUMENT
