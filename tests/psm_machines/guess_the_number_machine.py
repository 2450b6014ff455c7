"""Guess the number: guesses that are too low or too high keep the game going."""

import random

from statemachine import State, StateMachine


class GuessTheNumberMachine(StateMachine):
    "Guess the number between 1 and 5 in three tries"

    start = State(initial=True)
    low = State()
    high = State()
    won = State(final=True)
    lose = State(final=True)

    guess = (
        lose.from_(low, high, cond="max_guesses_reached")
        | won.from_(low, high, start, cond="guess_is_equal")
        | low.from_(low, high, start, cond="guess_is_lower")
        | high.from_(low, high, start, cond="guess_is_greater")
    )

    def __init__(self, max_attempts: int = 3, lower: int = 1, higher: int = 5, seed: int = 42) -> None:
        self.max_attempts = max_attempts
        self.attempts = 0
        self.number = random.Random(seed).randint(lower, higher)
        super().__init__()

    def max_guesses_reached(self) -> bool:
        return self.attempts >= self.max_attempts

    def before_guess(self) -> None:
        self.attempts += 1

    def guess_is_lower(self, number: int) -> bool:
        return number < self.number

    def guess_is_greater(self, number: int) -> bool:
        return number > self.number

    def guess_is_equal(self, number: int) -> bool:
        return self.number == number
