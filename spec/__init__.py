"""railguard.spec — the workflow spec language: model, expressions, loaders, schema, diagrams."""

from .builder import SpecBuilder
from .dump import content_hash, dump_data, dumps
from .errors import (
    EvaluationError,
    ExpressionError,
    LoadError,
    Location,
    Problem,
    RailguardError,
    SpecError,
)
from .evaluate import compile_expression, evaluate
from .expr import parse as parse_expression
from .expr import unparse as unparse_expression
from .loader import load, load_data, loads
from .model import (
    Expression,
    Invariant,
    Parameter,
    Role,
    Spec,
    State,
    Timeout,
    Transition,
    Variable,
    Waiver,
)
from .schema import json_schema
from .types import Type

__all__ = [
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "Invariant",
    "LoadError",
    "Location",
    "Parameter",
    "Problem",
    "RailguardError",
    "Role",
    "Spec",
    "SpecBuilder",
    "SpecError",
    "State",
    "Timeout",
    "Transition",
    "Type",
    "Variable",
    "Waiver",
    "compile_expression",
    "content_hash",
    "dump_data",
    "dumps",
    "evaluate",
    "json_schema",
    "load",
    "load_data",
    "loads",
    "parse_expression",
    "unparse_expression",
]
