"""The API under generated requests (schemathesis from the OpenAPI schema): never a server error (5xx).

Requests run with a head's token on a workspace built once for the module (three deals, two managers), and also
with a manager's token; every answer that is not a success must be a 4xx in the one error shape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.web.conftest import build_site
from voronka.service import accounts
from voronka.service.workspace import Workspace
from voronka.web.app import create_app

_DIR = Path(tempfile.mkdtemp(prefix="voronka-fuzz-"))
_WS = Workspace.connect(f"sqlite:///{_DIR / 'fuzz.db'}")
build_site(_WS)
_TOKENS = {"head": accounts.create_token(_WS, "head"), "anna": accounts.create_token(_WS, "anna")}
APP = create_app(_WS)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)

pytestmark = pytest.mark.slow


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("who", ["head", "anna"])
def test_no_server_errors(case: schemathesis.Case, who: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {_TOKENS[who]}"})
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["status"] == response.status_code and error["code"] and error["message"]
