"""The type hints a schema is written in: ``Range`` bounds on numbers and their common aliases, and the markers for
nested components (``Component``), sections (``Section``), registered names (``Registered``), values a parser reads
(``Parsed``) and constraints between keys (``cross_check``). They are plain data; ``validation`` gives them meaning."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

_F = TypeVar("_F", bound=Callable)


@dataclass(frozen=True)
class Kind:
    """Marks a parameter as a nested slot of the given registry kind."""

    kind: str


@dataclass(frozen=True)
class NameOf:
    """Marks a string parameter as the name of a registered component of the given kind."""

    kind: str


@dataclass(frozen=True)
class Fields:
    """Marks a mapping parameter as a config section whose keys are the keyword-only parameters of ``schema``."""

    schema: Callable


@dataclass(frozen=True)
class Parsed:
    """Marks a value that ``parse`` reads (``Annotated[str | float, Parsed(parse_target)]`` takes ``600M``): the
    validator calls ``parse`` and reports its ``ValueError`` as the problem; the config keeps the value as written."""

    parse: Callable[[Any], Any]


@dataclass(frozen=True)
class Range:
    """The valid values of a number, checked before anything is built: ``Annotated[float, Range(gt=0)]``.

    ``ge``/``gt``/``le``/``lt`` are inclusive/exclusive bounds, ``why`` a reason the message gives. A float must
    also be finite: no parameter takes NaN or inf. ``Range()`` declares a number that any finite value suits.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    why: str = ""

    def __contains__(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low = f"[{self.ge}" if self.ge is not None else None if self.gt is None else f"({self.gt}"
        high = f"{self.le}]" if self.le is not None else None if self.lt is None else f"{self.lt})"
        if low and high:
            text = f"in {low}, {high}"
        elif low:
            text = f"{'at least' if self.ge is not None else 'greater than'} {low[1:]}"
        elif high:
            text = f"{'at most' if self.le is not None else 'less than'} {high[:-1]}"
        else:
            text = ""
        return f"{text} ({self.why})" if self.why else text


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]
Fraction = Annotated[float, Range(ge=0, lt=1)]
Seed = Annotated[int, Range(ge=0, lt=2**32, why="numpy's seed range")]
Timeout = Annotated[float, Range(gt=0, le=604_800, why="a week")]
TrainBatch = Annotated[int, Range(ge=2, why="BatchNorm trains on two images or more")]


def Section(schema: Callable) -> Any:  # noqa: N802 - reads as a type in signatures
    """Type hint for a mapping whose keys are ``schema``'s keyword-only parameters, e.g. ``model: Section(f)``."""
    return Annotated[dict, Fields(schema)]


def Registered(kind: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """Type hint for a string that must name a registered component, e.g. ``list[Registered("ops")]``."""
    return Annotated[str, NameOf(kind)]


def Component(kind: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """Type hint for a parameter that holds a nested component spec, e.g. ``kd: Component("losses")``."""
    return Annotated[dict, Kind(kind)]


def cross_check(check: Callable[[dict[str, Any]], Iterable[tuple[str, str]]]) -> Callable[[_F], _F]:
    """Attach to a factory or schema a constraint between its keys (``train + val <= 1``): once every key is valid on
    its own, the validator calls ``check(filled_keys)`` and reports each ``(key, problem)`` it yields at that key's
    path, with the config's other problems. Ranges of one key belong in its type, not here."""

    def attach(factory: _F) -> _F:
        factory.__config_check__ = check
        return factory

    return attach
