"""The platform's answer to `provision_customer` is read without ever raising: whatever a
platform's worker returns, the checkout workflow's task never fails on decoding it."""

from __future__ import annotations

import pytest

from activities.provisioning_hook import result_problem
from workflows.contracts.provisioning_hook import ProvisionCustomerResult


def test_a_well_formed_answer_is_kept() -> None:
    result = ProvisionCustomerResult.from_answer(
        {"tenant_id": "tn_1", "dashboard_url": "https://platform.test/t/1", "extra": [1]}
    )
    assert result == ProvisionCustomerResult(
        tenant_id="tn_1", dashboard_url="https://platform.test/t/1"
    )
    assert result_problem(result.tenant_id, result.dashboard_url) is None


@pytest.mark.parametrize(
    "answer",
    [None, "ok", 42, ["tn_1"], {}, {"tenant_id": 7}, {"tenant_id": None}, {"tenant": "tn_1"}],
)
def test_a_malformed_answer_becomes_a_refused_one(answer: object) -> None:
    result = ProvisionCustomerResult.from_answer(answer)
    assert result.tenant_id == ""
    # Refused by the recording step: the provisioning fails and is undone.
    assert result_problem(result.tenant_id, result.dashboard_url) is not None


def test_a_dashboard_url_of_the_wrong_type_is_dropped() -> None:
    result = ProvisionCustomerResult.from_answer({"tenant_id": "tn_1", "dashboard_url": 5})
    assert result == ProvisionCustomerResult(tenant_id="tn_1", dashboard_url=None)
