"""An assistant's free text from an admin (description, prompt, model, canned answer) is refused
(422) when it holds lone surrogates, which no database can store: it was a 500."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.conftest import Gateway, assert_error, make_token, open_caller

FIELDS = ["description", "system_prompt", "model", "fallback_answer"]


def spec_with(field: str, raw: str) -> str:
    """The create body as JSON text, `field` holding `raw` as it is (an unpaired escape)."""
    spec = {
        "id": f"text-{secrets.token_hex(3)}", "name": "Text", "provider": "double",
        "model": "double-text", "max_context_tokens": 4000, "max_answer_tokens": 100,
        field: "PLACEHOLDER",
    }  # fmt: skip
    return json.dumps(spec).replace('"PLACEHOLDER"', raw)


@pytest.mark.parametrize("field", FIELDS)
async def test_lone_surrogates_in_an_assistants_text_are_refused(
    gateway: Gateway, field: str
) -> None:
    headers = {"Content-Type": "application/json"}
    async with open_caller(gateway.url, "root", token=make_token("root", admin=True)) as admin:
        before = (await admin.http.get("/v1/admin/assistants")).json()
        body = spec_with(field, '"x\\ud800"')
        created = await admin.http.post("/v1/admin/assistants", content=body, headers=headers)
        assert_error(created, 422, "validation_error")
        if field != "model":  # an update's model has a length, which refused it already
            changed = await admin.http.patch(
                "/v1/admin/assistants/echo", content=f'{{"{field}": "\\udfff"}}', headers=headers
            )
            assert_error(changed, 422, "validation_error")
        assert (await admin.http.get("/v1/admin/assistants")).json() == before
        paired = spec_with(field, '"smile \\ud83d\\ude00"')
        created = await admin.http.post("/v1/admin/assistants", content=paired, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()[field] == "smile \U0001f600"
