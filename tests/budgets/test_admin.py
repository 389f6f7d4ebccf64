"""`/v1/admin/budgets`: admins only; a budget set, read, listed and removed, each change in the
audit trail; bad input refused with a code, never stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.budgets.conftest import BudgetGateway, client, new_user, set_budget
from tests.conftest import assert_error, make_token


async def test_only_admins_see_or_set_budgets(budget_gateway: BudgetGateway) -> None:
    async with client(budget_gateway.url, make_token(new_user())) as user:
        listed = await user.get("/v1/admin/budgets")
        put = await user.put("/v1/admin/budgets/user/x", json={"period": "day", "max_tokens": 9})
        got = await user.get("/v1/admin/budgets/user/x")
        removed = await user.delete("/v1/admin/budgets/user/x")
    for response in (listed, put, got, removed):
        assert_error(response, 403, "admin_required")
    async with httpx.AsyncClient(base_url=budget_gateway.url) as anonymous:
        assert (await anonymous.get("/v1/admin/budgets")).status_code == 401


async def test_a_budget_is_set_read_listed_and_removed(admin: httpx.AsyncClient) -> None:
    subject = new_user()
    made = await set_budget(admin, "user", subject, period="month", max_tokens=5000)
    first_of_next = (datetime.now(UTC).replace(day=28) + timedelta(days=4)).replace(day=1)
    assert made == {
        "scope": "user", "id": subject, "period": "month", "max_tokens": 5000, "max_cost": None,
        "spent_tokens": 0, "spent_cost": 0.0, "reserved_tokens": 0,
        "resets_at": first_of_next.strftime("%Y-%m-%dT00:00:00Z"),
    }  # fmt: skip
    changed = await set_budget(admin, "user", subject, period="day", max_cost=1.5)
    assert (changed["period"], changed["max_tokens"], changed["max_cost"]) == ("day", None, 1.5)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert changed["resets_at"] == f"{tomorrow.isoformat()}T00:00:00Z"
    got = await admin.get(f"/v1/admin/budgets/user/{subject}")
    assert got.status_code == 200 and got.json() == changed
    listed = (await admin.get("/v1/admin/budgets")).json()["data"]
    assert [b for b in listed if b["id"] == subject] == [changed]

    removed = await admin.delete(f"/v1/admin/budgets/user/{subject}")
    assert removed.status_code == 204 and removed.content == b""
    assert_error(await admin.get(f"/v1/admin/budgets/user/{subject}"), 404, "budget_not_found")
    assert_error(await admin.delete(f"/v1/admin/budgets/user/{subject}"), 404, "budget_not_found")
    assert subject not in [b["id"] for b in (await admin.get("/v1/admin/budgets")).json()["data"]]

    audit = await admin.get("/v1/admin/audit", params={"action": "budget.set"})
    mine = [e for e in audit.json()["data"] if e["target_id"] == subject]
    assert [e["details"]["period"] for e in mine] == ["day", "month"], mine  # newest first
    audit = await admin.get("/v1/admin/audit", params={"action": "budget.removed"})
    assert [e["target_type"] for e in audit.json()["data"] if e["target_id"] == subject] == [
        "budget.user"
    ]


async def test_a_key_budget_is_its_own(admin: httpx.AsyncClient) -> None:
    subject = new_user()
    await set_budget(admin, "key", subject, max_tokens=10)
    assert_error(await admin.get(f"/v1/admin/budgets/user/{subject}"), 404, "budget_not_found")
    assert (await admin.get(f"/v1/admin/budgets/key/{subject}")).json()["max_tokens"] == 10
    assert (await admin.delete(f"/v1/admin/budgets/key/{subject}")).status_code == 204


async def test_bad_budgets_are_refused_with_a_code(admin: httpx.AsyncClient) -> None:
    subject = new_user()
    bad = [
        ("user", {"period": "day"}),  # no maximum
        ("user", {"period": "week", "max_tokens": 10}),
        ("user", {"period": "day", "max_tokens": -1}),
        ("user", {"period": "day", "max_cost": -0.5}),
        ("user", {"period": "day", "max_tokens": 10**16}),
        ("user", {"period": "day", "max_tokens": "many"}),
        ("user", {"period": "day", "max_tokens": 10, "currency": "EUR"}),
        ("team", {"period": "day", "max_tokens": 10}),
    ]
    for scope, body in bad:
        response = await admin.put(f"/v1/admin/budgets/{scope}/{subject}", json=body)
        assert_error(response, 422, "validation_error")
    response = await admin.put(
        f"/v1/admin/budgets/user/{subject}", content=b'{"period": "day", "max_cost": NaN}',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code in (400, 422), response.text
    long_id = "u" * 256
    response = await admin.put(
        f"/v1/admin/budgets/user/{long_id}", json={"period": "day", "max_tokens": 1}
    )
    assert_error(response, 422, "validation_error")
    assert_error(await admin.get("/v1/admin/budgets/team/x"), 422, "validation_error")
    assert_error(await admin.get(f"/v1/admin/budgets/user/{subject}"), 404, "budget_not_found")
