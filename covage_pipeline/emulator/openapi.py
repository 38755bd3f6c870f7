"""The contract in machine-readable form (OpenAPI 3.1), written from the reference by hand.

Hand-written rather than generated: the routes are plain Starlette, and the document must carry
the reference's semantics (strictly-later cursor, defaults) that no generator could infer.
"""

from __future__ import annotations

from .config import EmulatorConfig

_TIMESTAMP = {
    "type": "string",
    "description": "Naive ISO datetime (no time zone), e.g. 2017-05-09T15:59:55.669742. "
    "`event_date` and payload dates may be malformed, e.g. 2017-05-09T16:1:04 AM.637766.",
}

_EVENT = {
    "type": "object",
    "required": [
        "model",
        "event_uuid",
        "type",
        "object_type",
        "object_uuid",
        "creation_date",
        "modification_date",
        "event_date",
        "data",
    ],
    "properties": {
        "model": {"type": "string", "const": "event"},
        "event_uuid": {"type": "string", "description": "Event identifier"},
        "type": {"type": "string", "description": "Event type, e.g. order-running"},
        "object_type": {"type": "string", "enum": ["order", "service"]},
        "object_uuid": {"type": "string"},
        "creation_date": _TIMESTAMP,
        "modification_date": _TIMESTAMP,
        "event_date": _TIMESTAMP,
        "data": {
            "type": ["object", "null"],
            "description": "Payload specific to the event type (see the reference); CRI events "
            "map file labels ('fichier 1', ...) to blob URLs whose token lasts 30 minutes.",
        },
    },
}

_LISTED_EVENT = {
    "allOf": [
        {"$ref": "#/components/schemas/Event"},
        {
            "type": "object",
            "required": ["sort_value"],
            "properties": {
                "sort_value": {
                    "type": "string",
                    "description": "Cursor: base64 of a JSON array holding this item's sort key. "
                    "Pass it as `after` to get the items strictly after it.",
                }
            },
        },
    ]
}

_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
}


def _err(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(config: EmulatorConfig) -> dict:
    size_param = {
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": config.max_page_size},
        "description": f"Page size (default {config.default_page_size}, at most {config.max_page_size}).",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Covage (Kosc) events API - local emulator",
            "version": "1.0.0",
            "description": "Events of orders and services, as documented by the operator. "
            "Served by covage-pipeline's emulator.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic", "description": "Password is the token."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {"Event": _EVENT, "ListedEvent": _LISTED_EVENT, "Error": _ERROR},
        },
        "security": [{"bearer": []}, {"basic": []}, {"apiKey": []}],
        "paths": {
            "/api/events/": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "List the events visible to the caller, one page at a time",
                    "description": "Without `sort`, events come by descending `event_date`. With "
                    "`sort`, `direction` defaults to `asc`. `after` returns the items whose sort key "
                    "is strictly later (strictly earlier with `desc`) than the cursor's; an empty list "
                    "means nothing newer yet. Page by `creation_date`: providers send events late.",
                    "parameters": [
                        {
                            "name": "sort",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["creation_date", "event_date"]},
                        },
                        {"name": "direction", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                        {"name": "size", **size_param},
                        {"name": "limit", **size_param, "description": "Alias of `size`."},
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "object_type",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["order", "service"]},
                        },
                        {"name": "object_uuid", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "A bare JSON list of events",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ListedEvent"}}
                                }
                            },
                        },
                        "400": _err("Bad parameter: sort key, direction, cursor, page size or object type"),
                        "401": _err("Missing or invalid credentials"),
                    },
                }
            },
            "/api/events/{event_uuid}/": {
                "get": {
                    "operationId": "getEvent",
                    "summary": "One event (CRI links get a fresh token)",
                    "parameters": [
                        {"name": "event_uuid", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The event",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
                        },
                        "401": _err("Missing or invalid credentials"),
                        "404": _err("No such event"),
                    },
                }
            },
            "/api/v2/orders/{order_uuid}/events/info": {
                "post": {
                    "operationId": "postOrderInfo",
                    "summary": "Append an order-info message to an order",
                    "description": "Callers of the 'admin' or 'delivery' group only. At most one "
                    "message every 5 minutes per order; otherwise 429 with Retry-After.",
                    "parameters": [
                        {"name": "order_uuid", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["message"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "message": {"type": "string", "minLength": 1},
                                        "stop_deferred": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "The created order-info event",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
                        },
                        "400": _err("Bad body"),
                        "401": _err("Missing or invalid credentials"),
                        "403": _err("Caller not in the admin or delivery group"),
                        "404": _err("No such order"),
                        "429": {
                            "description": "Throttled: a message was posted on this order less than 5 minutes ago",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                }
            },
        },
    }
