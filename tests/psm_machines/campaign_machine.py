"""The campaign example: a draft campaign goes into production and is delivered."""

from statemachine import State, StateMachine


class CampaignMachine(StateMachine):
    "A workflow machine"

    draft = State(initial=True)
    producing = State("Being produced")
    closed = State(final=True)

    add_job = draft.to(draft) | producing.to(producing)
    produce = draft.to(producing)
    deliver = producing.to(closed)
