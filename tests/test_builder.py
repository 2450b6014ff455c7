"""The Python builder makes the same specs as YAML, with the same errors."""

from __future__ import annotations

import pytest

from railguard.spec import LoadError, SpecBuilder, load

from .conftest import EXAMPLES


def order_builder() -> SpecBuilder:
    b = SpecBuilder("order", "Reserve stock, charge the card, ship; undo what was done if anything fails.")
    b.role("customer", "order.place", "order.cancel")
    b.role("system", "order.reserve", "order.charge", "order.ship")
    b.variable("total", "int", min=0, max=100000, initial=0)
    b.state("new", initial=True).state("placed").state("reserved").state("charged")
    b.state("shipped", terminal="success").state("failed", terminal="failure")
    b.state("cancelled", terminal="failure")
    b.on_error("failed")
    b.transition(
        "place", "new", "placed", permission="order.place",
        params={"total": {"type": "int", "min": 1, "max": 100000}},
        assign={"total": "params.total"},
    )
    b.transition("reserve", "placed", "reserved", permission="order.reserve", effect="inventory.reserve", compensate="inventory.release")
    b.transition("charge", "reserved", "charged", permission="order.charge", guard="total > 0", effect="payments.charge", compensate="payments.refund")
    b.transition("ship", "charged", "shipped", permission="order.ship", effect="shipping.dispatch", irreversible=True)
    b.transition("cancel", ["placed", "reserved", "charged"], "cancelled", permission="order.cancel")
    b.precedes("charge-after-reserve", "reserve", "charge")
    b.always("placed-orders-have-a-total", 'implies(state in ["placed", "reserved", "charged", "shipped"], total >= 1)')
    return b


def test_the_builder_reproduces_the_order_example_exactly() -> None:
    built = order_builder().build()
    assert built == load(EXAMPLES / "order.yaml")
    assert built.content_hash == load(EXAMPLES / "order.yaml").content_hash


def test_builder_errors_are_load_errors_naming_the_part() -> None:
    b = order_builder()
    b.transition("refund", "shipped", "nowhere", permission="order.cancel")
    with pytest.raises(LoadError) as caught:
        b.build()
    (problem,) = caught.value.problems
    assert problem.location.file == "<builder>"
    assert problem.message.startswith("transition 6 (`refund`): `to` names unknown state `nowhere`")


def test_the_builder_does_not_share_state_with_the_spec_it_built() -> None:
    b = order_builder()
    first = b.build()
    b.state("extra")
    assert "extra" not in first.state_map
    assert "extra" in b.to_dict()["states"]
