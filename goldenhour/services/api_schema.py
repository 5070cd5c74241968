"""The OpenAPI schema as the API's contract: every answer a route can give, with its body.

Integrators generate clients from `/openapi.json`, so it must name each status the API really
answers (an error always as `ErrorBody`), the bearer key the routes need, and the body of
POST /events one event type at a time. HTML pages, the acknowledgement links and /metrics are
not part of it.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import RouteContext, iter_route_contexts

from goldenhour.contracts.api import ErrorBody
from goldenhour.contracts.events import EVENT_DATA, Event
from goldenhour.services.auth import authenticate

REF = "#/components/schemas/{model}"
BEARER = "apiKey"


def error(description: str) -> dict[str, Any]:
    """A documented error answer: its meaning and the one error body."""
    return {"model": ErrorBody, "description": description}


# What any route behind an API key may answer, whatever it does.
KEYED = {
    401: error("No API key, or one the directory does not know"),
    403: error("The caller's organisation may not do this, or may not hold data at all"),
    413: error("The request body is larger than the configured cap"),
    422: error("A parameter or the body is invalid; `detail` lists the fields at fault"),
    429: error("Too many requests with this API key; retry after `Retry-After` seconds"),
    503: error("The database is unavailable; retry with the same event_id"),
}

# Twilio's callbacks carry no key: a signature over the form proves they come from Twilio.
SIGNED = {
    400: error("A field Twilio always sends is missing or malformed"),
    403: error("No valid X-Twilio-Signature for this URL and form"),
    413: error("The form is larger than the configured cap"),
    503: error("The database is unavailable; Twilio retries"),
}

# Probes of the process, for the orchestrator.
PROBE = {503: error("The database is unavailable")}


def _needs_key(route: RouteContext) -> bool:
    dependant = getattr(route, "dependant", None)
    return dependant is not None and any(d.call is authenticate for d in dependant.dependencies)


def _event_body(schemas: dict[str, Any]) -> dict[str, Any]:
    """POST /events' body: the envelope once per event type, with that type's `data`."""
    envelope = Event.model_json_schema(ref_template=REF)
    schemas.update(envelope.pop("$defs", {}))
    variants = []
    for event_type, model in EVENT_DATA.items():
        data = model.model_json_schema(ref_template=REF)
        schemas.update(data.pop("$defs", {}))
        schemas[model.__name__] = data
        variant = copy.deepcopy(envelope)
        variant["title"] = f"Event {event_type.value}"
        variant["properties"]["type"] = {"const": event_type.value, "title": "Type"}
        variant["properties"]["data"] = {"$ref": REF.format(model=model.__name__)}
        variants.append(variant)
    return {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": variants}}},
    }


def build(app: FastAPI) -> dict[str, Any]:
    """The schema of `app`, built once: FastAPI's, plus the key and the event body."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    paths = schema["paths"]
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "The API key of one user of one organisation in the directory",
        }
    }
    for route in iter_route_contexts(app.routes):
        if not getattr(route, "include_in_schema", False) or route.path_format not in paths:
            continue
        for method in route.methods or ():
            operation = paths[route.path_format][method.lower()]
            if _needs_key(route):
                operation["security"] = [{BEARER: []}]
            if route.path_format.endswith("/events") and method == "POST":
                operation["requestBody"] = _event_body(schemas)
    app.openapi_schema = schema
    return schema


def install(app: FastAPI) -> None:
    """Serve `build(app)` as /openapi.json."""
    app.openapi = lambda: build(app)  # type: ignore[method-assign]
