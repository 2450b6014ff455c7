"""The order control example: pay for an order in parts, then process and ship it."""

from statemachine import State, StateMachine


class OrderControl(StateMachine):
    "An order that is paid for, processed and shipped"

    waiting_for_payment = State(initial=True)
    processing = State()
    shipping = State()
    completed = State(final=True)

    add_to_order = waiting_for_payment.to(waiting_for_payment)
    receive_payment = waiting_for_payment.to(processing, cond="payments_enough") | waiting_for_payment.to(
        waiting_for_payment, unless="payments_enough"
    )
    process_order = processing.to(shipping, cond="payment_received")
    ship_order = shipping.to(completed)

    def __init__(self) -> None:
        self.order_total = 0
        self.payments: list[float] = []
        self.payment_received = False
        super().__init__()

    def payments_enough(self, amount: float) -> bool:
        return sum(self.payments) + amount >= self.order_total

    def before_add_to_order(self, amount: float) -> float:
        self.order_total += amount
        return self.order_total

    def before_receive_payment(self, amount: float) -> list[float]:
        self.payments.append(amount)
        return self.payments

    def after_receive_payment(self) -> None:
        self.payment_received = True

    def on_enter_waiting_for_payment(self) -> None:
        self.payment_received = False
