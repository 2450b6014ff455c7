"""A compound statechart after the library's statechart tutorial: a journey through nested states."""

from statemachine import State, StateChart


class QuestStatechart(StateChart):
    "A quest with nested stages"

    class shire(State.Compound):
        bag_end = State(initial=True)
        green_dragon = State()

        visit_pub = bag_end.to(green_dragon)

    class road(State.Compound):
        trollshaws = State(initial=True)
        rivendell = State()

        rest = trollshaws.to(rivendell)

    mordor = State(final=True)

    depart = shire.to(road)
    go_home = road.to(shire)
    destroy_ring = road.to(mordor, cond="has_ring")

    def has_ring(self) -> bool:
        return True
