"""The prover: BMC and Spacer queries over a :class:`~railguard.verifier.system.System`, with
honest outcomes.

Every question is "is there a reachable configuration (and step inputs) where ``bad`` holds?".

- :meth:`Prover.bmc` unrolls the transition relation from the initial states and finds short
  witnesses for many questions at once (a witness is a concrete run).
- :meth:`Prover.spacer` asks Z3's Spacer engine for the Horn clauses
  ``Inv ⇐ Init``, ``Inv' ⇐ Inv ∧ T``, ``false ⇐ Inv ∧ Bad``: *sat* means an inductive
  invariant exists and ``bad`` is unreachable — a proof, for finite and unbounded domains
  alike — and the invariant is returned; *unsat* means ``bad`` is reachable; anything else is
  *unknown*.

Solver work is bounded by Z3's deterministic resource limit (``rlimit``) per query,
optionally by wall-clock time per query, and by a wall-clock budget for the whole check
(:attr:`Budget.seconds`, shared by every check run inside :func:`~railguard.verifier.budget.overall`): once it is spent
no query starts and each one running is stopped, and the questions left end *unknown*,
never success.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Literal

import z3

from .budget import Budget, Deadline
from .system import Inputs, State, System

__all__ = ["Prover", "SpacerAnswer", "Witness"]

Bad = Callable[[State, Inputs], z3.BoolRef]


@dataclass(frozen=True)
class Witness:
    """A concrete run: states ``s0..sk`` and the inputs of each step; ``inputs[k]`` are the inputs
    of the final (violating) step for step properties."""

    model: z3.ModelRef
    states: list[State]
    inputs: list[Inputs]

    @property
    def depth(self) -> int:
        return len(self.states) - 1


@dataclass(frozen=True)
class SpacerAnswer:
    """``safe`` (with an inductive invariant), ``unsafe``, or ``unknown`` (with Z3's reason)."""

    status: Literal["safe", "unsafe", "unknown"]
    invariant: str | None = None
    reason: str = ""


class Prover:
    """Runs BMC and Spacer queries on one system under one budget."""

    def __init__(self, system: System, budget: Budget | None = None, deadline: Deadline | None = None) -> None:
        self.system = system
        self.budget = budget or Budget()
        # Without a deadline only an enclosing `overall` budget bounds the whole (the callers
        # that pass none, like the spec diff, bound their queries by `rlimit` alone).
        self.deadline = deadline or Deadline(None)
        self.queries = 0
        # Every formula is built once over these constants (``x --in--> y``) and renamed onto
        # each unrolled step with `z3.substitute`: building terms in Python costs far more
        # than the solver does on small specs.
        self.x, self.i, self.y = system.state("x"), system.inputs("in"), system.state("y")
        self._relation: z3.BoolRef | None = None
        self._initial: z3.BoolRef | None = None
        self._terms: dict[Bad, z3.BoolRef] = {}

    @property
    def relation(self) -> z3.BoolRef:
        """The transition relation from ``x`` with inputs ``i`` to ``y``."""
        if self._relation is None:
            self._relation = self.system.step(self.x, self.i, self.y)
        return self._relation

    @property
    def initial(self) -> z3.BoolRef:
        """The initial states, over ``x``."""
        if self._initial is None:
            self._initial = self.system.init(self.x)
        return self._initial

    def term(self, bad: Bad) -> z3.BoolRef:
        """``bad`` over ``x`` and ``i``, built once per goal."""
        made = self._terms.get(bad)
        if made is None:
            made = self._terms[bad] = bad(self.x, self.i)
        return made

    def _rename(self, term: z3.BoolRef, x: State, i: Inputs | None = None, y: State | None = None) -> z3.BoolRef:
        flat = self.system.flat
        pairs = list(zip(flat(self.x), flat(x), strict=True))
        if i is not None:
            pairs.extend(zip(flat(self.i), flat(i), strict=True))
        if y is not None:
            pairs.extend(zip(flat(self.y), flat(y), strict=True))
        return z3.substitute(term, *pairs)

    def bmc(
        self, goals: Mapping[Hashable, Bad], depth: int, start: int = 0
    ) -> tuple[dict[Hashable, Witness], set[Hashable]]:
        """Search runs of ``start``..``depth`` steps that make each goal's ``bad`` true.

        Returns the witnesses found and the goals whose search ran out of budget."""
        system = self.system
        self.deadline.check()
        solver = z3.Solver()
        states = [system.state("s0")]
        inputs = [system.inputs("i0")]
        solver.add(self._rename(self.initial, states[0]))
        found: dict[Hashable, Witness] = {}
        exhausted: set[Hashable] = set()
        pending = dict(goals)
        for d in range(depth + 1):
            if d >= start:
                terms = {key: self._rename(self.term(bad), states[d], inputs[d]) for key, bad in pending.items()}
                self._witnesses(solver, terms, states, inputs, found, exhausted)
                for key in terms:
                    if key in found or key in exhausted:
                        del pending[key]
            if not pending or d == depth:
                break
            states.append(system.state(f"s{d + 1}"))
            solver.add(self._rename(self.relation, states[d], inputs[d], states[d + 1]))
            inputs.append(system.inputs(f"i{d + 1}"))
        return found, exhausted

    def _witnesses(
        self,
        solver: z3.Solver,
        terms: dict[Hashable, z3.BoolRef],
        states: list[State],
        inputs: list[Inputs],
        found: dict[Hashable, Witness],
        exhausted: set[Hashable],
    ) -> None:
        """Find a witness at the current depth for each goal in ``terms`` that has one.

        One query asks for *any* open goal; its model serves every goal it satisfies, and the
        rest are asked again, so an unsatisfiable depth costs one query, not one per goal. If
        that query is unknown the goals are asked one by one, and those still unknown are
        ``exhausted``."""
        open_keys = list(terms)
        while open_keys:
            self._ask(solver)
            solver.push()
            solver.add(z3.Or([terms[k] for k in open_keys]))
            answer = solver.check()
            if answer == z3.unsat:
                solver.pop()
                return
            if answer == z3.sat:
                model = solver.model()
                solver.pop()
                hit = [k for k in open_keys if z3.is_true(model.eval(terms[k], model_completion=True))]
                if not hit:  # cannot happen for a model of the disjunction; ask one by one
                    break
                for key in hit:
                    found[key] = Witness(model, list(states), list(inputs))
                open_keys = [k for k in open_keys if k not in found]
                continue
            solver.pop()
            break
        for key in open_keys:
            self._ask(solver)
            solver.push()
            solver.add(terms[key])
            answer = solver.check()
            if answer == z3.sat:
                found[key] = Witness(solver.model(), list(states), list(inputs))
            elif answer == z3.unknown:
                exhausted.add(key)
            solver.pop()

    def _ask(self, solver: z3.Solver | z3.Fixedpoint) -> None:
        """Count a query and set its limits; raise :class:`OutOfTime` when none is left."""
        self.deadline.check()
        self.queries += 1
        self.budget.apply(solver, self.deadline)

    def spacer(self, *bads: Bad) -> SpacerAnswer:
        """Decide whether any of ``bads`` is reachable with Spacer (see the module docstring)."""
        system = self.system
        s = self.x
        xs, ins, ys = system.flat(s), system.flat(self.i), system.flat(self.y)
        sorts = [v.sort() for v in xs]
        inv = z3.Function("Inv", *sorts, z3.BoolSort())
        solver = z3.SolverFor("HORN")
        self._ask(solver)
        bad = z3.Or([self.term(b) for b in bads]) if len(bads) != 1 else self.term(bads[0])
        solver.add(z3.ForAll(xs, z3.Implies(self.initial, inv(*xs))))
        solver.add(z3.ForAll(xs + ins + ys, z3.Implies(z3.And(inv(*xs), self.relation), inv(*ys))))
        solver.add(z3.ForAll(xs + ins, z3.Implies(z3.And(inv(*xs), bad), z3.BoolVal(False))))
        try:
            answer = solver.check()
        except z3.Z3Exception as exc:
            return SpacerAnswer("unknown", reason=str(exc))
        if answer == z3.sat:
            return SpacerAnswer("safe", self._invariant(solver.model(), inv, s))
        if answer == z3.unsat:
            return SpacerAnswer("unsafe")
        return SpacerAnswer("unknown", reason=solver.reason_unknown())

    def _invariant(self, model: z3.ModelRef, inv: z3.FuncDeclRef, s: State) -> str | None:
        from .readable import readable

        interp = model[inv]
        if interp is None:
            return None
        body = interp.else_value() if isinstance(interp, z3.FuncInterp) else interp
        names = [z3.Const(key.replace("@state", "state"), s[key].sort()) for key in sorted(s)]
        try:
            formula = z3.simplify(z3.substitute_vars(body, *names))
        except z3.Z3Exception:
            return None
        return readable(self.system, formula)
