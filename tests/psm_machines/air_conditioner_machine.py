"""The air conditioner example: a sensor reading decides the mode."""

from statemachine import State, StateMachine


class AirConditioner(StateMachine):
    "Air conditioner machine"

    sensor_off = State(initial=True)
    cooling = State()
    fan = State()

    sensor_updated = (
        sensor_off.to(cooling, cond="is_hot")
        | sensor_off.to(fan, cond="is_good and not is_hot")
        | cooling.to(fan, unless="is_hot")
        | fan.to(cooling, cond="is_hot")
        | cooling.to.itself(internal=True)
        | fan.to.itself(internal=True)
    )
    turn_off = cooling.to(sensor_off) | fan.to(sensor_off)

    def is_hot(self, temperature: float = 20.0) -> bool:
        return temperature > 25

    def is_good(self, temperature: float = 20.0) -> bool:
        return 18 <= temperature <= 25
