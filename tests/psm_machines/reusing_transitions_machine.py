"""Reusing transitions: one transition list bound to two events."""

from statemachine import State, StateMachine


class TrafficLightIsolatedTransitions(StateMachine):
    "A traffic light whose transitions are shared by two events"

    green = State(initial=True)
    yellow = State()
    red = State()
    off = State(final=True)

    slowdown = green.to(yellow)
    stop = yellow.to(red)
    go = red.to(green)
    cycle = slowdown | stop | go
    shutdown = green.to(off) | yellow.to(off) | red.to(off)
