"""The API's OpenAPI 3.1 document, generated from the models in :mod:`streams.api.models`.

Request and response bodies are those models' JSON Schemas; the query parameters are the fields of
:class:`~streams.api.models.ListQuery` and :class:`~streams.api.models.GroupsQuery`, the models that
validate them. So the document, the validation and the answers cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from streams.api.models import (
    MAX_ID_LEN,
    ChannelCapacity,
    DefinitionAccepted,
    GroupsQuery,
    ListQuery,
    Problem,
    ReactiveState,
    TargetConfig,
    TargetPage,
    TargetView,
)

_MODELS: tuple[type[BaseModel], ...] = (TargetView, TargetPage, ReactiveState, ChannelCapacity, DefinitionAccepted,
                                        Problem, TargetConfig, ListQuery, GroupsQuery)
_REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref(Problem)}}}


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = schemas[model.__name__]
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema["properties"].items():
        field_schema = dict(field_schema)
        description = field_schema.pop("description", "")
        field_schema.pop("title", None)
        parameter = {"name": name, "in": "query", "required": name in required, "description": description,
                     "schema": field_schema}
        if field_schema.get("type") == "array":
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def openapi_document(read_requires_token: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the Pacing REST API."""
    _, definitions = models_json_schema([(model, "validation") for model in _MODELS], ref_template=_REF)
    schemas: dict[str, Any] = definitions["$defs"]
    body = copy.deepcopy(schemas["TargetConfig"])
    body["required"] = [name for name in body["required"] if name not in ("tenant", "target_id")]
    body["title"] = "TargetDefinition"
    body["description"] = ("A TargetConfig, as on pacing.targets; target_id and tenant may be left out "
                           "(the path's id, the deployment's tenant).")
    schemas["TargetDefinition"] = body
    queries = {model.__name__: schemas.pop(model.__name__) for model in (ListQuery, GroupsQuery)}

    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    read_security = bearer if read_requires_token else [{}, *bearer]
    unauthorized = _problem("no valid bearer token")
    target_id = {"name": "target_id", "in": "path", "required": True, "description": "the target (group) id",
                 "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN}}
    groups = {
        "security": read_security,
        "parameters": _query_parameters(GroupsQuery, queries),
        "responses": {"400": _problem("a parameter is wrong (named in errors)"), "401": unauthorized},
    }
    paths = {
        "/v1/targets": {"get": {
            "operationId": "listTargets", "summary": "Targets in id order, a page at a time",
            "security": read_security, "parameters": _query_parameters(ListQuery, queries),
            "responses": {"200": _json(TargetPage, "a page of targets"),
                          "400": _problem("a parameter is wrong (named in errors)"), "401": unauthorized},
        }},
        "/v1/targets/{target_id}": {"get": {
            "operationId": "getTarget", "summary": "A target's newest decision and its definition",
            "security": read_security, "parameters": [target_id],
            "responses": {"200": _json(TargetView, "the target"), "401": unauthorized,
                          "404": _problem("no decision and no definition for this target")},
        }},
        "/v1/targets/{target_id}/definition": {
            "put": {
                "operationId": "putDefinition", "summary": "Define (or redefine) a target on pacing.targets",
                "security": bearer, "parameters": [target_id],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": _REF.format(model="TargetDefinition")}}}},
                "responses": {
                    "202": _json(DefinitionAccepted, "written to pacing.targets and acknowledged by Kafka"),
                    "400": _problem("the body is not a JSON object"), "401": unauthorized,
                    "403": _problem("the token may only read"), "413": _problem("the body is too large"),
                    "422": _problem("the definition is not valid (reasons in errors)"),
                    "503": _problem("Kafka did not acknowledge the write; nothing changed"),
                },
            },
            "delete": {
                "operationId": "deleteDefinition", "summary": "Delete a target's definition (its defaults apply)",
                "security": bearer, "parameters": [target_id],
                "responses": {
                    "202": _json(DefinitionAccepted, "the tombstone was acknowledged by Kafka"),
                    "401": unauthorized, "403": _problem("the token may only read"),
                    "404": _problem("no definition for this target"),
                    "503": _problem("Kafka did not acknowledge the write; nothing changed"),
                },
            },
        },
        "/v1/pacing/reactiveState": {"get": {
            "operationId": "reactiveState", "summary": "GWE Reactive State of a channel over groups",
            **groups, "responses": {"200": _json(ReactiveState, "the consolidated reactive state"),
                                    **groups["responses"]},
        }},
        "/v1/pacing/channelCapacity": {"get": {
            "operationId": "channelCapacity", "summary": "GWE Channel Capacity of a channel over groups",
            **groups, "responses": {"200": _json(ChannelCapacity, "the consolidated channel capacity"),
                                    **groups["responses"]},
        }},
        "/v1/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": [{}],
            "responses": {"200": {"description": "the OpenAPI document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pacing REST API", "version": "1",
                 "description": "Every worker answers for every target; see docs/api.md."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
