"""The all-actions example: every kind of callback on one transition."""

from statemachine import State, StateMachine


class AllActionsMachine(StateMachine):
    "A machine that calls every action"

    initial = State(initial=True)
    final = State(final=True)

    go = initial.to(final, validators=["validation_1"], cond=["condition_1"], unless="unless_1",
                    on="on_inline", before="before_inline", after="after_inline")

    def validation_1(self) -> bool:
        return True

    def condition_1(self) -> bool:
        return True

    def unless_1(self) -> bool:
        return False

    def on_inline(self) -> None: ...

    def before_inline(self) -> None: ...

    def after_inline(self) -> None: ...

    def on_enter_final(self) -> None: ...

    def on_exit_initial(self) -> None: ...
