"""The contracts' pydantic models found by walking their fields, for the checks that every
model (nested ones too) keeps the safeguarding and free-text rules."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable, Iterator

from pydantic import BaseModel

from goldenhour.contracts import derived, events


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """Every pydantic model an annotation mentions, through unions, lists and Annotated."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        yield annotation
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType):
        args = annotation.__args__
    for arg in args:
        yield from _models_in(arg)


def walk(roots: Iterable[type[BaseModel]]) -> dict[str, type[BaseModel]]:
    """The roots and every model nested in their fields, by qualified name."""
    found: dict[str, type[BaseModel]] = {}
    todo = list(roots)
    while todo:
        model = todo.pop()
        if model is BaseModel or model.__qualname__ in found:
            continue
        found[model.__qualname__] = model
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return found


EVENT_MODELS = walk(
    [
        obj
        for module in (events, derived)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseModel)
    ]
    + list(events.EVENT_DATA.values())
    + list(derived.DERIVED_TYPES.values())
)
