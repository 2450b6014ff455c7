"""The campaign example with validators: producing needs a valid brief."""

from statemachine import State, StateMachine


class CampaignValidatorsMachine(StateMachine):
    "A workflow machine whose steps are validated"

    draft = State(initial=True)
    producing = State()
    closed = State(final=True)

    add_job = draft.to.itself() | producing.to.itself()
    produce = draft.to(producing, validators="is_valid_brief")
    deliver = producing.to(closed, validators=["is_paid", "is_approved"])

    def is_valid_brief(self, brief: str = "") -> None:
        if not brief:
            raise ValueError("a brief is needed")

    def is_paid(self) -> None: ...

    def is_approved(self) -> None: ...
