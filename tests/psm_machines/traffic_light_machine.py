"""The traffic light of python-statemachine's README: one event cycles through three states."""

from statemachine import State, StateMachine


class TrafficLightMachine(StateMachine):
    "A traffic light machine"

    green = State(initial=True)
    yellow = State()
    red = State()

    cycle = green.to(yellow) | yellow.to(red) | red.to(green)

    def before_cycle(self, event: str = "") -> str:
        return f"Running {event} from {self.configuration}"

    def on_enter_red(self) -> None:
        print("Don't move.")

    def on_exit_red(self) -> None:
        print("Go ahead!")
