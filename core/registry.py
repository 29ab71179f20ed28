"""Registries filled by decorators (timm's ``register_model`` idea), with the one parameter type and spec base
that explainers and metrics share: a spec's key is its function's name, its parameters are checked in one place."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from core.errors import ParameterError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry mapping. Registering a name twice is an error; order is kept."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items)
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Param:
    """A parameter of a method or metric: default, range (numbers) or choices (strings), and help text."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to the default's type, or raise ``ParameterError``."""
        if self.choices is not None:
            if value not in self.choices:
                raise ParameterError(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        if isinstance(self.default, bool):
            return bool(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{self.name} must be a number; got {value!r}") from None
        if not math.isfinite(number):
            raise ParameterError(f"{self.name} must be finite; got {value!r}")
        if isinstance(self.default, int) and number != int(number):
            raise ParameterError(f"{self.name} must be a whole number; got {value!r}")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise ParameterError(f"{self.name} must lie in [{self.low}, {self.high}]; got {value!r}")
        return int(number) if isinstance(self.default, int) else number


SEED = Param("seed", 0, 0, 2**31 - 1, 1, help="the same seed gives the same result")


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What explainer and metric specs share: the function, its key (the function's name), a title, the paper it
    follows and its parameters. ``stochastic``: it takes a ``seed`` parameter."""

    fn: Callable
    title: str
    paper: str
    params: tuple[Param, ...] = ()
    name: str = field(init=False)
    param_map: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.fn.__name__)
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})

    @property
    def stochastic(self) -> bool:
        return "seed" in self.param_map

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, params: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``, each value checked; unknown names raise ``ParameterError``. ``seed``
        (any spec may be given one) is used only by stochastic specs."""
        unknown = set(params) - set(self.param_map)
        if unknown:
            raise ParameterError(f"{self.name} has no parameter {', '.join(sorted(unknown))}; it takes {', '.join(self.param_map) or 'none'}")
        out = self.defaults()
        if seed is not None and self.stochastic:
            out["seed"] = seed
        out.update(params)
        return {k: self.param_map[k].check(v) for k, v in out.items()}


S = TypeVar("S", bound=Spec)


def registrar(registry: Registry[S], make: Callable[..., S]) -> Callable[..., Callable[[Callable], Callable]]:
    """A decorator factory: ``@decorator(**meta)`` registers ``make(fn=fn, **meta)`` under ``fn.__name__``."""

    def decorator(**meta: Any) -> Callable[[Callable], Callable]:
        def wrap(fn: Callable) -> Callable:
            registry.add(fn.__name__, make(fn=fn, **meta))
            return fn

        return wrap

    return decorator
