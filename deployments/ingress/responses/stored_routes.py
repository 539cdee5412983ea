"""Stored responses of the Responses API, mixed into the Ingress class: ``GET /v1/responses/{id}``,
``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items`` and
``POST /v1/responses/{id}/cancel``.

A stored response is a session record of the control plane (owner-scoped: another owner's id is a
404 like an unknown one; an expired or deleted one a 404 that says so). Every response here is
generated synchronously (``background`` is a 400 at creation), so there is never one to cancel:
cancelling a stored response is a 400, as OpenAI and vLLM answer for a synchronous response.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from typing import Any, Literal

from fastapi import Header, Query

from deployments.ingress.errors import ERRORS, APIError
from deployments.ingress.fastapi_app import api
from deployments.ingress.responses.replies import InputItemList, Response, ResponseDeleted, input_items_page


class StoredResponseRoutes:
    """Needs ``self.auth`` and ``self.control`` from the Ingress."""

    auth: Any
    control: Any

    async def _stored(self, response_id_: str, owner: str) -> dict:
        record = await self.control.record.remote(response_id_, owner, "response")
        if record.get("response") is None:
            if record["state"] == "failed":
                raise APIError(404, f"response {response_id_!r} failed and was not stored: {record.get('failure')}",
                               "response_not_found")
            if record["id"].startswith("resp_"):
                raise APIError(409, f"response {response_id_!r} is still being generated", "response_not_ready")
            raise APIError(404, f"{response_id_!r} is a session, not a response; see /v1/sessions",
                           "response_not_found")
        return record

    @api.get("/v1/responses/{response_id}", responses={200: {"model": Response}, **ERRORS})
    async def get_response(self, response_id: str, authorization: str | None = Header(None),
                           x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        return (await self._stored(response_id, owner))["response"]["object"]

    @api.delete("/v1/responses/{response_id}", responses={200: {"model": ResponseDeleted}, **ERRORS})
    async def delete_response(self, response_id: str, authorization: str | None = Header(None),
                              x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        await self._stored(response_id, owner)
        await self.control.delete_session.remote(response_id, owner)
        return ResponseDeleted(id=response_id).model_dump()

    @api.get("/v1/responses/{response_id}/input_items", responses={200: {"model": InputItemList}, **ERRORS})
    async def list_input_items(self, response_id: str, limit: int = Query(20, ge=1, le=100),
                               order: Literal["asc", "desc"] = Query("desc"), after: str | None = Query(None),
                               before: str | None = Query(None), include: list[str] | None = Query(None),
                               authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        record = await self._stored(response_id, owner)
        try:
            return input_items_page(record["response"]["input_items"], limit=limit, order=order, after=after,
                                    before=before)
        except ValueError as exc:
            raise APIError(400, str(exc), "invalid_request",
                           param="after" if str(exc).startswith("after") else "before") from exc

    @api.post("/v1/responses/{response_id}/cancel", responses={200: {"model": Response}, **ERRORS})
    async def cancel_response(self, response_id: str, authorization: str | None = Header(None),
                              x_api_key: str | None = Header(None)) -> dict:
        """OpenAI cancels background responses only; none runs here (404 for an unknown id)."""
        owner = self.auth.owner(authorization, x_api_key)
        await self._stored(response_id, owner)
        raise APIError(400, f"response {response_id!r} cannot be cancelled: it was generated synchronously "
                            "(only background responses can be cancelled, and this server runs none)",
                       "invalid_request", param="response_id")
